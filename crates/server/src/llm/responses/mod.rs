//! The OpenAI Responses API as Databricks agents speak it (AGENTS-PROTOCOL.md §B): MLflow `ResponsesAgent` and
//! Agent Bricks on Model Serving (`agent/v1/responses`, `agent/v2/responses`: `POST {base}/responses` with the
//! endpoint as `model`), and agents served by Databricks Apps (MLflow AgentServer `POST {app}/responses`, Agent
//! Bricks `POST {app}/api/invocations`, same body and stream). This module writes the request; [`parse`] reads the
//! stream.

mod parse;

use serde_json::{Value, json};
use shared::{MessagePart, ToolState};

pub use parse::ResponsesParser;

use super::transport::WireProtocol;
use super::{ModelError, ModelRequest, PromptMessage, PromptRole};

/// Longest item or call id echoed back to an agent: Databricks' model serving refuses longer ones (§B.1).
const MAX_ECHOED_ID: usize = 64;

/// Where a Responses agent is called.
#[derive(Debug, Clone)]
pub enum ResponsesTarget {
    /// Serving endpoints: `POST {base}/responses`, the endpoint named by `model`.
    ServingEndpoints {
        /// `{host}/serving-endpoints` (or an OpenAI-compatible base).
        base_url: String,
    },
    /// One agent at a fixed URL (a Databricks App): `POST {url}`.
    Fixed {
        /// The full URL (`{app}/responses` or `{app}/api/invocations`).
        url: String,
    },
}

/// The Responses protocol.
pub struct Responses {
    target: ResponsesTarget,
}

impl Responses {
    /// The protocol, calling `target`.
    pub fn new(target: ResponsesTarget) -> Self {
        Self { target }
    }
}

impl WireProtocol for Responses {
    type Parser = ResponsesParser;

    fn url(&self, _request: &ModelRequest) -> String {
        match &self.target {
            ResponsesTarget::ServingEndpoints { base_url } => format!("{}/responses", base_url.trim_end_matches('/')),
            ResponsesTarget::Fixed { url } => url.clone(),
        }
    }

    fn body(&self, request: &ModelRequest) -> Result<Vec<u8>, ModelError> {
        let mut body = json!({
            "model": request.model,
            "input": input_items(&request.messages),
            "stream": true,
            // The agent returns its MLflow trace id, so the user's feedback can be attached to it (§B.3).
            "databricks_options": {"return_trace": true},
        });
        if let Some(context) = &request.context {
            body["context"] = json!({"conversation_id": context.conversation_id, "user_id": context.user_id});
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = json!(temperature);
        }
        if let Some(max_tokens) = request.max_tokens {
            body["max_output_tokens"] = json!(max_tokens);
        }
        serde_json::to_vec(&body).map_err(|_| ModelError::Protocol)
    }

    fn headers(&self, _request: &ModelRequest) -> Vec<(&'static str, &'static str)> {
        // MLflow's AgentServer adds a `{"trace_id": ...}` frame to the stream when asked (§B.3).
        vec![("x-mlflow-return-trace-id", "true")]
    }

    fn parser(&self) -> ResponsesParser {
        ResponsesParser::default()
    }
}

/// The prompt as Responses input items, in order: messages as `{role, content}`, and of the agent's earlier answers
/// their text as output messages and their tool calls as `function_call` items, each followed by its
/// `function_call_output`. A call without a result (the answer was cut short) is left out with nothing after it, so
/// no call is ever an orphan; reasoning and citations stay out.
fn input_items(messages: &[PromptMessage]) -> Vec<Value> {
    let mut items = Vec::with_capacity(messages.len());
    for message in messages {
        match message.role {
            PromptRole::System | PromptRole::User => {
                items.push(json!({"role": message.role.as_str(), "content": message.text_content()}));
            }
            PromptRole::Assistant => {
                for part in &message.parts {
                    match part {
                        MessagePart::Text { text } if !text.is_empty() => items.push(json!({
                            "role": "assistant",
                            "content": [{"type": "output_text", "text": text}],
                        })),
                        MessagePart::Tool(tool) => {
                            let output = match (tool.state, &tool.output, &tool.error_text) {
                                (ToolState::OutputAvailable, Some(output), _) => output_string(output),
                                (ToolState::OutputError, _, error) => {
                                    json!({"error": error.clone().unwrap_or_default()}).to_string()
                                }
                                _ => continue,
                            };
                            let call_id = echoed(&tool.tool_call_id);
                            let arguments = tool.input.as_ref().map_or_else(|| "{}".to_owned(), Value::to_string);
                            items.push(json!({
                                "type": "function_call",
                                "call_id": call_id,
                                "name": tool.tool_name,
                                "arguments": arguments,
                            }));
                            items.push(json!({"type": "function_call_output", "call_id": call_id, "output": output}));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    items
}

/// A tool's result as the string a `function_call_output` carries.
fn output_string(output: &Value) -> String {
    match output {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// An id as it may be echoed back: at most 64 characters (cut on a character boundary).
fn echoed(id: &str) -> String {
    id.chars().take(MAX_ECHOED_ID).collect()
}

#[cfg(test)]
mod tests {
    use shared::ToolPart;
    use uuid::Uuid;

    use super::*;
    use crate::llm::{CallContext, Protocol};

    fn request(messages: Vec<PromptMessage>) -> ModelRequest {
        ModelRequest {
            model: "my-agent".into(),
            protocol: Protocol::Responses,
            messages,
            tools: Vec::new(),
            temperature: None,
            max_tokens: Some(500),
            user_token: None,
            context: Some(CallContext { conversation_id: Uuid::nil(), user_id: "ada@example.com".into() }),
        }
    }

    fn tool(id: &str, state: ToolState, output: Option<Value>) -> MessagePart {
        MessagePart::Tool(ToolPart {
            tool_call_id: id.into(),
            tool_name: "lookup".into(),
            state,
            input: Some(json!({"q": 1})),
            output,
            error_text: (state == ToolState::OutputError).then(|| "boom".to_owned()),
            provider_executed: Some(true),
        })
    }

    #[test]
    fn the_body_carries_the_history_as_items_the_context_and_asks_for_the_trace() {
        let long_id = "x".repeat(80);
        let messages = vec![
            PromptMessage::text(PromptRole::System, "Be brief."),
            PromptMessage::text(PromptRole::User, "Hi"),
            PromptMessage {
                role: PromptRole::Assistant,
                parts: vec![
                    MessagePart::Reasoning { text: "hidden".into() },
                    MessagePart::Text { text: "Looking.".into() },
                    tool(&long_id, ToolState::OutputAvailable, Some(json!("42"))),
                    tool("failed", ToolState::OutputError, None),
                    tool("cut", ToolState::InputAvailable, None),
                    MessagePart::Text { text: "It is 42.".into() },
                ],
            },
            PromptMessage::text(PromptRole::User, "Why?"),
        ];
        let protocol =
            Responses::new(ResponsesTarget::ServingEndpoints { base_url: "https://h/serving-endpoints/".into() });
        let body: Value =
            serde_json::from_slice(&protocol.body(&request(messages.clone())).expect("body")).expect("json");

        assert_eq!(protocol.url(&request(messages)), "https://h/serving-endpoints/responses");
        assert_eq!(body["model"], "my-agent");
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_output_tokens"], 500);
        assert_eq!(body["databricks_options"]["return_trace"], true);
        assert_eq!(body["context"], json!({"conversation_id": Uuid::nil(), "user_id": "ada@example.com"}));
        let echoed_id = "x".repeat(64);
        assert_eq!(
            body["input"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
                {"type": "function_call", "call_id": echoed_id, "name": "lookup", "arguments": "{\"q\":1}"},
                {"type": "function_call_output", "call_id": echoed_id, "output": "42"},
                {"type": "function_call", "call_id": "failed", "name": "lookup", "arguments": "{\"q\":1}"},
                {"type": "function_call_output", "call_id": "failed", "output": "{\"error\":\"boom\"}"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "It is 42."}]},
                {"role": "user", "content": "Why?"}
            ])
        );
    }

    #[test]
    fn an_app_agent_is_called_at_its_url() {
        let protocol = Responses::new(ResponsesTarget::Fixed { url: "https://agent.app/responses".into() });
        assert_eq!(protocol.url(&request(Vec::new())), "https://agent.app/responses");
        assert_eq!(protocol.headers(&request(Vec::new())), vec![("x-mlflow-return-trace-id", "true")]);
    }
}
