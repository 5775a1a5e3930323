//! OpenAI-compatible chat completions with `stream: true` (PROTOCOLS.md §B): Databricks Model Serving
//! (`llm/v1/chat` and `agent/v1/chat` endpoints), AI Gateway, vLLM, llama.cpp, Ollama. This module says where to
//! send a request and how it is written; [`parse`] reads the answer; the shared [`crate::llm::transport`] does
//! the rest.

mod parse;
mod tool_calls;
mod wire;

use shared::{MessagePart, ToolState};

pub use parse::ChunkParser;
use wire::{CompletionRequest, WireFunction, WireFunctionCall, WireMessage, WireTool, WireToolCall};

use super::transport::WireProtocol;
use super::{ModelError, ModelRequest, PromptMessage, PromptRole};

/// The chat-completions protocol at `{base_url}/chat/completions`.
pub struct ChatCompletions {
    completions_url: String,
}

impl ChatCompletions {
    /// The protocol for an OpenAI-compatible base URL.
    pub fn new(base_url: &str) -> Self {
        Self { completions_url: format!("{}/chat/completions", base_url.trim_end_matches('/')) }
    }
}

impl WireProtocol for ChatCompletions {
    type Parser = ChunkParser;

    fn url(&self, _request: &ModelRequest) -> String {
        self.completions_url.clone()
    }

    fn body(&self, request: &ModelRequest) -> Result<Vec<u8>, ModelError> {
        let body = CompletionRequest {
            model: &request.model,
            messages: wire_messages(&request.messages),
            stream: true,
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            tools: request
                .tools
                .iter()
                .map(|tool| WireTool {
                    kind: "function",
                    function: WireFunction {
                        name: &tool.name,
                        description: &tool.description,
                        parameters: &tool.input_schema,
                    },
                })
                .collect(),
            tool_choice: (!request.tools.is_empty()).then_some("auto"),
            context: request.context.as_ref().map(
                |context| serde_json::json!({"conversation_id": context.conversation_id, "user_id": context.user_id}),
            ),
        };
        serde_json::to_vec(&body).map_err(|_| ModelError::Protocol)
    }

    fn parser(&self, request: &ModelRequest) -> ChunkParser {
        ChunkParser::new(request.tools.iter().map(|tool| tool.name.clone()).collect())
    }
}

/// The prompt as chat-completions messages. An assistant message becomes one message per step: its text with
/// the tool calls this server ran in that step, each followed by a `tool` message with its result, so every call
/// has exactly one result. Calls without a result (the answer was cut short) and calls the model's side ran (an
/// agent's own tools) are left out; reasoning never goes back.
fn wire_messages(messages: &[PromptMessage]) -> Vec<WireMessage> {
    let mut wire = Vec::with_capacity(messages.len());
    for message in messages {
        if message.role != PromptRole::Assistant {
            wire.push(text_message(message.role.as_str(), message.text_content()));
            continue;
        }
        for step in message.parts.split(|part| matches!(part, MessagePart::StepStart)) {
            let text = shared::text_of(step);
            let mut calls = Vec::new();
            let mut results = Vec::new();
            for part in step {
                let MessagePart::Tool(tool) = part else { continue };
                if tool.provider_executed == Some(true) {
                    continue;
                }
                let result = match (tool.state, &tool.output, &tool.error_text) {
                    (ToolState::OutputAvailable, Some(output), _) => json_string(output),
                    (ToolState::OutputError, _, error) => {
                        serde_json::json!({"error": error.clone().unwrap_or_default()}).to_string()
                    }
                    _ => continue,
                };
                calls.push(WireToolCall {
                    id: tool.tool_call_id.clone(),
                    kind: "function",
                    function: WireFunctionCall {
                        name: tool.tool_name.clone(),
                        arguments: super::echoed_arguments(tool.input.as_ref()),
                    },
                });
                results.push(WireMessage {
                    role: "tool",
                    content: result,
                    tool_calls: Vec::new(),
                    tool_call_id: Some(tool.tool_call_id.clone()),
                });
            }
            if calls.is_empty() {
                if !text.is_empty() {
                    wire.push(text_message("assistant", text));
                }
                continue;
            }
            // Claude on Databricks refuses an empty content beside tool calls (AGENTS-PROTOCOL.md §D).
            let content = if text.is_empty() { " ".to_owned() } else { text };
            wire.push(WireMessage { role: "assistant", content, tool_calls: calls, tool_call_id: None });
            wire.extend(results);
        }
    }
    wire
}

fn text_message(role: &'static str, content: String) -> WireMessage {
    WireMessage { role, content, tool_calls: Vec::new(), tool_call_id: None }
}

/// A tool result as the string a `tool` message carries: a string result as it is, anything else as JSON.
fn json_string(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::ToolPart;

    use super::*;

    fn tool(id: &str, state: ToolState, output: Option<serde_json::Value>, provider: bool) -> MessagePart {
        MessagePart::Tool(ToolPart {
            tool_call_id: id.into(),
            tool_name: "lookup".into(),
            state,
            input: Some(json!({"q": id})),
            output,
            error_text: (state == ToolState::OutputError).then(|| "boom".to_owned()),
            provider_executed: provider.then_some(true),
            call_provider_metadata: None,
        })
    }

    #[test]
    fn plain_messages_are_role_and_content_only() {
        let messages =
            [PromptMessage::text(PromptRole::System, "Be brief."), PromptMessage::text(PromptRole::User, "Hi")];
        let json = serde_json::to_value(wire_messages(&messages)).expect("serializes");
        assert_eq!(json, json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]));
    }

    #[test]
    fn an_answer_with_tool_steps_pairs_every_call_with_one_result() {
        let answer = PromptMessage {
            role: PromptRole::Assistant,
            parts: vec![
                MessagePart::Text { text: "Looking.".into() },
                tool("a", ToolState::OutputAvailable, Some(json!({"n": 1})), false),
                tool("b", ToolState::OutputError, None, false),
                tool("agent", ToolState::OutputAvailable, Some(json!("x")), true),
                MessagePart::StepStart,
                MessagePart::Reasoning { text: "hidden".into() },
                tool("c", ToolState::OutputAvailable, Some(json!("plain")), false),
                tool("cut", ToolState::InputAvailable, None, false),
                MessagePart::StepStart,
                MessagePart::Text { text: "Done.".into() },
            ],
        };
        let json = serde_json::to_value(wire_messages(&[answer])).expect("serializes");
        assert_eq!(
            json,
            json!([
                {"role": "assistant", "content": "Looking.", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"a\"}"}},
                    {"id": "b", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"b\"}"}}]},
                {"role": "tool", "content": "{\"n\":1}", "tool_call_id": "a"},
                {"role": "tool", "content": "{\"error\":\"boom\"}", "tool_call_id": "b"},
                {"role": "assistant", "content": " ", "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"c\"}"}}]},
                {"role": "tool", "content": "plain", "tool_call_id": "c"},
                {"role": "assistant", "content": "Done."}
            ])
        );
    }

    #[test]
    fn arguments_that_were_not_an_object_go_back_as_an_empty_object() {
        let mut malformed = tool("m", ToolState::OutputError, None, false);
        if let MessagePart::Tool(part) = &mut malformed {
            part.input = Some(json!("{\"q\": "));
        }
        let answer = PromptMessage { role: PromptRole::Assistant, parts: vec![malformed] };
        let json = serde_json::to_value(wire_messages(&[answer])).expect("serializes");
        assert_eq!(json[0]["tool_calls"][0]["function"]["arguments"], "{}");
        assert_eq!(json[1]["content"], "{\"error\":\"boom\"}");
    }

    #[test]
    fn tools_are_offered_with_tool_choice_auto() {
        let request = ModelRequest {
            model: "m".into(),
            protocol: crate::llm::Protocol::ChatCompletions,
            messages: vec![PromptMessage::text(PromptRole::User, "Hi")],
            tools: vec![crate::llm::ToolDefinition {
                name: "lookup".into(),
                description: "Looks up.".into(),
                input_schema: json!({"type": "object"}),
            }],
            temperature: None,
            max_tokens: None,
            user_token: None,
            context: None,
            resume: None,
        };
        let body: serde_json::Value =
            serde_json::from_slice(&ChatCompletions::new("http://x/").body(&request).expect("body")).expect("json");
        assert_eq!(body["tool_choice"], "auto");
        assert_eq!(body["tools"][0]["function"]["name"], "lookup");
        assert_eq!(body["stream"], true);
        assert!(body.get("temperature").is_none());
    }
}
