//! OpenAI chat-completions wire types (private to the protocol). Incoming chunks are parsed leniently: every
//! field may be missing, `content` may be a string or a list of parts (PROTOCOLS.md §B.1, §B.3).

use serde::{Deserialize, Serialize};

/// Request body. `stream_options` is deliberately absent: Databricks endpoints reject it (§B.4).
#[derive(Debug, Serialize)]
pub struct CompletionRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<WireMessage>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'static str>,
    /// `{conversation_id, user_id}` for an agent behind chat completions (`agent/v1/chat`); never sent to a plain
    /// model (OpenAI-compatible servers may refuse unknown fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
}

/// One prompt message: `{role, content}`, an assistant message with `tool_calls`, or a `tool` result.
#[derive(Debug, PartialEq, Serialize)]
pub struct WireMessage {
    pub role: &'static str,
    pub content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<WireToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// A tool call the model made, echoed back in the history (AGENTS-PROTOCOL.md §D).
#[derive(Debug, PartialEq, Serialize)]
pub struct WireToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: WireFunctionCall,
}

/// Name and arguments (a JSON string) of a called function.
#[derive(Debug, PartialEq, Serialize)]
pub struct WireFunctionCall {
    pub name: String,
    pub arguments: String,
}

/// A tool offered to the model.
#[derive(Debug, Serialize)]
pub struct WireTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: WireFunction<'a>,
}

/// A function's name, description and JSON Schema.
#[derive(Debug, Serialize)]
pub struct WireFunction<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub parameters: &'a serde_json::Value,
}

/// A streamed chunk, or an error object sent in its place.
#[derive(Debug, Default, Deserialize)]
pub struct Chunk {
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    /// OpenAI-style in-stream error: `{"error": {...}}` (or a string).
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    /// Databricks-style error: `{"error_code": "...", "message": "..."}`.
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub delta: Option<Delta>,
    /// Non-streaming answers carry `message` instead of `delta`.
    #[serde(default)]
    pub message: Option<Delta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Delta {
    #[serde(default)]
    pub content: Option<Content>,
    /// vLLM / DeepSeek.
    #[serde(default)]
    pub reasoning_content: Option<String>,
    /// Ollama / OpenRouter.
    #[serde(default)]
    pub reasoning: Option<String>,
    /// Pieces of tool calls (AGENTS-PROTOCOL.md §D): id and name on a call's first piece, `arguments` text after.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A piece of a tool call, keyed by `index` (a whole call in a non-streaming `message`, where `index` may be absent).
#[derive(Debug, Default, Deserialize)]
pub struct ToolCallDelta {
    #[serde(default)]
    pub index: Option<usize>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<FunctionDelta>,
}

/// A piece of a called function: its name (first piece) and more of its arguments' JSON text.
#[derive(Debug, Default, Deserialize)]
pub struct FunctionDelta {
    #[serde(default)]
    pub name: Option<String>,
    /// Usually a string; some servers send the arguments as a JSON object.
    #[serde(default)]
    pub arguments: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// `{type:"text", text}` or `{type:"reasoning", summary:[{type:"summary_text", text}]}`; other types ignored.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub summary: Option<Vec<SummaryPart>>,
}

#[derive(Debug, Deserialize)]
pub struct SummaryPart {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: Option<i64>,
    #[serde(default)]
    pub completion_tokens: Option<i64>,
}
