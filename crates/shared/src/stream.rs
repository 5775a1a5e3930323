//! The streaming protocol: the Vercel AI SDK "UI message stream" (SSE lines `data: {json}`).
//!
//! Only the chunk types that every AI SDK client from v5.0.0 to v7 accepts are used, with no extra fields:
//! older clients validate chunks strictly and reject unknown fields on known chunk types. Each SSE event also
//! carries an `id:` line with the turn's event sequence number, which is what resuming uses.
//!
//! Control chunks: `start`, `start-step`, `finish-step`, `finish`, `abort`, `message-metadata`, `data-chat`,
//! `data-status`. Content chunks: `text-*`, `reasoning-*`, `tool-*`, `source-url` (what they build is
//! [`crate::answer`]). Terminal chunks: `finish` (always last) and `error`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::answer::{DataPart, Source};
use crate::message::{MessageStatus, Usage};

/// SSE `data:` payload that ends every stream (ignored by AI SDK clients, required by the format).
pub const DONE_SENTINEL: &str = "[DONE]";

/// Response header AI SDK documentation asks UI-message-stream servers to send.
pub const UI_STREAM_HEADER: &str = "x-vercel-ai-ui-message-stream";

/// One chunk of the UI message stream. Metadata is boxed: it comes once or twice a turn, and a chunk without it
/// is moved about for every token.
///
/// Serialized by serde's derive; read back by [`WireChunk`] (see its note on why).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum UiChunk {
    /// First chunk: names the assistant message being written (the stored message's id).
    #[serde(rename_all = "camelCase")]
    Start {
        /// Id of the stored assistant message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        /// Metadata merged into the message (status, model, time).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_metadata: Option<Box<StreamMetadata>>,
    },
    /// Start of a model step.
    StartStep,
    /// A text part begins.
    TextStart {
        /// Part id, unique within the message.
        id: String,
    },
    /// Text appended to the open text part.
    TextDelta {
        /// Part id.
        id: String,
        /// Appended text.
        delta: String,
    },
    /// The text part is complete.
    TextEnd {
        /// Part id.
        id: String,
    },
    /// A reasoning part begins.
    ReasoningStart {
        /// Part id.
        id: String,
    },
    /// Reasoning appended to the open reasoning part.
    ReasoningDelta {
        /// Part id.
        id: String,
        /// Appended reasoning.
        delta: String,
    },
    /// The reasoning part is complete.
    ReasoningEnd {
        /// Part id.
        id: String,
    },
    /// A tool call begins; its arguments follow as `tool-input-delta`.
    #[serde(rename_all = "camelCase")]
    ToolInputStart {
        /// The call's id.
        tool_call_id: String,
        /// The tool's name.
        tool_name: String,
        /// True when the model's side runs the tool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        /// True: the client makes a `dynamic-tool` part (the tool is not one it knows by type).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
    },
    /// More of a tool call's arguments (JSON text).
    #[serde(rename_all = "camelCase")]
    ToolInputDelta {
        /// The call's id.
        tool_call_id: String,
        /// The next piece of the arguments' JSON text.
        input_text_delta: String,
    },
    /// A tool call's complete arguments.
    #[serde(rename_all = "camelCase")]
    ToolInputAvailable {
        /// The call's id.
        tool_call_id: String,
        /// The tool's name.
        tool_name: String,
        /// The arguments (JSON).
        input: serde_json::Value,
        /// True when the model's side runs the tool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        /// True: a `dynamic-tool` part.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
        /// Provider data about the call (an agent's MCP server label); becomes the part's `callProviderMetadata`.
        /// Boxed: it is rare, and a chunk is moved several times per token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Box<serde_json::Value>>,
    },
    /// A tool's result.
    #[serde(rename_all = "camelCase")]
    ToolOutputAvailable {
        /// The call's id.
        tool_call_id: String,
        /// The result (JSON).
        output: serde_json::Value,
        /// True when the model's side ran the tool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        /// True: a `dynamic-tool` part.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
    },
    /// A tool call failed.
    #[serde(rename_all = "camelCase")]
    ToolOutputError {
        /// The call's id.
        tool_call_id: String,
        /// Why.
        error_text: String,
        /// True when the model's side ran the tool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        /// True: a `dynamic-tool` part.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
    },
    /// A source the answer cites.
    SourceUrl(Source),
    /// The turn failed; the text so far is kept on the server.
    #[serde(rename_all = "camelCase")]
    Error {
        /// Safe message for the user.
        error_text: String,
    },
    /// End of a model step.
    FinishStep,
    /// The user stopped the answer.
    Abort,
    /// Metadata to merge into the message (final status, usage).
    #[serde(rename_all = "camelCase")]
    MessageMetadata {
        /// Metadata fields.
        message_metadata: Box<StreamMetadata>,
    },
    /// Chat information (id and title), sent at the start and again when the title changes.
    #[serde(rename = "data-chat")]
    DataChat {
        /// Always `"chat"`, so a newer title replaces the older one in AI SDK clients.
        id: String,
        /// The chat.
        data: ChatRef,
        /// Always true: chat information is not part of the message.
        transient: bool,
    },
    /// Where the turn stands while it waits for the model (e.g. queued behind other turns).
    #[serde(rename = "data-status")]
    DataStatus {
        /// Always `"status"`.
        id: String,
        /// The state.
        data: TurnState,
        /// Always true: the state is not part of the message.
        transient: bool,
    },
    /// Last chunk of every turn.
    #[serde(rename_all = "camelCase")]
    Finish {
        /// Final metadata (status, usage).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_metadata: Option<Box<StreamMetadata>>,
    },
    /// A data part kept with the message (`data-approval`, `data-agent`): AI SDK clients add it to the message's
    /// parts, replacing an earlier one with the same type and id.
    #[serde(untagged)]
    Data(Box<DataPart>),
}

/// Every field a chunk can have, each optional: what a chunk is read into before it becomes a [`UiChunk`].
///
/// serde's derive for an internally tagged enum buffers each chunk and runs a separate reader per variant; for this
/// enum that was 60 KB of the web app's WebAssembly, a quarter of its budget's headroom. One flat reader and a match
/// on `type` read the same JSON in a fraction of the code.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireChunk {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    delta: Option<String>,
    message_id: Option<String>,
    message_metadata: Option<Box<StreamMetadata>>,
    error_text: Option<String>,
    tool_call_id: Option<String>,
    tool_name: Option<String>,
    input_text_delta: Option<String>,
    input: Option<serde_json::Value>,
    output: Option<serde_json::Value>,
    provider_executed: Option<bool>,
    dynamic: Option<bool>,
    source_id: Option<String>,
    url: Option<String>,
    title: Option<String>,
    data: Option<serde_json::Value>,
    transient: Option<bool>,
    provider_metadata: Option<serde_json::Value>,
}

impl WireChunk {
    fn into_chunk(self) -> Result<UiChunk, String> {
        let kind = self.kind;
        let missing = |field: &str| format!("`{kind}` chunk without `{field}`");
        let id = self.id.ok_or_else(|| missing("id"));
        let delta = self.delta.ok_or_else(|| missing("delta"));
        let call = self.tool_call_id.ok_or_else(|| missing("toolCallId"));
        let name = self.tool_name.ok_or_else(|| missing("toolName"));
        let data = self.data.ok_or_else(|| missing("data"));
        let (provider_executed, dynamic) = (self.provider_executed, self.dynamic);
        Ok(match kind.as_str() {
            "start" => UiChunk::Start { message_id: self.message_id, message_metadata: self.message_metadata },
            "start-step" => UiChunk::StartStep,
            "text-start" => UiChunk::TextStart { id: id? },
            "text-delta" => UiChunk::TextDelta { id: id?, delta: delta? },
            "text-end" => UiChunk::TextEnd { id: id? },
            "reasoning-start" => UiChunk::ReasoningStart { id: id? },
            "reasoning-delta" => UiChunk::ReasoningDelta { id: id?, delta: delta? },
            "reasoning-end" => UiChunk::ReasoningEnd { id: id? },
            "tool-input-start" => {
                UiChunk::ToolInputStart { tool_call_id: call?, tool_name: name?, provider_executed, dynamic }
            }
            "tool-input-delta" => UiChunk::ToolInputDelta {
                tool_call_id: call?,
                input_text_delta: self.input_text_delta.ok_or_else(|| missing("inputTextDelta"))?,
            },
            "tool-input-available" => UiChunk::ToolInputAvailable {
                tool_call_id: call?,
                tool_name: name?,
                input: self.input.unwrap_or_default(),
                provider_executed,
                dynamic,
                provider_metadata: self.provider_metadata.map(Box::new),
            },
            "tool-output-available" => UiChunk::ToolOutputAvailable {
                tool_call_id: call?,
                output: self.output.unwrap_or_default(),
                provider_executed,
                dynamic,
            },
            "tool-output-error" => UiChunk::ToolOutputError {
                tool_call_id: call?,
                error_text: self.error_text.ok_or_else(|| missing("errorText"))?,
                provider_executed,
                dynamic,
            },
            "source-url" => UiChunk::SourceUrl(Source {
                source_id: self.source_id.ok_or_else(|| missing("sourceId"))?,
                url: self.url.ok_or_else(|| missing("url"))?,
                title: self.title,
            }),
            "error" => UiChunk::Error { error_text: self.error_text.ok_or_else(|| missing("errorText"))? },
            "finish-step" => UiChunk::FinishStep,
            "abort" => UiChunk::Abort,
            "message-metadata" => UiChunk::MessageMetadata {
                message_metadata: self.message_metadata.ok_or_else(|| missing("messageMetadata"))?,
            },
            "data-chat" => UiChunk::DataChat {
                id: id?,
                data: serde_json::from_value(data?).map_err(|e| e.to_string())?,
                transient: self.transient.unwrap_or(true),
            },
            "data-status" => UiChunk::DataStatus {
                id: id?,
                data: serde_json::from_value(data?).map_err(|e| e.to_string())?,
                transient: self.transient.unwrap_or(true),
            },
            "finish" => UiChunk::Finish { message_metadata: self.message_metadata },
            data_kind if data_kind.starts_with("data-") => {
                UiChunk::Data(Box::new(DataPart { kind: data_kind.to_owned(), id: id.ok(), data: data? }))
            }
            other => return Err(format!("unknown chunk type `{other}`")),
        })
    }
}

impl<'de> Deserialize<'de> for UiChunk {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WireChunk::deserialize(deserializer)?.into_chunk().map_err(serde::de::Error::custom)
    }
}

impl UiChunk {
    /// Whether this chunk ends the stream.
    pub fn is_finish(&self) -> bool {
        matches!(self, UiChunk::Finish { .. })
    }

    /// A `data-chat` chunk for the given chat.
    pub fn chat(id: Uuid, title: impl Into<String>) -> Self {
        UiChunk::DataChat { id: "chat".into(), data: ChatRef { id, title: title.into() }, transient: true }
    }

    /// A `data-status` chunk.
    pub fn status(state: TurnState) -> Self {
        UiChunk::DataStatus { id: "status".into(), data: state, transient: true }
    }
}

/// Message metadata carried by stream chunks; every field is optional because AI SDK merges them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMetadata {
    /// Status of the assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MessageStatus>,
    /// Model writing the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// When the assistant message was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Safe error description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Chat the message belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<Uuid>,
    /// Position of the message in the chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// The MLflow trace of the answer, when the agent returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Payload of the `data-chat` part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRef {
    /// Chat id.
    pub id: Uuid,
    /// Current title.
    pub title: String,
}

/// Payload of the `data-status` part. Read through [`WireTurnState`], for the same reason as [`WireChunk`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TurnState {
    /// Waiting for a free model slot.
    Queued {
        /// Turns ahead of this one.
        position: u32,
    },
    /// Waiting for the model itself: the local model is being downloaded, prepared or loaded.
    Loading {
        /// How much of the download is done, in percent, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<u8>,
    },
    /// Waiting to retry after the model refused or failed before answering.
    Retrying {
        /// Seconds until the next attempt.
        after_secs: u64,
    },
    /// The model is answering.
    Running,
}

/// Every field a turn state can have: what one is read into.
#[derive(Deserialize)]
struct WireTurnState {
    state: String,
    position: Option<u32>,
    progress: Option<u8>,
    after_secs: Option<u64>,
}

impl<'de> Deserialize<'de> for TurnState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireTurnState::deserialize(deserializer)?;
        let missing = |field: &str| serde::de::Error::custom(format!("`{}` state without `{field}`", wire.state));
        Ok(match wire.state.as_str() {
            "queued" => TurnState::Queued { position: wire.position.ok_or_else(|| missing("position"))? },
            "loading" => TurnState::Loading { progress: wire.progress },
            "retrying" => TurnState::Retrying { after_secs: wire.after_secs.ok_or_else(|| missing("after_secs"))? },
            "running" => TurnState::Running,
            other => return Err(serde::de::Error::custom(format!("unknown turn state `{other}`"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_serialize_to_the_ai_sdk_shapes() {
        let cases = [
            (UiChunk::StartStep, r#"{"type":"start-step"}"#),
            (
                UiChunk::TextDelta { id: "1".into(), delta: "Hi".into() },
                r#"{"type":"text-delta","id":"1","delta":"Hi"}"#,
            ),
            (UiChunk::Error { error_text: "boom".into() }, r#"{"type":"error","errorText":"boom"}"#),
            (UiChunk::Abort, r#"{"type":"abort"}"#),
            (UiChunk::Finish { message_metadata: None }, r#"{"type":"finish"}"#),
            (
                UiChunk::Start { message_id: Some("m".into()), message_metadata: None },
                r#"{"type":"start","messageId":"m"}"#,
            ),
        ];
        for (chunk, json) in cases {
            assert_eq!(serde_json::to_string(&chunk).expect("serializes"), json);
            assert_eq!(serde_json::from_str::<UiChunk>(json).expect("parses"), chunk);
        }
    }

    #[test]
    fn every_chunk_reads_back_as_it_was_written() {
        let metadata =
            Some(Box::new(StreamMetadata { status: Some(MessageStatus::Complete), ..StreamMetadata::default() }));
        let chunks = vec![
            UiChunk::Start { message_id: Some("m".into()), message_metadata: metadata.clone() },
            UiChunk::Start { message_id: None, message_metadata: None },
            UiChunk::StartStep,
            UiChunk::TextStart { id: "0".into() },
            UiChunk::TextDelta { id: "0".into(), delta: "Hi".into() },
            UiChunk::TextEnd { id: "0".into() },
            UiChunk::ReasoningStart { id: "1".into() },
            UiChunk::ReasoningDelta { id: "1".into(), delta: "hm".into() },
            UiChunk::ReasoningEnd { id: "1".into() },
            UiChunk::ToolInputStart {
                tool_call_id: "c".into(),
                tool_name: "t".into(),
                provider_executed: Some(true),
                dynamic: Some(true),
            },
            UiChunk::ToolInputDelta { tool_call_id: "c".into(), input_text_delta: "{".into() },
            UiChunk::ToolInputAvailable {
                tool_call_id: "c".into(),
                tool_name: "t".into(),
                input: serde_json::json!({"q": [1, "two"]}),
                provider_executed: None,
                dynamic: Some(true),
                provider_metadata: Some(Box::new(serde_json::json!({"databricks": {"serverLabel": "mail"}}))),
            },
            UiChunk::ToolOutputAvailable {
                tool_call_id: "c".into(),
                output: serde_json::json!("42"),
                provider_executed: Some(true),
                dynamic: None,
            },
            UiChunk::ToolOutputError {
                tool_call_id: "c".into(),
                error_text: "no".into(),
                provider_executed: None,
                dynamic: None,
            },
            UiChunk::SourceUrl(Source { source_id: "s".into(), url: "https://x".into(), title: Some("X".into()) }),
            UiChunk::Error { error_text: "boom".into() },
            UiChunk::FinishStep,
            UiChunk::Abort,
            UiChunk::MessageMetadata { message_metadata: Box::default() },
            UiChunk::chat(Uuid::nil(), "T"),
            UiChunk::status(TurnState::Queued { position: 2 }),
            UiChunk::status(TurnState::Running),
            UiChunk::status(TurnState::Loading { progress: Some(40) }),
            UiChunk::status(TurnState::Loading { progress: None }),
            UiChunk::status(TurnState::Retrying { after_secs: 3 }),
            UiChunk::Finish { message_metadata: metadata },
        ];
        for chunk in chunks {
            let json = serde_json::to_string(&chunk).expect("serializes");
            assert_eq!(serde_json::from_str::<UiChunk>(&json).expect("parses"), chunk, "{json}");
        }
        assert!(serde_json::from_str::<UiChunk>(r#"{"type":"text-delta","id":"0"}"#).is_err(), "delta missing");
        assert!(serde_json::from_str::<UiChunk>(r#"{"type":"no-such-chunk"}"#).is_err());
    }

    #[test]
    fn data_chat_is_transient_with_a_stable_id() {
        let id = Uuid::nil();
        let json = serde_json::to_value(UiChunk::chat(id, "T")).expect("serializes");
        assert_eq!(json["type"], "data-chat");
        assert_eq!(json["id"], "chat");
        assert_eq!(json["transient"], true);
        assert_eq!(json["data"]["title"], "T");
    }
}
