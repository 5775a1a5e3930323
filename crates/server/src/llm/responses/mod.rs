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
        serde_json::to_vec(&request_body(request)).map_err(|_| ModelError::Protocol)
    }

    fn headers(&self, _request: &ModelRequest) -> Vec<(&'static str, &'static str)> {
        HEADERS.to_vec()
    }

    fn parser(&self, _request: &ModelRequest) -> ResponsesParser {
        ResponsesParser::default()
    }
}

/// Headers of every Responses request: MLflow's AgentServer adds a `{"trace_id": ...}` frame to the stream when
/// asked (§B.3).
pub const HEADERS: [(&str, &str); 1] = [("x-mlflow-return-trace-id", "true")];

/// The JSON body of a Responses request.
pub fn request_body(request: &ModelRequest) -> Value {
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
    body
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
                // Calls that waited for an approval go back as the request and the user's response (§G.4), not as a
                // function call; one still waiting is left out with its card, so nothing is an orphan.
                let approvals: Vec<&Value> = message
                    .parts
                    .iter()
                    .filter_map(|part| match part {
                        MessagePart::Data(data) if data.kind == APPROVAL_PART && !ran_here(&data.data) => {
                            Some(&data.data)
                        }
                        _ => None,
                    })
                    .collect();
                let awaited = |call_id: &str| approvals.iter().any(|a| a["toolCallId"].as_str() == Some(call_id));
                for part in &message.parts {
                    match part {
                        MessagePart::Data(data) if data.kind == APPROVAL_PART && !ran_here(&data.data) => {
                            items.extend(approval_items(&data.data));
                        }
                        MessagePart::Tool(tool) if awaited(&tool.tool_call_id) => {}
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
                            let arguments = super::echoed_arguments(tool.input.as_ref());
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

/// The type of the part that holds an agent's approval request and the user's answer.
pub const APPROVAL_PART: &str = "data-approval";

/// Whether an approval was for a tool this server runs (it names the tool's `source`): its call goes back as a
/// plain call with its result, not as an agent's approval request.
pub fn ran_here(approval: &Value) -> bool {
    approval.get("source").is_some_and(Value::is_string)
}

/// The type of the part that records the conversation id a long-running agent moved the chat to.
pub const CONVERSATION_PART: &str = "data-conversation";

/// An answered approval as Responses input: the agent's request, then the user's response. Nothing while it waits.
fn approval_items(approval: &Value) -> Vec<Value> {
    let approve = match approval["state"].as_str() {
        Some("approved") => true,
        Some("denied") => false,
        _ => return Vec::new(),
    };
    let id = echoed(approval["approvalId"].as_str().unwrap_or_default());
    let arguments = match &approval["arguments"] {
        Value::String(text) => text.clone(),
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    };
    let mut response = json!({"type": "mcp_approval_response", "approval_request_id": id, "approve": approve});
    if let Some(reason) = approval["reason"].as_str().filter(|r| !r.is_empty()) {
        response["reason"] = json!(reason);
    }
    vec![
        json!({
            "type": "mcp_approval_request",
            "id": id,
            "name": approval["toolName"],
            "arguments": arguments,
            "server_label": approval["serverLabel"],
        }),
        response,
    ]
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
            context: Some(CallContext { conversation_id: Uuid::nil().to_string(), user_id: "ada@example.com".into() }),
            resume: None,
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
            call_provider_metadata: None,
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
    fn answered_approvals_go_back_as_request_and_response_and_waiting_ones_not_at_all() {
        let approval = |id: &str, state: &str, reason: Option<&str>| {
            let mut data = json!({"approvalId": id, "toolCallId": id, "toolName": "send_email",
                                  "serverLabel": "mail", "arguments": {"to": "ops"}, "state": state});
            if let Some(reason) = reason {
                data["reason"] = json!(reason);
            }
            MessagePart::Data(shared::DataPart { kind: APPROVAL_PART.into(), id: Some(format!("approval-{id}")), data })
        };
        let card = |id: &str, state: ToolState| {
            let output = (state == ToolState::OutputAvailable).then(|| json!({"approved": true}));
            tool(id, state, output)
        };
        let messages = vec![PromptMessage {
            role: PromptRole::Assistant,
            parts: vec![
                card("a1", ToolState::OutputAvailable),
                approval("a1", "approved", None),
                card("d1", ToolState::OutputError),
                approval("d1", "denied", Some("not now")),
                card("w1", ToolState::InputAvailable),
                approval("w1", "requested", None),
            ],
        }];
        let protocol = Responses::new(ResponsesTarget::ServingEndpoints { base_url: "https://h".into() });
        let body: Value = serde_json::from_slice(&protocol.body(&request(messages)).expect("body")).expect("json");
        assert_eq!(
            body["input"],
            json!([
                {"type": "mcp_approval_request", "id": "a1", "name": "send_email", "arguments": "{\"to\":\"ops\"}", "server_label": "mail"},
                {"type": "mcp_approval_response", "approval_request_id": "a1", "approve": true},
                {"type": "mcp_approval_request", "id": "d1", "name": "send_email", "arguments": "{\"to\":\"ops\"}", "server_label": "mail"},
                {"type": "mcp_approval_response", "approval_request_id": "d1", "approve": false, "reason": "not now"}
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
