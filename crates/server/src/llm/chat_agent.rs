//! MLflow `ChatAgent` (`agent/v2/chat` serving endpoints; AGENTS-PROTOCOL.md §C): `POST {base}/{endpoint}/invocations`
//! with `{messages, stream, context}`. Each streamed chunk carries a `delta` message whose `content` is the next piece
//! of the message with that `delta.id` (a new id is a new message, so a new part); tool calls arrive whole
//! (`delta.tool_calls`) and their results as `role: "tool"` messages. The agent runs its tools itself.

use std::collections::HashSet;

use serde_json::{Value, json};
use shared::{Content, MessagePart, ToolState, Usage};

use super::transport::{Parsed, StreamParser, WireProtocol, classify_error, safe_message};
use super::{ModelError, ModelEvent, ModelRequest, PromptRole};

/// The ChatAgent protocol at `{base_url}/{endpoint}/invocations`.
pub struct ChatAgent {
    base_url: String,
}

impl ChatAgent {
    /// The protocol for serving endpoints under `base_url` (`{host}/serving-endpoints`).
    pub fn new(base_url: &str) -> Self {
        Self { base_url: base_url.trim_end_matches('/').to_owned() }
    }
}

impl WireProtocol for ChatAgent {
    type Parser = ChatAgentParser;

    fn url(&self, request: &ModelRequest) -> String {
        format!("{}/{}/invocations", self.base_url, request.model)
    }

    fn body(&self, request: &ModelRequest) -> Result<Vec<u8>, ModelError> {
        let mut messages = Vec::new();
        for message in &request.messages {
            let id = |index: usize| format!("{}-{index}", message.role.as_str());
            if message.role != PromptRole::Assistant {
                messages.push(
                    json!({"role": message.role.as_str(), "content": message.text_content(), "id": id(messages.len())}),
                );
                continue;
            }
            for part in &message.parts {
                match part {
                    MessagePart::Text { text } if !text.is_empty() => {
                        messages.push(json!({"role": "assistant", "content": text, "id": id(messages.len())}));
                    }
                    MessagePart::Tool(tool) => {
                        let output = match (tool.state, &tool.output, &tool.error_text) {
                            (ToolState::OutputAvailable, Some(Value::String(text)), _) => text.clone(),
                            (ToolState::OutputAvailable, Some(other), _) => other.to_string(),
                            (ToolState::OutputError, _, error) => json!({"error": error}).to_string(),
                            // A call without a result is left out, so none is an orphan.
                            _ => continue,
                        };
                        let arguments = tool.input.as_ref().map_or_else(|| "{}".to_owned(), Value::to_string);
                        messages.push(json!({"role": "assistant", "content": "", "id": id(messages.len()),
                            "tool_calls": [{"id": tool.tool_call_id, "type": "function",
                                            "function": {"name": tool.tool_name, "arguments": arguments}}]}));
                        messages.push(json!({"role": "tool", "content": output, "id": id(messages.len()),
                            "name": tool.tool_name, "tool_call_id": tool.tool_call_id}));
                    }
                    _ => {}
                }
            }
        }
        let mut body = json!({"messages": messages, "stream": true});
        if let Some(context) = &request.context {
            body["context"] = json!({"conversation_id": context.conversation_id, "user_id": context.user_id});
        }
        serde_json::to_vec(&body).map_err(|_| ModelError::Protocol)
    }

    fn parser(&self, _request: &ModelRequest) -> ChatAgentParser {
        ChatAgentParser::default()
    }
}

/// State of one ChatAgent stream.
#[derive(Debug, Default)]
pub struct ChatAgentParser {
    /// The message whose content is being written.
    open_message: Option<String>,
    /// Tool calls already shown.
    calls: HashSet<String>,
}

impl StreamParser for ChatAgentParser {
    fn parse(&mut self, data: &str) -> Result<Parsed, ModelError> {
        let data = data.trim();
        if data.starts_with("[DONE]") {
            return Ok(Parsed::Done);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|_| ModelError::Protocol)?;
        if let Some(code) = chunk.get("error_code").and_then(Value::as_str) {
            return Err(classify_error(code, chunk.get("message").and_then(Value::as_str).unwrap_or(code)));
        }
        if let Some(error) = chunk.get("error") {
            let message = error.as_str().or_else(|| error.get("message").and_then(Value::as_str)).unwrap_or("error");
            return Err(ModelError::Upstream(safe_message(message)));
        }
        let mut events = Vec::new();
        if let Some(delta) = chunk.get("delta") {
            self.delta(delta, &mut events);
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let count = |field: &str| usage.get(field).and_then(Value::as_i64);
            events.push(ModelEvent::Usage(Usage {
                input_tokens: count("prompt_tokens"),
                output_tokens: count("completion_tokens"),
            }));
        }
        Ok(Parsed::Events(events))
    }

    fn finish(&mut self) -> Vec<ModelEvent> {
        Vec::new()
    }
}

impl ChatAgentParser {
    fn delta(&mut self, delta: &Value, events: &mut Vec<ModelEvent>) {
        let text = |field: &str| delta.get(field).and_then(Value::as_str).unwrap_or_default();
        let id = text("id");
        match text("role") {
            "tool" => {
                self.close(events);
                let output =
                    serde_json::from_str(text("content")).unwrap_or_else(|_| Value::String(text("content").to_owned()));
                events.push(ModelEvent::Content(Content::tool_output(text("tool_call_id"), output)));
            }
            _ => {
                let content = text("content");
                if !content.is_empty() {
                    if self.open_message.as_deref() != Some(id) {
                        self.close(events);
                        self.open_message = Some(id.to_owned());
                    }
                    events.push(ModelEvent::text(content));
                }
                for call in delta.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
                    let call_id = call.get("id").and_then(Value::as_str).unwrap_or_default();
                    if call_id.is_empty() || !self.calls.insert(call_id.to_owned()) {
                        continue;
                    }
                    self.close(events);
                    let function = call.get("function").unwrap_or(&Value::Null);
                    let name = function.get("name").and_then(Value::as_str).unwrap_or_default();
                    let arguments = function.get("arguments").and_then(Value::as_str).unwrap_or("{}");
                    let input = serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()));
                    events.push(ModelEvent::Content(Content::tool_input(call_id, name, input, true)));
                }
            }
        }
    }

    fn close(&mut self, events: &mut Vec<ModelEvent>) {
        if self.open_message.take().is_some() {
            events.push(ModelEvent::Content(Content::PartEnd));
        }
    }
}

#[cfg(test)]
mod tests {
    use shared::Answer;
    use uuid::Uuid;

    use super::*;
    use crate::engine::log::TurnLog;
    use crate::llm::{CallContext, PromptMessage, Protocol};

    fn answer_of(frames: &[&str]) -> Result<Answer, ModelError> {
        let mut parser = ChatAgentParser::default();
        let mut log = TurnLog::default();
        for frame in frames {
            if let Parsed::Events(events) = parser.parse(frame)? {
                for event in events {
                    if let ModelEvent::Content(content) = event {
                        log.push(content);
                    }
                }
            }
        }
        log.close_part();
        let mut answer = Answer::default();
        log.chunks(1, log.len()).iter().for_each(|chunk| {
            answer.apply(chunk);
        });
        Ok(answer)
    }

    #[test]
    fn the_fixture_stream_gives_text_a_tool_call_its_result_and_more_text() {
        // AGENTS-PROTOCOL.md §C, with the text around the tool call; the stream ends without [DONE].
        let answer = answer_of(&[
            r#"{"id":"c1","delta":{"role":"assistant","content":"Let me ","id":"msg_001"}}"#,
            r#"{"id":"c1","delta":{"role":"assistant","content":"check.","id":"msg_001"}}"#,
            r#"{"id":"chatcmpl-456","delta":{"role":"assistant","content":"","id":"msg_002","tool_calls":[{"type":"function","id":"call_abc123","function":{"name":"get_weather","arguments":"{\"location\": \"San Francisco\"}"}}]}}"#,
            r#"{"id":"chatcmpl-456","delta":{"role":"tool","name":"get_weather","content":"{\"temperature\": 18}","tool_call_id":"call_abc123","id":"tool_msg_001"}}"#,
            r#"{"id":"c3","delta":{"role":"assistant","content":"It is 18 degrees.","id":"msg_003"},"usage":{"prompt_tokens":0,"completion_tokens":0}}"#,
        ])
        .expect("parses");
        let texts: Vec<&str> = answer.parts.iter().filter(|p| p.is_text()).map(MessagePart::text).collect();
        assert_eq!(texts, ["Let me check.", "It is 18 degrees."]);
        let tool = answer.parts.iter().find_map(|p| match p {
            MessagePart::Tool(tool) => Some(tool),
            _ => None,
        });
        let tool = tool.expect("a tool part");
        assert_eq!((tool.tool_name.as_str(), tool.state), ("get_weather", ToolState::OutputAvailable));
        assert_eq!(tool.output, Some(json!({"temperature": 18})));
    }

    #[test]
    fn errors_end_the_stream() {
        assert!(answer_of(&[r#"{"error":"boom"}"#]).is_err());
        assert_eq!(
            answer_of(&[r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"x"}"#]).err(),
            Some(ModelError::RateLimited { retry_after: None })
        );
    }

    #[test]
    fn the_request_goes_to_the_endpoints_invocations_with_the_context() {
        let request = ModelRequest {
            model: "my-chat-agent".into(),
            protocol: Protocol::ChatAgent,
            messages: vec![PromptMessage::text(PromptRole::User, "Weather?")],
            tools: Vec::new(),
            temperature: None,
            max_tokens: None,
            user_token: None,
            context: Some(CallContext { conversation_id: Uuid::nil().to_string(), user_id: "ada@example.com".into() }),
            resume: None,
        };
        let protocol = ChatAgent::new("https://h/serving-endpoints");
        assert_eq!(protocol.url(&request), "https://h/serving-endpoints/my-chat-agent/invocations");
        let body: Value = serde_json::from_slice(&protocol.body(&request).expect("body")).expect("json");
        assert_eq!(body["messages"], json!([{"role": "user", "content": "Weather?", "id": "user-0"}]));
        assert_eq!(body["context"]["user_id"], "ada@example.com");
        assert_eq!(body["stream"], true);
    }
}
