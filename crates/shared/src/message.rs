//! Stored messages, in the shape the Vercel AI SDK's `UIMessage` has, so a `useChat` client can load a
//! chat's history directly.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::answer::MessagePart;
use crate::feedback::Feedback;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The person chatting.
    User,
    /// The model.
    Assistant,
    /// A tool's result (reserved for tool calling).
    Tool,
}

impl Role {
    /// The database and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    /// Parses the database and wire spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

/// Lifecycle of a message. User messages are always `complete`; an assistant message starts `streaming`
/// and always ends in one of the other four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Fully written.
    Complete,
    /// The model is still writing it.
    Streaming,
    /// The user pressed stop; the text so far is kept.
    Stopped,
    /// The model or the server failed; the text so far is kept.
    Error,
    /// The server went away mid-answer; the text so far is kept.
    Interrupted,
}

impl MessageStatus {
    /// The database and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Streaming => "streaming",
            MessageStatus::Stopped => "stopped",
            MessageStatus::Error => "error",
            MessageStatus::Interrupted => "interrupted",
        }
    }

    /// Parses the database and wire spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "complete" => Some(MessageStatus::Complete),
            "streaming" => Some(MessageStatus::Streaming),
            "stopped" => Some(MessageStatus::Stopped),
            "error" => Some(MessageStatus::Error),
            "interrupted" => Some(MessageStatus::Interrupted),
            _ => None,
        }
    }

    /// Whether the message will not change any more.
    pub fn is_terminal(self) -> bool {
        self != MessageStatus::Streaming
    }
}

/// Token counts reported by the model for one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: Option<i64>,
    /// Generated tokens.
    pub output_tokens: Option<i64>,
}

/// Everything about a message that is not its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageMetadata {
    /// Lifecycle status.
    pub status: MessageStatus,
    /// Model that wrote the message (assistant messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// When the message was created.
    pub created_at: DateTime<Utc>,
    /// Token usage, when the model reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Safe description of what went wrong (status `error` or `interrupted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Position in the chat; messages are ordered by it.
    pub seq: i64,
    /// For a message still streaming: the event id its stored text reaches. Resuming with this id
    /// (`GET /api/chat/{id}/stream` with `Last-Event-ID`) continues exactly where the text ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_cursor: Option<i64>,
    /// The MLflow trace of the answer, when the agent returned one (feedback is attached to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The caller's vote on this answer, when they gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Feedback>,
}

/// A stored message, loadable by an AI SDK client as a `UIMessage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UiMessage {
    /// Message id.
    pub id: Uuid,
    /// Author.
    pub role: Role,
    /// Content parts in order.
    pub parts: Vec<MessagePart>,
    /// Status, model, time, usage.
    pub metadata: MessageMetadata,
}

impl UiMessage {
    /// All answer text of the message, concatenated.
    pub fn text(&self) -> String {
        crate::answer::text_of(&self.parts)
    }
}

/// One page of `GET /api/chats/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessagePage {
    /// Messages in chat order (oldest first within the page).
    pub messages: Vec<UiMessage>,
    /// Cursor for the page of older messages (`?before=`); absent when this page reaches the start.
    pub next_before: Option<String>,
}
