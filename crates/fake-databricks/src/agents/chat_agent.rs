//! An MLflow `ChatAgent`'s answer (AGENTS-PROTOCOL.md §C) as frames: `{"id", "delta": {role, content, id}}`
//! chunks whose content is the next piece of the message with that `delta.id`; a tool call arrives whole in
//! `delta.tool_calls` and its result as a `role: "tool"` message; the last chunk carries `finish_reason` and usage.
//! The stream ends without `[DONE]`, as MLflow's fixtures do. Of the directives, this format has the text, the
//! iterations, the tool call and the errors (as `{"error": ...}` or Databricks `{error_code, message}`).

use std::time::Duration;

use serde_json::{Value, json};

use super::content::{TOOL_NAME, tool_input, tool_output};
use super::directives::{AgentDirectives, ErrorForm};
use super::frames::{Frame, interrupt};
use super::request::AgentRequest;

/// The frames of the answer to `request`.
pub fn frames(directives: &AgentDirectives, request: &AgentRequest, serial: u64, token_delay: Duration) -> Vec<Frame> {
    let token_delay = directives.base.delay_ms.map_or(token_delay, Duration::from_millis);
    let chunk = |delta: Value| Frame::Data(json!({"id": format!("chatcmpl_{serial}"), "delta": delta}));
    let mut frames = Vec::new();
    let count = directives.iteration_count();
    let mut written = 0usize;
    for index in 1..=count {
        let (id, last) = (format!("msg_{serial}_{index}"), index == count);
        let tokens = directives.iteration_tokens(index, count, &request.user_text);
        let len = tokens.len();
        for (position, token) in tokens.into_iter().enumerate() {
            if last && !interrupt(&mut frames, directives.interruptions_at(position, len), token_delay, failure) {
                return frames;
            }
            if !token_delay.is_zero() {
                frames.push(Frame::Pause(token_delay));
            }
            written += 1;
            frames.push(chunk(json!({"role": "assistant", "content": token, "id": id})));
        }
        if last && !interrupt(&mut frames, directives.interruptions_at(len, len), token_delay, failure) {
            return frames;
        }
        if index == 1 && directives.tool {
            let call_id = format!("call_{serial}");
            let arguments = tool_input(&request.user_text).to_string();
            frames.push(chunk(json!({"role": "assistant", "content": "", "id": format!("msg_{serial}_call"),
                "tool_calls": [{"type": "function", "id": call_id, "function": {"name": TOOL_NAME, "arguments": arguments}}]})));
            if directives.tool_pause_ms > 0 {
                frames.push(Frame::Pause(Duration::from_millis(directives.tool_pause_ms)));
            }
            frames.push(chunk(
                json!({"role": "tool", "name": TOOL_NAME, "content": tool_output(&request.user_text).to_string(),
                "tool_call_id": call_id, "id": format!("tool_msg_{serial}")}),
            ));
        }
    }
    let prompt_tokens = (request.user_text.len() / 4).max(1);
    frames.push(Frame::Data(json!({
        "id": format!("chatcmpl_{serial}"),
        "delta": {"role": "assistant", "content": "", "id": format!("msg_{serial}_{count}")},
        "finish_reason": "stop",
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": written, "total_tokens": prompt_tokens + written},
    })));
    frames
}

/// A failure as a ChatAgent server reports it: MLflow's `{"error": "..."}`, the Databricks error body, or an
/// OpenAI-style error object for the Responses-only forms.
fn failure(frames: &mut Vec<Frame>, form: ErrorForm) {
    let frame = match form {
        ErrorForm::String => json!({"error": "The fake agent raised an exception."}),
        ErrorForm::Databricks => json!({"error_code": "INTERNAL_ERROR", "message": "The fake agent failed."}),
        _ => {
            json!({"error": {"message": "The fake agent's tool backend is unavailable.", "type": "server_error", "code": "server_error"}})
        }
    };
    frames.push(Frame::Data(frame));
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::super::frames::payloads;
    use super::*;

    fn frames_of(text: &str) -> Vec<Frame> {
        let request = AgentRequest::read(json!({"messages": [{"role": "user", "content": text}]}), &HeaderMap::new());
        frames(&AgentDirectives::parse(text).unwrap_or_default(), &request, 3, Duration::ZERO)
    }

    #[test]
    fn text_a_whole_tool_call_its_result_and_usage() {
        let frames = frames_of("weather? [[fake tool=1]]");
        let text: String = payloads(&frames)
            .filter(|f| f["delta"]["role"] == "assistant")
            .filter_map(|f| f["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Step 1 of 2. You said: weather?");
        let call = payloads(&frames).find_map(|f| f["delta"]["tool_calls"].get(0).cloned()).expect("a tool call");
        assert_eq!(call["function"]["name"], TOOL_NAME);
        let result = payloads(&frames).find(|f| f["delta"]["role"] == "tool").expect("a tool result");
        assert_eq!(result["delta"]["tool_call_id"], call["id"]);
        assert!(payloads(&frames).last().is_some_and(|f| f["usage"]["completion_tokens"].as_u64() > Some(0)));
        assert!(!frames.contains(&Frame::Done));
    }

    #[test]
    fn an_error_ends_the_stream_after_the_text() {
        let frames = frames_of("[[fake tokens=2 error=string]]");
        assert_eq!(payloads(&frames).last(), Some(&json!({"error": "The fake agent raised an exception."})));
        assert_eq!(payloads(&frames).filter(|f| f.get("delta").is_some()).count(), 2);
    }
}
