//! Reads a Responses agent's event stream (AGENTS-PROTOCOL.md §B.2) into [`ModelEvent`]s.
//!
//! - Text is keyed by its item id. Deltas stream; the item's `output_item.done` then repeats the whole text, and is
//!   used only when nothing of that item streamed (a supervisor that sends its text only there). It never doubles
//!   the text, also when it differs from the deltas (Knowledge Assistant's footnotes, §B.4). A new item starts a new
//!   part.
//! - Reasoning likewise, from `reasoning_summary_text.delta` or the done item.
//! - A tool call is shown as its arguments stream (`output_item.added`, `function_call_arguments.delta`, keyed by
//!   item id but reported by `call_id`) and completed by its done item; its output arrives as a
//!   `function_call_output` item, done or bare. The agent runs these tools itself (provider-executed).
//! - `url_citation` annotations become sources, once per URL.
//! - Several `response.created`/`completed` pairs are one answer; their usage is summed.
//! - Every error form ends the stream with an error (§I.4): `{type:"error",...}`, `{error:"..."}`, Databricks
//!   `{error_code, message}`, `response.failed`, `response.incomplete`.
//! - The trace id comes in a `{trace_id}` frame or in `databricks_output.trace.info.trace_id` of a done item.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use shared::{Content, Source, Usage};

use crate::llm::transport::{Parsed, StreamParser, classify_error, safe_message};
use crate::llm::{ModelError, ModelEvent};

/// State of one response stream.
#[derive(Debug, Default)]
pub struct ResponsesParser {
    /// Text and reasoning items that streamed deltas (their done item is not repeated).
    streamed: HashSet<String>,
    /// The item whose text or reasoning is being written.
    open_item: Option<String>,
    /// Function-call items: item id → (call id, tool name).
    calls: HashMap<String, (String, String)>,
    /// Calls whose complete input was sent.
    finished_calls: HashSet<String>,
    /// URLs already cited.
    cited: HashSet<String>,
    /// Usage summed over the stream's responses.
    usage: Usage,
}

impl StreamParser for ResponsesParser {
    fn parse(&mut self, data: &str) -> Result<Parsed, ModelError> {
        let data = data.trim();
        if data.starts_with("[DONE]") {
            return Ok(Parsed::Done);
        }
        let frame: Value = serde_json::from_str(data).map_err(|_| ModelError::Protocol)?;
        let mut events = Vec::new();
        self.frame(&frame, &mut events)?;
        Ok(Parsed::Events(events))
    }

    fn finish(&mut self) -> Vec<ModelEvent> {
        Vec::new()
    }
}

impl ResponsesParser {
    fn frame(&mut self, frame: &Value, events: &mut Vec<ModelEvent>) -> Result<(), ModelError> {
        let kind = frame.get("type").and_then(Value::as_str);
        match kind {
            Some("response.output_text.delta") => {
                let (item, delta) = (str_field(frame, "item_id"), str_field(frame, "delta"));
                if !delta.is_empty() {
                    self.open(item, events);
                    self.streamed.insert(item.to_owned());
                    events.push(ModelEvent::text(delta));
                }
            }
            Some("response.reasoning_summary_text.delta" | "response.reasoning_text.delta") => {
                let (item, delta) = (str_field(frame, "item_id"), str_field(frame, "delta"));
                if !delta.is_empty() {
                    self.open(item, events);
                    self.streamed.insert(item.to_owned());
                    events.push(ModelEvent::reasoning(delta));
                }
            }
            Some("response.output_text.annotation.added") => {
                if let Some(annotation) = frame.get("annotation") {
                    self.cite(annotation, events);
                }
            }
            Some("response.output_item.added") => {
                if let Some(item) = frame.get("item")
                    && item.get("type").and_then(Value::as_str) == Some("function_call")
                {
                    let (id, call, name) = (str_field(item, "id"), str_field(item, "call_id"), str_field(item, "name"));
                    let call = if call.is_empty() { id } else { call };
                    self.calls.insert(id.to_owned(), (call.to_owned(), name.to_owned()));
                    self.close(events);
                    events.push(ModelEvent::Content(Content::tool_input_start(call, name, true)));
                }
            }
            Some("response.function_call_arguments.delta") => {
                let (item, delta) = (str_field(frame, "item_id"), str_field(frame, "delta"));
                if let Some((call, _)) = self.calls.get(item)
                    && !delta.is_empty()
                {
                    events.push(ModelEvent::Content(Content::tool_input_delta(call, delta)));
                }
            }
            Some("response.output_item.done") => {
                if let Some(item) = frame.get("item") {
                    self.done_item(item, events);
                }
                self.trace_in(frame, events);
            }
            Some("function_call_output") => self.done_item(frame, events),
            Some("response.completed") => {
                if let Some(usage) = frame.pointer("/response/usage") {
                    let count = |field: &str| usage.get(field).and_then(Value::as_i64);
                    let add = |total: Option<i64>, more: Option<i64>| match (total, more) {
                        (None, None) => None,
                        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
                    };
                    self.usage.input_tokens = add(self.usage.input_tokens, count("input_tokens"));
                    self.usage.output_tokens = add(self.usage.output_tokens, count("output_tokens"));
                    events.push(ModelEvent::Usage(self.usage));
                }
            }
            Some("response.failed" | "response.incomplete") => {
                let response = frame.get("response").unwrap_or(&Value::Null);
                let message = response
                    .pointer("/error/message")
                    .or_else(|| response.pointer("/incomplete_details/reason"))
                    .and_then(Value::as_str)
                    .unwrap_or("the agent did not finish its answer");
                let code = response.pointer("/error/code").and_then(Value::as_str).unwrap_or_default();
                return Err(classify_error(code, message));
            }
            Some("error") => {
                let error = frame.get("error").filter(|e| e.is_object()).unwrap_or(frame);
                let message = error.get("message").and_then(Value::as_str).unwrap_or("the agent failed");
                let code = error.get("code").map(code_text).unwrap_or_default();
                return Err(classify_error(&code, message));
            }
            // Lifecycle and bookkeeping events carry nothing the answer needs.
            Some(_) => {}
            None => {
                if let Some(trace) = frame.get("trace_id").and_then(Value::as_str) {
                    events.push(ModelEvent::Trace(trace.to_owned()));
                } else if let Some(code) = frame.get("error_code").and_then(Value::as_str) {
                    let message = frame.get("message").and_then(Value::as_str).unwrap_or(code);
                    return Err(classify_error(code, message));
                } else if let Some(error) = frame.get("error") {
                    let message = error
                        .as_str()
                        .or_else(|| error.get("message").and_then(Value::as_str))
                        .unwrap_or("the agent failed");
                    return Err(ModelError::Upstream(safe_message(message)));
                }
            }
        }
        Ok(())
    }

    /// A finished output item: text or reasoning nothing of which streamed, a tool call's complete input, a tool's
    /// output, citations.
    fn done_item(&mut self, item: &Value, events: &mut Vec<ModelEvent>) {
        let id = str_field(item, "id");
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                let content = item.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                if !self.streamed.contains(id) {
                    let text: String = content
                        .iter()
                        .filter(|c| c.get("type").and_then(Value::as_str) == Some("output_text"))
                        .filter_map(|c| c.get("text").and_then(Value::as_str))
                        .collect();
                    if !text.is_empty() {
                        self.open(id, events);
                        events.push(ModelEvent::text(text));
                    }
                }
                for annotation in content.iter().filter_map(|c| c.get("annotations")).filter_map(Value::as_array) {
                    annotation.iter().for_each(|a| self.cite(a, events));
                }
                if self.open_item.as_deref() == Some(id) {
                    self.close(events);
                }
            }
            Some("reasoning") => {
                if !self.streamed.contains(id) {
                    let text: String = item
                        .get("summary")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|s| s.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n\n");
                    if !text.is_empty() {
                        self.open(id, events);
                        events.push(ModelEvent::reasoning(text));
                    }
                }
                if self.open_item.as_deref() == Some(id) {
                    self.close(events);
                }
            }
            Some("function_call") => {
                let call = match str_field(item, "call_id") {
                    "" => id,
                    call => call,
                };
                if self.finished_calls.insert(call.to_owned()) {
                    self.close(events);
                    let arguments = str_field(item, "arguments");
                    let input = serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()));
                    events.push(ModelEvent::Content(Content::tool_input(call, str_field(item, "name"), input, true)));
                }
            }
            Some("function_call_output") => {
                let output = match item.get("output") {
                    Some(Value::String(text)) => {
                        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
                    }
                    Some(other) => other.clone(),
                    None => Value::Null,
                };
                self.close(events);
                events.push(ModelEvent::Content(Content::tool_output(str_field(item, "call_id"), output)));
            }
            _ => {}
        }
    }

    /// Text or reasoning of `item` is about to be written: a different item's part ends first.
    fn open(&mut self, item: &str, events: &mut Vec<ModelEvent>) {
        if self.open_item.as_deref() != Some(item) {
            self.close(events);
            self.open_item = Some(item.to_owned());
        }
    }

    fn close(&mut self, events: &mut Vec<ModelEvent>) {
        if self.open_item.take().is_some() {
            events.push(ModelEvent::Content(Content::PartEnd));
        }
    }

    fn cite(&mut self, annotation: &Value, events: &mut Vec<ModelEvent>) {
        if annotation.get("type").and_then(Value::as_str) != Some("url_citation") {
            return;
        }
        let url = str_field(annotation, "url");
        if url.is_empty() || !self.cited.insert(url.to_owned()) {
            return;
        }
        let title = annotation.get("title").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned);
        let source = Source { source_id: format!("source-{}", self.cited.len()), url: url.to_owned(), title };
        events.push(ModelEvent::Content(Content::Source(Box::new(source))));
    }

    fn trace_in(&mut self, frame: &Value, events: &mut Vec<ModelEvent>) {
        let trace = frame
            .pointer("/item/databricks_output/trace/info/trace_id")
            .or_else(|| frame.pointer("/databricks_output/trace/info/trace_id"))
            .and_then(Value::as_str);
        if let Some(trace) = trace {
            events.push(ModelEvent::Trace(trace.to_owned()));
        }
    }
}

fn str_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn code_text(code: &Value) -> String {
    match code {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::{Answer, MessagePart, ToolState};

    use super::*;
    use crate::engine::log::TurnLog;

    /// Parses frames, turns the events into an answer the way the engine does, and returns it with the usage and
    /// the trace.
    fn run(frames: &[Value]) -> Result<(Answer, Option<Usage>, Option<String>), ModelError> {
        let mut parser = ResponsesParser::default();
        let mut log = TurnLog::default();
        log.start_step();
        let (mut usage, mut trace) = (None, None);
        for frame in frames {
            let Parsed::Events(events) = parser.parse(&frame.to_string())? else { break };
            for event in events {
                match event {
                    ModelEvent::Content(content) => log.push(content),
                    ModelEvent::Usage(reported) => usage = Some(reported),
                    ModelEvent::Trace(id) => trace = Some(id),
                    _ => {}
                }
            }
        }
        log.close_part();
        let mut answer = Answer::default();
        for chunk in log.chunks(1, log.len()) {
            answer.apply(&chunk);
        }
        assert_eq!(answer.parts, log.parts());
        Ok((answer, usage, trace))
    }

    /// The real recording of AGENTS-PROTOCOL.md §B.2 (ids shortened): text, a tool call with streamed arguments,
    /// the message done with the full text, a completed response, a bare tool output, and a second iteration.
    fn recording() -> Vec<Value> {
        vec![
            json!({"type": "response.created", "response": {"id": "r1"}}),
            json!({"type": "response.output_item.added", "item": {"type": "message", "id": "__fake_id__response_item__", "content": []}}),
            json!({"type": "response.output_text.delta", "item_id": "T1", "delta": ""}),
            json!({"type": "response.output_text.delta", "item_id": "T1", "delta": "I'll execute Python code"}),
            json!({"type": "response.output_text.delta", "item_id": "T1", "delta": " to calculate."}),
            json!({"type": "response.output_item.added", "item": {"type": "function_call", "id": "FC", "call_id": "toolu_bdrk_01LW", "name": "system__ai__python_exec", "arguments": ""}}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "FC", "delta": "{\"code\": \"#"}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "FC", "delta": " add\\nprint(5+7)\"}"}),
            json!({"type": "response.output_item.done", "item": {"type": "function_call", "id": "FC", "call_id": "toolu_bdrk_01LW", "name": "system__ai__python_exec", "arguments": "{\"code\": \"# add\\nprint(5+7)\"}"}}),
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "T1", "role": "assistant", "status": "completed", "content": [{"type": "output_text", "text": "I'll execute Python code to calculate.", "annotations": []}]}}),
            json!({"type": "response.completed", "response": {"usage": {"input_tokens": 505, "output_tokens": 94, "total_tokens": 599}}}),
            json!({"call_id": "toolu_bdrk_01LW", "output": "{\"type\":\"text\",\"text\":\"12\"}", "type": "function_call_output"}),
            json!({"type": "response.created", "response": {"id": "r2"}}),
            json!({"type": "response.output_text.delta", "item_id": "T2", "delta": "The answer is 12."}),
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "T2", "content": [{"type": "output_text", "text": "The answer is 12."}]}}),
            json!({"type": "response.completed", "response": {"usage": {"input_tokens": 620, "output_tokens": 8}}}),
            json!({"trace_id": "tr-0123456789abcdef0123456789abcdef"}),
        ]
    }

    #[test]
    fn the_recorded_stream_becomes_text_a_tool_card_and_more_text_without_doubling() {
        let (answer, usage, trace) = run(&recording()).expect("parses");

        assert_eq!(answer.text(), "I'll execute Python code to calculate.The answer is 12.");
        let kinds: Vec<&str> = answer
            .parts
            .iter()
            .map(|p| match p {
                MessagePart::Text { .. } => "text",
                MessagePart::Tool(_) => "tool",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["text", "tool", "text"]);
        let MessagePart::Tool(tool) = &answer.parts[1] else { panic!("a tool part") };
        assert_eq!(tool.tool_call_id, "toolu_bdrk_01LW");
        assert_eq!(tool.state, ToolState::OutputAvailable);
        assert_eq!(tool.input, Some(json!({"code": "# add\nprint(5+7)"})));
        assert_eq!(tool.output, Some(json!({"type": "text", "text": "12"})));
        assert_eq!(tool.provider_executed, Some(true));
        assert_eq!(
            usage,
            Some(Usage { input_tokens: Some(1125), output_tokens: Some(102) }),
            "summed over both responses"
        );
        assert_eq!(trace.as_deref(), Some("tr-0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn text_that_comes_only_in_the_done_item_is_shown_once() {
        let frames = [
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "A", "content": [{"type": "output_text", "text": "<name>research</name>"}]}}),
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "B", "content": [{"type": "output_text", "text": "Found it."}]}}),
        ];
        let (answer, _, _) = run(&frames).expect("parses");
        let texts: Vec<&str> = answer.parts.iter().map(MessagePart::text).collect();
        assert_eq!(texts, ["<name>research</name>", "Found it."], "two items, two parts");
    }

    #[test]
    fn a_done_text_with_footnotes_the_deltas_lacked_is_not_added_again() {
        let frames = [
            json!({"type": "response.output_text.delta", "item_id": "K", "delta": "Lakebase is Postgres."}),
            json!({"type": "response.output_text.annotation.added", "item_id": "K", "annotation": {"type": "url_citation", "url": "https://docs/lakebase", "title": "Lakebase"}}),
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "K", "content": [{"type": "output_text", "text": "Lakebase is Postgres.[^1]", "annotations": [{"type": "url_citation", "url": "https://docs/lakebase", "title": "Lakebase"}, {"type": "url_citation", "url": "https://docs/pg"}]}]}}),
        ];
        let (answer, _, _) = run(&frames).expect("parses");
        assert_eq!(answer.text(), "Lakebase is Postgres.");
        let urls: Vec<&str> = answer
            .parts
            .iter()
            .filter_map(|p| match p {
                MessagePart::SourceUrl(source) => Some(source.url.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(urls, ["https://docs/lakebase", "https://docs/pg"], "each URL cited once");
    }

    #[test]
    fn reasoning_streams_and_its_done_item_is_not_repeated() {
        let frames = [
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "R", "summary_index": 0, "delta": "Thinking"}),
            json!({"type": "response.output_item.done", "item": {"type": "reasoning", "id": "R", "summary": [{"type": "summary_text", "text": "Thinking"}]}}),
            json!({"type": "response.output_item.done", "item": {"type": "reasoning", "id": "R2", "summary": [{"type": "summary_text", "text": "Only here"}]}}),
            json!({"type": "response.output_text.delta", "item_id": "T", "delta": "Done."}),
        ];
        let (answer, _, _) = run(&frames).expect("parses");
        assert_eq!(answer.reasoning(), "ThinkingOnly here");
        assert_eq!(answer.text(), "Done.");
    }

    #[test]
    fn every_error_form_ends_the_stream_with_an_error() {
        let forms = [
            json!({"type": "error", "code": "server_error", "message": "boom"}),
            json!({"type": "error", "error": {"message": "Task timed out", "type": "server_error", "code": "task_timeout"}}),
            json!({"error": "handler exception"}),
            json!({"error_code": "INTERNAL_ERROR", "message": "agent crashed"}),
            json!({"type": "response.failed", "response": {"status": "failed", "error": {"code": "x", "message": "failed upstream"}}}),
            json!({"type": "response.incomplete", "response": {"incomplete_details": {"reason": "max_output_tokens"}}}),
        ];
        for form in forms {
            let result =
                run(&[json!({"type": "response.output_text.delta", "item_id": "T", "delta": "partial"}), form.clone()]);
            assert!(matches!(result, Err(ModelError::Upstream(_))), "{form}: {result:?}");
        }
        let limited = run(&[json!({"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"})]);
        assert_eq!(limited.err(), Some(ModelError::RateLimited { retry_after: None }));
    }

    #[test]
    fn a_trace_id_in_a_done_item_and_malformed_arguments_are_kept() {
        let frames = [
            json!({"type": "response.output_item.done", "item": {"type": "function_call", "id": "F", "call_id": "c", "name": "t", "arguments": "not json"},
                   "databricks_output": {"trace": {"info": {"trace_id": "tr-abc"}}}}),
        ];
        let (answer, _, trace) = run(&frames).expect("parses");
        assert_eq!(trace.as_deref(), Some("tr-abc"));
        let MessagePart::Tool(tool) = &answer.parts[0] else { panic!("a tool part") };
        assert_eq!(tool.input, Some(json!("not json")));
        assert_eq!(tool.state, ToolState::InputAvailable, "no output yet");
    }
}
