//! What an answer is made of, defined once, in the AI SDK `UIMessage` part vocabulary: text, reasoning, tool calls
//! with their input and output (or error), source URLs, step boundaries and data parts.
//!
//! Three views of the same thing live here and nowhere else:
//! - [`MessagePart`]: the content of a stored message (and of `GET /api/chats/{id}/messages`);
//! - [`Content`]: what a model adds to an answer, before the server numbers it into stream chunks;
//! - [`Answer`]: the parts a client assembles from the stream's chunks ([`crate::UiChunk`]), exactly as the server
//!   stores them.
//!
//! Each conversion is one function: the server's turn log turns [`Content`] into chunks, [`Answer::apply`] turns
//! chunks into parts, and [`Content::of_part`] turns a stored part back into content (to replay an answer whose
//! event log expired).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stream::UiChunk;

/// One typed piece of a message's content.
///
/// Parts of a type this version does not know (written by a newer server during a rolling deploy) are kept as
/// they are ([`MessagePart::Other`]) rather than failing the whole message. Written by serde's derive, read by
/// [`MessagePart::from_json`] (a derived reader for this tagged enum with its untagged fallbacks was 18 KB of the web
/// app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum MessagePart {
    /// Answer text (markdown).
    Text {
        /// The text.
        text: String,
    },
    /// The model's reasoning, shown collapsed.
    Reasoning {
        /// The reasoning text.
        text: String,
    },
    /// A tool call with its input and, once known, its output or error (AI SDK `dynamic-tool`).
    #[serde(rename = "dynamic-tool")]
    Tool(ToolPart),
    /// A source the answer cites.
    SourceUrl(Source),
    /// The start of a model step after the first (the answer went on after tool calls).
    StepStart,
    /// Application data kept with the message (`data-<name>`).
    #[serde(untagged)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    Data(DataPart),
    /// A part of a type this version does not know, kept as it is.
    #[serde(untagged)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    Other(Value),
}

/// A source an answer cites (the same in a part and in its stream chunk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Id of the source within the message.
    pub source_id: String,
    /// Where it is.
    pub url: String,
    /// Its title, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A tool call, from its input to its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ToolPart {
    /// The call's id (the model's, or one the server made up).
    pub tool_call_id: String,
    /// The tool's name.
    pub tool_name: String,
    /// Where the call stands.
    pub state: ToolState,
    /// The arguments (JSON), once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Option<Value>,
    /// The result (JSON), once the tool answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub output: Option<Value>,
    /// Why the call failed (state `output-error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_text: Option<String>,
    /// True when the model's side ran the tool (an agent's own tools); false or absent when this server ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_executed: Option<bool>,
    /// Provider data about the call, e.g. `{"databricks": {"serverLabel": "mail"}}` for an agent's MCP tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub call_provider_metadata: Option<Value>,
}

impl ToolPart {
    /// The MCP server the call went to, when the agent named one.
    pub fn server_label(&self) -> Option<&str> {
        self.call_provider_metadata.as_ref()?.pointer("/databricks/serverLabel")?.as_str()
    }
}

/// Where a tool call stands (the AI SDK's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ToolState {
    /// The arguments are still arriving.
    InputStreaming,
    /// The arguments are complete; the tool has not answered.
    InputAvailable,
    /// The tool answered.
    OutputAvailable,
    /// The call failed (invalid input, unknown tool, the tool's own error, a timeout).
    OutputError,
}

/// A `data-<name>` part: application data kept with a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPart {
    /// `data-<name>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Id of the part (a newer part with the same id replaces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The data.
    pub data: Value,
}

impl<'de> Deserialize<'de> for MessagePart {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        MessagePart::from_json(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl MessagePart {
    /// Reads a part from its JSON; a type this version does not know is kept as it is.
    pub fn from_json(value: Value) -> Result<Self, String> {
        let kind = value.get("type").and_then(Value::as_str).unwrap_or_default();
        let text = || value.get("text").and_then(Value::as_str).map(str::to_owned).ok_or("a text part without `text`");
        Ok(match kind {
            "text" => MessagePart::Text { text: text()? },
            "reasoning" => MessagePart::Reasoning { text: text()? },
            "dynamic-tool" => MessagePart::Tool(serde_json::from_value(value).map_err(|e| e.to_string())?),
            "source-url" => MessagePart::SourceUrl(serde_json::from_value(value).map_err(|e| e.to_string())?),
            "step-start" => MessagePart::StepStart,
            data if data.starts_with("data-") && value.get("data").is_some() => {
                MessagePart::Data(serde_json::from_value(value).map_err(|e| e.to_string())?)
            }
            _ => MessagePart::Other(value),
        })
    }

    /// The text of a text or reasoning part; empty for other parts.
    pub fn text(&self) -> &str {
        match self {
            MessagePart::Text { text } | MessagePart::Reasoning { text } => text,
            _ => "",
        }
    }

    /// Whether this is answer text.
    pub fn is_text(&self) -> bool {
        matches!(self, MessagePart::Text { .. })
    }

    /// Whether this is reasoning.
    pub fn is_reasoning(&self) -> bool {
        matches!(self, MessagePart::Reasoning { .. })
    }
}

/// All answer text of some parts, concatenated.
pub fn text_of(parts: &[MessagePart]) -> String {
    parts.iter().filter(|p| p.is_text()).map(MessagePart::text).collect()
}

/// Something a model adds to an answer. The server's turn log numbers these into stream chunks: consecutive text
/// (or reasoning) joins one part; a change of kind, a tool call or a step starts the next. Anything but text is
/// boxed: a token of text is what streams by the thousand, and it should not be moved about at the size of a tool
/// call.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Answer text.
    Text(String),
    /// Reasoning text.
    Reasoning(String),
    /// Something about a tool call.
    Tool(Box<ToolEvent>),
    /// A source the answer cites.
    Source(Box<Source>),
    /// A data part kept with the answer (`data-approval`, `data-agent`); one with the id of an earlier one replaces
    /// it in place.
    Data(Box<DataPart>),
    /// The text (or reasoning) being written is complete: more starts a new part (an agent's next message item).
    PartEnd,
}

/// What happened to a tool call.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolEvent {
    /// A tool call begins; its arguments follow as [`ToolEvent::InputDelta`].
    InputStart {
        /// The call's id.
        tool_call_id: String,
        /// The tool's name.
        tool_name: String,
        /// Whether the model's side runs it.
        provider_executed: bool,
    },
    /// More of a tool call's arguments (JSON text).
    InputDelta {
        /// The call's id.
        tool_call_id: String,
        /// The next piece of the arguments' JSON text.
        delta: String,
    },
    /// A tool call's complete arguments (after its deltas, or alone when they arrive whole).
    Input {
        /// The call's id.
        tool_call_id: String,
        /// The tool's name.
        tool_name: String,
        /// The arguments.
        input: Value,
        /// Whether the model's side runs it.
        provider_executed: bool,
        /// Provider data about the call (an agent's MCP server label).
        provider_metadata: Option<Value>,
    },
    /// A tool's result.
    Output {
        /// The call's id.
        tool_call_id: String,
        /// The result.
        output: Value,
    },
    /// A tool call failed.
    Error {
        /// The call's id.
        tool_call_id: String,
        /// Why, fit to show the user (and to tell the model).
        error_text: String,
    },
}

impl Content {
    /// A tool call's start.
    pub fn tool_input_start(
        tool_call_id: impl Into<String>,
        tool_name: impl Into<String>,
        provider_executed: bool,
    ) -> Self {
        Content::Tool(Box::new(ToolEvent::InputStart {
            tool_call_id: tool_call_id.into(),
            tool_name: tool_name.into(),
            provider_executed,
        }))
    }

    /// More of a tool call's arguments.
    pub fn tool_input_delta(tool_call_id: impl Into<String>, delta: impl Into<String>) -> Self {
        Content::Tool(Box::new(ToolEvent::InputDelta { tool_call_id: tool_call_id.into(), delta: delta.into() }))
    }

    /// A tool call's complete arguments.
    pub fn tool_input(
        tool_call_id: impl Into<String>,
        tool_name: impl Into<String>,
        input: Value,
        provider_executed: bool,
    ) -> Self {
        Content::Tool(Box::new(ToolEvent::Input {
            tool_call_id: tool_call_id.into(),
            tool_name: tool_name.into(),
            input,
            provider_executed,
            provider_metadata: None,
        }))
    }

    /// A call to a tool of an agent's MCP server (the agent runs it), with the server's label.
    pub fn mcp_tool_input(
        tool_call_id: impl Into<String>,
        tool_name: impl Into<String>,
        input: Value,
        server_label: &str,
    ) -> Self {
        Content::Tool(Box::new(ToolEvent::Input {
            tool_call_id: tool_call_id.into(),
            tool_name: tool_name.into(),
            input,
            provider_executed: true,
            provider_metadata: (!server_label.is_empty())
                .then(|| serde_json::json!({"databricks": {"serverLabel": server_label}})),
        }))
    }

    /// A data part kept with the answer.
    pub fn data(kind: impl Into<String>, id: impl Into<String>, data: Value) -> Self {
        Content::Data(Box::new(DataPart { kind: kind.into(), id: Some(id.into()), data }))
    }

    /// A tool's result.
    pub fn tool_output(tool_call_id: impl Into<String>, output: Value) -> Self {
        Content::Tool(Box::new(ToolEvent::Output { tool_call_id: tool_call_id.into(), output }))
    }

    /// A failed tool call.
    pub fn tool_error(tool_call_id: impl Into<String>, error_text: impl Into<String>) -> Self {
        Content::Tool(Box::new(ToolEvent::Error { tool_call_id: tool_call_id.into(), error_text: error_text.into() }))
    }

    /// The content that rebuilds a stored part (replaying an answer whose event log expired). A step boundary is
    /// not content: `None`, and the caller starts a step.
    pub fn of_part(part: &MessagePart) -> Option<Vec<Content>> {
        Some(match part {
            MessagePart::Text { text } => vec![Content::Text(text.clone())],
            MessagePart::Reasoning { text } => vec![Content::Reasoning(text.clone())],
            MessagePart::Tool(tool) => {
                let mut content = vec![Content::Tool(Box::new(ToolEvent::Input {
                    tool_call_id: tool.tool_call_id.clone(),
                    tool_name: tool.tool_name.clone(),
                    input: tool.input.clone().unwrap_or(Value::Object(serde_json::Map::new())),
                    provider_executed: tool.provider_executed.unwrap_or(false),
                    provider_metadata: tool.call_provider_metadata.clone(),
                }))];
                match (tool.state, &tool.output, &tool.error_text) {
                    (ToolState::OutputAvailable, Some(output), _) => {
                        content.push(Content::tool_output(&tool.tool_call_id, output.clone()));
                    }
                    (ToolState::OutputError, _, error) => {
                        content.push(Content::tool_error(&tool.tool_call_id, error.clone().unwrap_or_default()));
                    }
                    _ => {}
                }
                content
            }
            MessagePart::SourceUrl(source) => vec![Content::Source(Box::new(source.clone()))],
            MessagePart::StepStart => return None,
            MessagePart::Data(data) => vec![Content::Data(Box::new(data.clone()))],
            // Unknown parts have no stream chunk this server sends; a replay leaves them out.
            MessagePart::Other(_) => Vec::new(),
        })
    }
}

/// An answer as a client assembles it from the stream, the way the AI SDK's `readUIMessageStream` does. The parts
/// equal what the server stores for the same events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// The parts so far.
    pub parts: Vec<MessagePart>,
    /// Open text and reasoning parts: chunk id → index in `parts`.
    streams: Vec<(String, usize)>,
    /// Arguments of tool calls still streaming: call id → JSON text so far.
    tool_inputs: Vec<(String, String)>,
}

impl Answer {
    /// An answer with these (stored) parts.
    pub fn from_parts(parts: Vec<MessagePart>) -> Self {
        Self { parts, ..Self::default() }
    }

    /// All answer text.
    pub fn text(&self) -> String {
        text_of(&self.parts)
    }

    /// All reasoning text.
    pub fn reasoning(&self) -> String {
        self.parts.iter().filter(|p| p.is_reasoning()).map(MessagePart::text).collect()
    }

    /// Applies one chunk; returns whether the parts changed. Chunks that are not content are ignored.
    pub fn apply(&mut self, chunk: &UiChunk) -> bool {
        match chunk {
            UiChunk::StartStep => {
                // The first step's start is implied; later ones mark where the model went on after tool calls.
                if self.parts.is_empty() {
                    return false;
                }
                self.parts.push(MessagePart::StepStart);
            }
            UiChunk::TextStart { id } => self.open(id, MessagePart::Text { text: String::new() }),
            UiChunk::ReasoningStart { id } => self.open(id, MessagePart::Reasoning { text: String::new() }),
            UiChunk::TextDelta { id, delta } | UiChunk::ReasoningDelta { id, delta } => {
                let reasoning = matches!(chunk, UiChunk::ReasoningDelta { .. });
                let index = match self.streams.iter().find(|(open, _)| open == id) {
                    Some(&(_, index)) => index,
                    // A delta without its start (a client that joined late) still shows.
                    None => {
                        let part = if reasoning {
                            MessagePart::Reasoning { text: String::new() }
                        } else {
                            MessagePart::Text { text: String::new() }
                        };
                        self.open(id, part);
                        self.parts.len() - 1
                    }
                };
                if let Some(MessagePart::Text { text } | MessagePart::Reasoning { text }) = self.parts.get_mut(index) {
                    text.push_str(delta);
                }
            }
            UiChunk::TextEnd { id } | UiChunk::ReasoningEnd { id } => {
                self.streams.retain(|(open, _)| open != id);
                return false;
            }
            UiChunk::ToolInputStart { tool_call_id, tool_name, provider_executed, .. } => {
                self.tool_inputs.push((tool_call_id.clone(), String::new()));
                self.parts.push(MessagePart::Tool(ToolPart {
                    tool_call_id: tool_call_id.clone(),
                    tool_name: tool_name.clone(),
                    state: ToolState::InputStreaming,
                    input: None,
                    output: None,
                    error_text: None,
                    provider_executed: *provider_executed,
                    call_provider_metadata: None,
                }));
            }
            UiChunk::ToolInputDelta { tool_call_id, input_text_delta } => {
                match self.tool_inputs.iter_mut().find(|(id, _)| id == tool_call_id) {
                    Some((_, text)) => text.push_str(input_text_delta),
                    None => return false,
                }
                // The parts show arguments only once they are complete.
                return false;
            }
            UiChunk::ToolInputAvailable {
                tool_call_id,
                tool_name,
                input,
                provider_executed,
                provider_metadata,
                ..
            } => {
                self.tool_inputs.retain(|(id, _)| id != tool_call_id);
                match self.tool_mut(tool_call_id) {
                    Some(tool) => {
                        tool.state = ToolState::InputAvailable;
                        tool.input = Some(input.clone());
                        if let Some(metadata) = provider_metadata {
                            tool.call_provider_metadata = Some((**metadata).clone());
                        }
                    }
                    None => self.parts.push(MessagePart::Tool(ToolPart {
                        tool_call_id: tool_call_id.clone(),
                        tool_name: tool_name.clone(),
                        state: ToolState::InputAvailable,
                        input: Some(input.clone()),
                        output: None,
                        error_text: None,
                        provider_executed: *provider_executed,
                        call_provider_metadata: provider_metadata.as_deref().cloned(),
                    })),
                }
            }
            UiChunk::ToolOutputAvailable { tool_call_id, output, .. } => {
                let Some(tool) = self.tool_mut(tool_call_id) else { return false };
                tool.state = ToolState::OutputAvailable;
                tool.output = Some(output.clone());
            }
            UiChunk::ToolOutputError { tool_call_id, error_text, .. } => {
                let Some(tool) = self.tool_mut(tool_call_id) else { return false };
                tool.state = ToolState::OutputError;
                tool.error_text = Some(error_text.clone());
            }
            UiChunk::SourceUrl(source) => self.parts.push(MessagePart::SourceUrl(source.clone())),
            UiChunk::Data(data) => {
                // As AI SDK clients do: a data part with the type and id of an earlier one replaces it in place.
                let same = |part: &MessagePart| matches!(part, MessagePart::Data(old) if data.id.is_some() && old.kind == data.kind && old.id == data.id);
                match self.parts.iter_mut().find(|part| same(part)) {
                    Some(part) => *part = MessagePart::Data((**data).clone()),
                    None => self.parts.push(MessagePart::Data((**data).clone())),
                }
            }
            UiChunk::Start { .. }
            | UiChunk::FinishStep
            | UiChunk::Error { .. }
            | UiChunk::Abort
            | UiChunk::MessageMetadata { .. }
            | UiChunk::DataChat { .. }
            | UiChunk::DataStatus { .. }
            | UiChunk::Finish { .. } => return false,
        }
        true
    }

    fn open(&mut self, id: &str, part: MessagePart) {
        self.parts.push(part);
        self.streams.retain(|(open, _)| open != id);
        self.streams.push((id.to_owned(), self.parts.len() - 1));
    }

    fn tool_mut(&mut self, tool_call_id: &str) -> Option<&mut ToolPart> {
        self.parts.iter_mut().rev().find_map(|part| match part {
            MessagePart::Tool(tool) if tool.tool_call_id == tool_call_id => Some(tool),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_serialize_to_the_ai_sdk_shapes() {
        let tool = MessagePart::Tool(ToolPart {
            tool_call_id: "c1".into(),
            tool_name: "lookup".into(),
            state: ToolState::OutputAvailable,
            input: Some(serde_json::json!({"q": 1})),
            output: Some(serde_json::json!("42")),
            error_text: None,
            provider_executed: Some(true),
            call_provider_metadata: None,
        });
        let cases = [
            (MessagePart::Text { text: "Hi".into() }, r#"{"type":"text","text":"Hi"}"#),
            (MessagePart::Reasoning { text: "hm".into() }, r#"{"type":"reasoning","text":"hm"}"#),
            (
                tool,
                r#"{"type":"dynamic-tool","toolCallId":"c1","toolName":"lookup","state":"output-available","input":{"q":1},"output":"42","providerExecuted":true}"#,
            ),
            (
                MessagePart::SourceUrl(Source { source_id: "s1".into(), url: "https://x".into(), title: None }),
                r#"{"type":"source-url","sourceId":"s1","url":"https://x"}"#,
            ),
            (MessagePart::StepStart, r#"{"type":"step-start"}"#),
            (
                MessagePart::Data(DataPart { kind: "data-trace".into(), id: None, data: serde_json::json!("tr-1") }),
                r#"{"type":"data-trace","data":"tr-1"}"#,
            ),
        ];
        for (part, json) in cases {
            assert_eq!(serde_json::to_string(&part).expect("serializes"), json);
            assert_eq!(serde_json::from_str::<MessagePart>(json).expect("parses"), part, "{json}");
        }
    }

    #[test]
    fn a_part_of_an_unknown_type_is_kept_as_it_is() {
        let json = r#"{"type":"file","mediaType":"image/png","url":"https://x/y.png"}"#;
        let part: MessagePart = serde_json::from_str(json).expect("parses");
        assert!(matches!(part, MessagePart::Other(_)));
        assert_eq!(
            serde_json::to_value(&part).expect("serializes"),
            serde_json::from_str::<Value>(json).expect("json")
        );
    }

    fn tool_chunks() -> Vec<UiChunk> {
        vec![
            UiChunk::StartStep,
            UiChunk::TextStart { id: "0".into() },
            UiChunk::TextDelta { id: "0".into(), delta: "Let me ".into() },
            UiChunk::TextDelta { id: "0".into(), delta: "look.".into() },
            UiChunk::TextEnd { id: "0".into() },
            UiChunk::ToolInputStart {
                tool_call_id: "c1".into(),
                tool_name: "lookup".into(),
                provider_executed: None,
                dynamic: Some(true),
            },
            UiChunk::ToolInputDelta { tool_call_id: "c1".into(), input_text_delta: "{\"q\":".into() },
            UiChunk::ToolInputDelta { tool_call_id: "c1".into(), input_text_delta: "1}".into() },
            UiChunk::ToolInputAvailable {
                tool_call_id: "c1".into(),
                tool_name: "lookup".into(),
                input: serde_json::json!({"q": 1}),
                provider_executed: None,
                dynamic: Some(true),
                provider_metadata: None,
            },
            UiChunk::ToolOutputAvailable {
                tool_call_id: "c1".into(),
                output: serde_json::json!({"answer": 42}),
                provider_executed: None,
                dynamic: Some(true),
            },
            UiChunk::FinishStep,
            UiChunk::StartStep,
            UiChunk::SourceUrl(Source {
                source_id: "s1".into(),
                url: "https://docs".into(),
                title: Some("Docs".into()),
            }),
            UiChunk::TextStart { id: "3".into() },
            UiChunk::TextDelta { id: "3".into(), delta: "It is 42.".into() },
            UiChunk::TextEnd { id: "3".into() },
            UiChunk::FinishStep,
        ]
    }

    #[test]
    fn chunks_assemble_into_parts_step_by_step() {
        let mut answer = Answer::default();
        for chunk in tool_chunks() {
            answer.apply(&chunk);
        }
        assert_eq!(answer.text(), "Let me look.It is 42.");
        let kinds: Vec<&str> = answer
            .parts
            .iter()
            .map(|p| match p {
                MessagePart::Text { .. } => "text",
                MessagePart::Tool(tool) if tool.state == ToolState::OutputAvailable => "tool done",
                MessagePart::Tool(_) => "tool",
                MessagePart::StepStart => "step",
                MessagePart::SourceUrl(_) => "source",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["text", "tool done", "step", "source", "text"]);
    }

    #[test]
    fn a_data_part_with_the_id_of_an_earlier_one_replaces_it_in_place() {
        let mut answer = Answer::default();
        let data = |state: &str| {
            UiChunk::Data(Box::new(DataPart {
                kind: "data-approval".into(),
                id: Some("approval-1".into()),
                data: serde_json::json!({"state": state}),
            }))
        };
        answer.apply(&data("requested"));
        answer.apply(&UiChunk::TextStart { id: "1".into() });
        answer.apply(&UiChunk::TextDelta { id: "1".into(), delta: "Go on.".into() });
        answer.apply(&data("approved"));
        assert_eq!(answer.parts.len(), 2);
        assert!(matches!(&answer.parts[0], MessagePart::Data(d) if d.data["state"] == "approved"));
        let json = serde_json::to_string(&data("denied")).expect("serializes");
        assert_eq!(json, r#"{"type":"data-approval","id":"approval-1","data":{"state":"denied"}}"#);
        assert_eq!(serde_json::from_str::<UiChunk>(&json).expect("reads back"), data("denied"));
    }

    #[test]
    fn an_error_output_and_late_deltas_are_kept() {
        let mut answer = Answer::default();
        answer.apply(&UiChunk::ToolInputAvailable {
            tool_call_id: "c9".into(),
            tool_name: "t".into(),
            input: serde_json::json!({}),
            provider_executed: Some(true),
            dynamic: Some(true),
            provider_metadata: Some(Box::new(serde_json::json!({"databricks": {"serverLabel": "mail"}}))),
        });
        answer.apply(&UiChunk::ToolOutputError {
            tool_call_id: "c9".into(),
            error_text: "boom".into(),
            provider_executed: Some(true),
            dynamic: Some(true),
        });
        answer.apply(&UiChunk::TextDelta { id: "7".into(), delta: "joined late".into() });
        assert!(matches!(&answer.parts[0], MessagePart::Tool(t) if t.error_text.as_deref() == Some("boom")));
        assert_eq!(answer.text(), "joined late");
    }

    #[test]
    fn stored_parts_turn_back_into_the_same_content() {
        let mut answer = Answer::default();
        for chunk in tool_chunks() {
            answer.apply(&chunk);
        }
        let content: Vec<Option<Vec<Content>>> = answer.parts.iter().map(Content::of_part).collect();
        assert_eq!(content[0], Some(vec![Content::Text("Let me look.".into())]));
        assert_eq!(
            content[1],
            Some(vec![
                Content::tool_input("c1", "lookup", serde_json::json!({"q": 1}), false),
                Content::tool_output("c1", serde_json::json!({"answer": 42})),
            ])
        );
        assert_eq!(content[2], None, "a step boundary");
    }
}
