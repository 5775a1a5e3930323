//! Starting a turn (`POST /api/chat`) and following generations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::answer::MessagePart;
use crate::message::{MessageStatus, Usage};

/// Longest user message accepted, in characters.
pub const MAX_MESSAGE_CHARS: usize = 100_000;
/// Longest client-supplied message id accepted, in characters.
pub const MAX_CLIENT_ID_CHARS: usize = 128;

/// Body of `POST /api/chat`.
///
/// Accepts the AI SDK `DefaultChatTransport` body (`{id, messages, trigger, messageId?}`, where only the last
/// user message is used: the server never trusts the client's copy of the history) and a lean body
/// (`{id, message, model?}`, where `message` is a string or a UI message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChatTurnRequest {
    /// Chat id (a UUID). An id the server has never seen creates the chat for the caller.
    pub id: Uuid,
    /// Full client-side message list (AI SDK transport); only the last user message is read, and the id of the
    /// message before it, which the new message follows (the branch the client shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<IncomingMessage>>,
    /// The new user message (lean body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<IncomingContent>,
    /// `submit-message` (default) or `regenerate-message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The message being edited (`submit-message`: the new message becomes a version of this question, answered
    /// anew) or regenerated (`regenerate-message`: an answer, which gets a new version; or a question, which gets
    /// a new answer). A server id or the client id the message was sent with. Nothing is deleted: earlier
    /// versions stay reachable as branches.
    #[serde(default, rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Model to answer with; the server's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The sources of tools the chat's model may use from now on (names from `GET /api/config` `tools`; empty:
    /// none); kept with the chat. Absent: the chat's choice stays (all sources for a new chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
}

/// What started the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// A new user message.
    SubmitMessage,
    /// Answer again: a new version of the branch's last answer (or of the answer `messageId` names), kept beside
    /// the earlier ones.
    RegenerateMessage,
}

/// A message as an AI SDK client sends it. Parts other than text are accepted and ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncomingMessage {
    /// Client-side id (1 to 128 printable characters); a retried request with the same id is recognised and
    /// creates nothing new.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub id: Option<String>,
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// Parts; only `{"type":"text","text":...}` parts are read.
    #[serde(default)]
    pub parts: Vec<serde_json::Value>,
    /// Client metadata (ignored).
    #[serde(default, skip_serializing)]
    pub metadata: Option<serde_json::Value>,
}

impl IncomingMessage {
    /// Concatenated text of the message's text parts.
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .filter(|part| part.get("type").and_then(|t| t.as_str()) == Some("text"))
            .filter_map(|part| part.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join("")
    }

    /// A user message with one text part.
    pub fn user_text(id: Option<String>, text: &str) -> Self {
        IncomingMessage {
            id,
            role: "user".into(),
            parts: vec![serde_json::json!({"type": "text", "text": text})],
            metadata: None,
        }
    }
}

/// The lean body's `message`: a plain string or a UI message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum IncomingContent {
    /// Just the text.
    Text(String),
    /// A UI message (id and parts).
    Message(IncomingMessage),
}

/// Answer to `POST /api/chat` with `Prefer: respond-async` (202 Accepted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TurnAccepted {
    /// Generation id (equal to the assistant message id); poll `GET /api/generations/{id}`.
    pub generation_id: Uuid,
    /// Chat the turn belongs to.
    pub chat_id: Uuid,
    /// Stored user message.
    pub user_message_id: Uuid,
}

/// State of one generation (`GET /api/generations/{id}`), for clients that poll instead of streaming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GenerationView {
    /// Generation id (equal to the assistant message id).
    pub id: Uuid,
    /// Chat id.
    pub chat_id: Uuid,
    /// Status of the answer.
    pub status: MessageStatus,
    /// Answer text so far (all text parts).
    pub text: String,
    /// Content parts so far.
    pub parts: Vec<MessagePart>,
    /// Model answering.
    pub model: Option<String>,
    /// Token usage, once known.
    pub usage: Option<Usage>,
    /// Safe error description.
    pub error: Option<String>,
    /// When the generation started.
    pub created_at: DateTime<Utc>,
    /// Last checkpoint or final write.
    pub updated_at: DateTime<Utc>,
}

/// Answer to `POST /api/chat/{id}/stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StopResponse {
    /// The generation that was stopped, if one was running.
    pub generation_id: Option<Uuid>,
    /// Its status after the stop (normally `stopped`).
    pub status: Option<MessageStatus>,
}

/// Longest reason a user may give for an approval decision.
pub const MAX_APPROVAL_REASON_CHARS: usize = 2_000;

/// Body of `POST /api/chat/{id}/approvals/{approval_id}`: the user's answer to an agent's approval request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalAnswer {
    /// True to allow the tool call, false to deny it.
    pub approve: bool,
    /// Why (optional; sent to the agent with the decision), at most 2,000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_chat_transport_body() {
        let body = r#"{"id":"6f1c0b7e-2f4b-4c8e-9a51-0a4f8d9b3c21","messages":[
            {"id":"u1","role":"user","parts":[{"type":"text","text":"Hello"}]},
            {"id":"a1","role":"assistant","parts":[{"type":"step-start"},{"type":"text","text":"Hi!","state":"done"}]},
            {"id":"u2","role":"user","parts":[{"type":"file","url":"x","mediaType":"image/png"},{"type":"text","text":"What is Lakebase?"}]}
        ],"trigger":"submit-message"}"#;
        let request: ChatTurnRequest = serde_json::from_str(body).expect("parses");
        let messages = request.messages.expect("messages");
        assert_eq!(messages[2].text(), "What is Lakebase?");
        assert_eq!(request.trigger, Some(Trigger::SubmitMessage));
    }

    #[test]
    fn parses_the_lean_body_with_a_string_or_a_message() {
        let lean: ChatTurnRequest =
            serde_json::from_str(r#"{"id":"6f1c0b7e-2f4b-4c8e-9a51-0a4f8d9b3c21","message":"hi","model":"m"}"#)
                .expect("parses");
        assert_eq!(lean.message, Some(IncomingContent::Text("hi".into())));
        let with_message: ChatTurnRequest = serde_json::from_str(
            r#"{"id":"6f1c0b7e-2f4b-4c8e-9a51-0a4f8d9b3c21","message":{"id":"x","role":"user","parts":[{"type":"text","text":"yo"}]}}"#,
        )
        .expect("parses");
        assert!(matches!(with_message.message, Some(IncomingContent::Message(m)) if m.text() == "yo"));
    }

    #[test]
    fn rejects_unknown_top_level_fields() {
        let result = serde_json::from_str::<ChatTurnRequest>(
            r#"{"id":"6f1c0b7e-2f4b-4c8e-9a51-0a4f8d9b3c21","message":"hi","temperature":2}"#,
        );
        assert!(result.is_err());
    }
}
