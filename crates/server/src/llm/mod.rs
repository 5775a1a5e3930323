//! Talking to models.
//!
//! [`ChatModel`] is the seam between the turn engine and a model: the engine hands it a [`ModelRequest`] and
//! reads a stream of [`ModelEvent`]s. Each model in the catalog speaks one [`Protocol`]; the
//! [`routing::ModelRouter`] hands a request to the client of its model's protocol. Remote protocols share one HTTP
//! transport ([`transport`]: connecting, retries before the first event, `Retry-After`, the idle timeout, a fresh
//! token after a 401, error bodies); a protocol module holds only its wire types and its parser
//! ([`chat_completions`] for Databricks Model Serving, AI Gateway and any OpenAI-compatible server).
//! `local::LocalModel` runs a small model in this process (cargo feature `local-model`, on by default).
//! Credentials come from a [`token::TokenSource`].

pub mod app_agent;
pub mod catalog;
pub mod chat_agent;
pub mod chat_completions;
pub mod directory;
pub mod durable;
#[cfg(feature = "local-model")]
pub mod local;
pub mod responses;
pub mod routing;
pub mod think;
pub mod token;
pub mod transport;

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use shared::{Content, MessagePart, Usage};

pub use catalog::{ModelCatalog, ModelEntry, Protocol};
pub use directory::ModelDirectory;
pub use responses::{APPROVAL_PART, CONVERSATION_PART};

/// Who wrote a message sent to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptRole {
    /// Instructions.
    System,
    /// The person.
    User,
    /// The model (its earlier answers, with the tool calls it made and their results).
    Assistant,
}

impl PromptRole {
    /// OpenAI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PromptRole::System => "system",
            PromptRole::User => "user",
            PromptRole::Assistant => "assistant",
        }
    }
}

/// One message of the prompt, made of the same parts as a stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptMessage {
    /// Author.
    pub role: PromptRole,
    /// Content: text, and for the model's own messages its tool calls with their results and step boundaries.
    pub parts: Vec<MessagePart>,
}

impl PromptMessage {
    /// A message of plain text.
    pub fn text(role: PromptRole, text: impl Into<String>) -> Self {
        Self { role, parts: vec![MessagePart::Text { text: text.into() }] }
    }

    /// All its text, concatenated (for protocols and models that take text only).
    pub fn text_content(&self) -> String {
        shared::text_of(&self.parts)
    }
}

/// A stored call's arguments as the JSON text echoed back to a model: an object as it is; anything else (arguments
/// that were not a JSON object, kept as the model's raw text to show on the card) as `{}`, since endpoints that turn
/// the text back into an object (Claude on Databricks) refuse the whole request otherwise.
pub(crate) fn echoed_arguments(input: Option<&serde_json::Value>) -> String {
    match input {
        Some(object @ serde_json::Value::Object(_)) => object.to_string(),
        _ => "{}".to_owned(),
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    /// Name (letters, digits, `_` and `-`).
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments (an object).
    pub input_schema: serde_json::Value,
}

/// Who a call is for, sent to agents (`context` of the Responses and ChatAgent requests) so they can keep state per
/// conversation and act for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    /// The chat.
    /// The conversation as the agent knows it: the chat's id, or the id a long-running agent moved the
    /// conversation to when it resumed a crashed run (`response.resumed`, AGENTS-PROTOCOL.md §H).
    pub conversation_id: String,
    /// The signed-in user (their email).
    pub user_id: String,
}

/// What to ask a model.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    /// Model (serving endpoint) name.
    pub model: String,
    /// How the model is spoken to (from its catalog entry).
    pub protocol: Protocol,
    /// Conversation, oldest first, system prompt first.
    pub messages: Vec<PromptMessage>,
    /// Tools the model may call (none: the model only writes).
    pub tools: Vec<ToolDefinition>,
    /// Sampling temperature, if configured.
    pub temperature: Option<f32>,
    /// Output token limit, if configured.
    pub max_tokens: Option<u32>,
    /// The signed-in user's token, when model calls run on their behalf (`MODEL_AUTH=user`).
    pub user_token: Option<secrecy::SecretString>,
    /// The conversation and user, for agents only (`None` for models, and for calls outside a chat such as titles).
    pub context: Option<CallContext>,
    /// An agent run in background mode to re-attach to instead of starting a new one (an answer whose server
    /// restarted); only clients of agents that run in background mode read it.
    pub resume: Option<UpstreamRun>,
}

/// Where an agent's background run stands (AGENTS-PROTOCOL.md §H): the run, and the last of its events whose
/// content the answer holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamRun {
    /// The run (`resp_...`).
    pub response_id: String,
    /// The `sequence_number` of the last event taken into the answer.
    pub seq: u64,
}

/// One thing a model said.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// Part of the answer: text, reasoning, a tool call or its result, a source.
    Content(Content),
    /// Token usage (the latest report wins).
    Usage(Usage),
    /// The model finished with this reason (`stop`, `length`, `tool_calls`, ...).
    Finished(Option<String>),
    /// The request failed before the first token and will be retried after this pause.
    Retrying {
        /// Pause before the next attempt.
        after: Duration,
    },
    /// The turn waits for a free model slot.
    Queued {
        /// Turns ahead of it.
        position: u32,
    },
    /// The turn waits for the model to be downloaded, prepared or loaded.
    Loading {
        /// Download progress in percent, when known.
        progress: Option<u8>,
    },
    /// The model started working on the turn (after waiting in a queue or for loading).
    Running,
    /// The MLflow trace of this answer (an agent's `tr-...` id), for feedback.
    Trace(String),
    /// One event of an agent's background run: its content, and how far the run has reached with it. They come
    /// together so that what is stored of the answer and the point to re-attach from always match.
    Upstream {
        /// How far the run has reached.
        run: UpstreamRun,
        /// The content of the run's event (possibly none).
        content: Vec<Content>,
    },
}

impl ModelEvent {
    /// Answer text.
    pub fn text(text: impl Into<String>) -> Self {
        ModelEvent::Content(Content::Text(text.into()))
    }

    /// Reasoning text.
    pub fn reasoning(text: impl Into<String>) -> Self {
        ModelEvent::Content(Content::Reasoning(text.into()))
    }

    /// Whether this is part of the answer (after which a failed request is no longer retried).
    pub fn is_content(&self) -> bool {
        matches!(self, ModelEvent::Content(_))
    }
}

/// How a model call failed. `Display` is a message safe to show users.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// 429 (or Databricks `REQUEST_LIMIT_EXCEEDED`): the endpoint's rate limit.
    #[error("the model is busy (rate limit reached){}", retry_hint(.retry_after))]
    RateLimited {
        /// When the endpoint said a retry may succeed.
        retry_after: Option<Duration>,
    },
    /// 401/403: the endpoint refused the credentials.
    #[error("the model endpoint refused the app's credentials: {0}")]
    Unauthorized(String),
    /// 404: no such model or endpoint.
    #[error("the model endpoint was not found: {0}")]
    NotFound(String),
    /// Another 4xx: the endpoint rejected the request.
    #[error("the model rejected the request: {0}")]
    Rejected(String),
    /// 5xx or an error event: the endpoint failed.
    #[error("the model endpoint failed: {0}")]
    Upstream(String),
    /// The endpoint could not be reached.
    #[error("the model endpoint cannot be reached")]
    Connect,
    /// The endpoint went silent for too long.
    #[error("the model stopped responding")]
    Timeout,
    /// The endpoint sent something that is not the protocol.
    #[error("the model sent an invalid response")]
    Protocol,
    /// No credentials could be obtained for the endpoint.
    #[error("no credentials for the model endpoint: {0}")]
    Credentials(String),
    /// The model cannot be used at all (e.g. the local model's weights could not be had); says what to do.
    #[error("{0}")]
    Unavailable(String),
    /// The endpoint refused the user's own token (on-behalf-of-user calls).
    #[error(
        "the model endpoint refused your Databricks credentials ({0}). This app calls models as you: a workspace \
         admin must give it user authorization with the `serving.serving-endpoints` scope, and you need Can Query \
         permission on the endpoint. Then reload the app to sign in again"
    )]
    UserTokenRejected(String),
}

fn retry_hint(after: &Option<Duration>) -> String {
    match after {
        Some(after) => format!("; try again in {} s", after.as_secs().max(1)),
        None => "; try again shortly".to_owned(),
    }
}

impl ModelError {
    /// Whether another attempt may succeed (only ever tried before the first token).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ModelError::RateLimited { .. }
                | ModelError::Upstream(_)
                | ModelError::Connect
                | ModelError::Timeout
                | ModelError::Protocol
        )
    }

    /// The pause the endpoint asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ModelError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// A stream of model events; dropping it cancels the request.
pub type ModelStream = Pin<Box<dyn Stream<Item = Result<ModelEvent, ModelError>> + Send>>;

/// A chat model provider.
pub trait ChatModel: Send + Sync {
    /// Starts answering. Errors are delivered through the stream, which ends after the first error.
    fn stream(&self, request: ModelRequest) -> ModelStream;
}
