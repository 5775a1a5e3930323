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
    /// The message this one follows in the chat's tree; absent for a root (the first question or an edit of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<Uuid>,
    /// The versions of this message (edits of a question, regenerated answers), when there is more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<Branch>,
    /// Pinned by the user: sent to the model as it is however long the chat grows, never summarised.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
}

/// Body of `PATCH /api/chats/{chat_id}/messages/{message_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateMessageRequest {
    /// Pin the message (it is never summarised when the chat outgrows the model's context window) or unpin it.
    pub pinned: bool,
}

/// Where a message stands among its versions: the messages with the same parent, in the order they were written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Branch {
    /// Every version's id, oldest first (this message's among them).
    pub siblings: Vec<Uuid>,
    /// This message's position in `siblings`, from 0.
    pub index: usize,
}

impl Branch {
    /// The versions of `message_id` among `siblings`; `None` when it is the only one (or not among them).
    pub fn among(message_id: Uuid, siblings: Vec<Uuid>) -> Option<Branch> {
        if siblings.len() < 2 {
            return None;
        }
        let index = siblings.iter().position(|id| *id == message_id)?;
        Some(Branch { siblings, index })
    }
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
    /// The last message of the branch these messages are on (the chat's active leaf unless `?leaf=` chose
    /// another); absent for a chat without messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_id: Option<Uuid>,
}

/// Body of `POST /api/chats/{id}/branch`: show and continue the branch through a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SwitchBranch {
    /// Any message of the chat: the branch becomes the one through it, down to the newest version at every step
    /// below it.
    pub message_id: Uuid,
}
