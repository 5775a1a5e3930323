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
use crate::llm::{ModelError, ModelEvent, UpstreamRun};

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
    /// A background run's id (§H: its frames carry `response_id` and `sequence_number`).
    response_id: Option<String>,
    /// The last `sequence_number` read: a frame at or below it is a repeat, dropped.
    last_seq: Option<u64>,
    /// Frames up to this `sequence_number` are in the answer already (re-attaching to a run after a restart): they
    /// are read to rebuild what streamed, and produce nothing.
    replayed_through: Option<u64>,
}

impl StreamParser for ResponsesParser {
    fn parse(&mut self, data: &str) -> Result<Parsed, ModelError> {
        let data = data.trim();
        if data.starts_with("[DONE]") {
            return Ok(Parsed::Done);
        }
        // Nearly every frame is a text delta: read those into a small struct of borrowed fields, not a JSON tree
        // (the tree cost an agent's stream a tenth more CPU per token than a chat model's).
        if let Ok(delta) = serde_json::from_str::<DeltaFrame>(data)
            && delta.sequence_number.is_none()
        {
            let reasoning = match delta.kind.as_ref() {
                "response.output_text.delta" => Some(false),
                "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => Some(true),
                _ => None,
            };
            if let Some(reasoning) = reasoning {
                let mut events = Vec::with_capacity(1);
                self.delta(reasoning, &delta.item_id, &delta.delta, &mut events);
                return Ok(Parsed::Events(events));
            }
        }
        let frame: Value = serde_json::from_str(data).map_err(|_| ModelError::Protocol)?;
        let seq = frame.get("sequence_number").and_then(Value::as_u64);
        if let Some(seq) = seq {
            if self.last_seq.is_some_and(|last| seq <= last) {
                return Ok(Parsed::Events(Vec::new()));
            }
            self.last_seq = Some(seq);
            if self.response_id.is_none() {
                let id = frame.get("response_id").or_else(|| frame.pointer("/response/id")).and_then(Value::as_str);
                self.response_id = id.map(str::to_owned);
            }
        }
        let mut events = Vec::new();
        let result = self.frame(&frame, &mut events);
        let Some(seq) = seq else {
            result?;
            return Ok(Parsed::Events(events));
        };
        if self.replayed_through.is_some_and(|through| seq <= through) {
            return Ok(Parsed::Events(Vec::new()));
        }
        result?;
        if let Some(response_id) = &self.response_id {
            // The frame's content travels with the run's position, so the two are stored together.
            let (content, mut rest): (Vec<ModelEvent>, Vec<ModelEvent>) =
                events.into_iter().partition(|event| matches!(event, ModelEvent::Content(_)));
            let content = content
                .into_iter()
                .filter_map(|event| match event {
                    ModelEvent::Content(content) => Some(content),
                    _ => None,
                })
                .collect();
            rest.push(ModelEvent::Upstream { run: UpstreamRun { response_id: response_id.clone(), seq }, content });
            return Ok(Parsed::Events(rest));
        }
        Ok(Parsed::Events(events))
    }

    fn finish(&mut self) -> Vec<ModelEvent> {
        Vec::new()
    }
}

impl ResponsesParser {
    /// A parser re-attaching to a background run whose events up to `seq` are in the answer already; read the run
    /// from its start.
    pub fn replaying_through(seq: u64) -> Self {
        Self { replayed_through: Some(seq), ..Self::default() }
    }

    /// The background run read so far, if the stream is one.
    pub fn run(&self) -> Option<UpstreamRun> {
        Some(UpstreamRun { response_id: self.response_id.clone()?, seq: self.last_seq? })
    }

    fn frame(&mut self, frame: &Value, events: &mut Vec<ModelEvent>) -> Result<(), ModelError> {
        let kind = frame.get("type").and_then(Value::as_str);
        match kind {
            Some("response.output_text.delta") => {
                self.delta(false, str_field(frame, "item_id"), str_field(frame, "delta"), events);
            }
            Some("response.reasoning_summary_text.delta" | "response.reasoning_text.delta") => {
                self.delta(true, str_field(frame, "item_id"), str_field(frame, "delta"), events);
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
            Some("response.resumed") => {
                // A long-running agent resumed a crashed run under a new conversation id (§H): later turns must use
                // it, so it is kept with the answer.
                if let Some(conversation) = frame.get("conversation_id").and_then(Value::as_str) {
                    let data = serde_json::json!({"conversationId": conversation});
                    events.push(ModelEvent::Content(Content::data(super::CONVERSATION_PART, "conversation", data)));
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
                    if let Some(agent) = handover(&text) {
                        // A supervisor names the sub-agent that answers next: a heading, not text of the answer.
                        self.close(events);
                        let data = serde_json::json!({"name": agent});
                        events.push(ModelEvent::Content(Content::data("data-agent", format!("agent-{id}"), data)));
                    } else if !text.is_empty() {
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
            Some("mcp_approval_request") => {
                // The agent wants to call a tool of an MCP server and waits for the user (§G): the call is shown as
                // a tool card, and the request as an approval part the user answers; the agent's response ends.
                self.close(events);
                let (name, label) = (str_field(item, "name"), str_field(item, "server_label"));
                let input = arguments(item);
                events.push(ModelEvent::Content(Content::mcp_tool_input(id, name, input.clone(), label)));
                let approval = serde_json::json!({
                    "approvalId": id,
                    "toolCallId": id,
                    "toolName": name,
                    "serverLabel": label,
                    "arguments": input,
                    "state": "requested",
                });
                events.push(ModelEvent::Content(Content::data("data-approval", approval_part_id(id), approval)));
            }
            Some("mcp_call") => {
                // A call the agent made to an MCP server: after an approval it completes the approved call's card.
                self.close(events);
                let call = match str_field(item, "approval_request_id") {
                    "" => id,
                    approved => approved,
                };
                if call == id {
                    let input = arguments(item);
                    let label = str_field(item, "server_label");
                    events.push(ModelEvent::Content(Content::mcp_tool_input(
                        call,
                        str_field(item, "name"),
                        input,
                        label,
                    )));
                }
                match item.get("error").filter(|e| !e.is_null()) {
                    Some(error) => {
                        let text = error.as_str().map_or_else(|| error.to_string(), str::to_owned);
                        events.push(ModelEvent::Content(Content::tool_error(call, safe_message(&text))));
                    }
                    None => {
                        let output = item.get("output").cloned().unwrap_or(Value::Null);
                        events.push(ModelEvent::Content(Content::tool_output(call, output)));
                    }
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

    /// A text or reasoning delta of `item`.
    fn delta(&mut self, reasoning: bool, item: &str, delta: &str, events: &mut Vec<ModelEvent>) {
        if delta.is_empty() {
            return;
        }
        self.open(item, events);
        if !self.streamed.contains(item) {
            self.streamed.insert(item.to_owned());
        }
        events.push(if reasoning { ModelEvent::reasoning(delta) } else { ModelEvent::text(delta) });
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

/// The id of the `data-approval` part of the approval request `id`.
pub fn approval_part_id(id: &str) -> String {
    format!("approval-{id}")
}

/// A supervisor's hand-over to a sub-agent: an output item whose whole text is `<name>agent</name>`.
fn handover(text: &str) -> Option<&str> {
    let name = text.trim().strip_prefix("<name>")?.strip_suffix("</name>")?.trim();
    (!name.is_empty() && !name.contains('<')).then_some(name)
}

/// A call's `arguments` (a JSON string) as JSON; kept as the string when it is not JSON.
fn arguments(item: &Value) -> Value {
    let text = str_field(item, "arguments");
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// The fields of a text or reasoning delta frame (any other frame fails to read, or is told apart by `kind`).
#[derive(serde::Deserialize)]
struct DeltaFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    item_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    delta: std::borrow::Cow<'a, str>,
    sequence_number: Option<u64>,
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
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "A", "content": [{"type": "output_text", "text": "Research says:"}]}}),
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "B", "content": [{"type": "output_text", "text": "Found it."}]}}),
        ];
        let (answer, _, _) = run(&frames).expect("parses");
        let texts: Vec<&str> = answer.parts.iter().map(MessagePart::text).collect();
        assert_eq!(texts, ["Research says:", "Found it."], "two items, two parts");
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
    fn an_approval_request_becomes_a_tool_card_and_an_approval_part() {
        let frames = [
            json!({"type": "response.output_text.delta", "item_id": "T", "delta": "I will email ops."}),
            json!({"type": "response.output_item.done", "item": {"type": "mcp_approval_request", "id": "apr-1", "name": "send_email", "arguments": "{\"to\":\"ops@example.com\"}", "server_label": "mail"}}),
            json!({"type": "response.completed", "response": {}}),
        ];
        let (answer, _, _) = run(&frames).expect("parses");
        assert_eq!(answer.text(), "I will email ops.");
        let MessagePart::Tool(tool) = &answer.parts[1] else { panic!("a tool card: {:?}", answer.parts) };
        assert_eq!((tool.tool_call_id.as_str(), tool.state), ("apr-1", ToolState::InputAvailable));
        assert_eq!(tool.input, Some(json!({"to": "ops@example.com"})));
        assert_eq!(tool.server_label(), Some("mail"));
        let MessagePart::Data(approval) = &answer.parts[2] else { panic!("an approval part") };
        assert_eq!((approval.kind.as_str(), approval.id.as_deref()), ("data-approval", Some("approval-apr-1")));
        assert_eq!(approval.data["state"], "requested");
        assert_eq!(approval.data["arguments"], json!({"to": "ops@example.com"}));
    }

    #[test]
    fn an_mcp_call_completes_the_approved_card_or_shows_its_own() {
        let frames = [
            json!({"type": "response.output_item.done", "item": {"type": "mcp_call", "id": "m1", "name": "lookup", "arguments": "{}", "server_label": "docs", "output": "found", "error": null}}),
            json!({"type": "response.output_item.done", "item": {"type": "mcp_call", "id": "m2", "name": "lookup", "arguments": "{}", "server_label": "docs", "error": "denied by policy"}}),
        ];
        let (answer, _, _) = run(&frames).expect("parses");
        let tools: Vec<(&str, ToolState)> = answer
            .parts
            .iter()
            .filter_map(|p| match p {
                MessagePart::Tool(t) => Some((t.tool_call_id.as_str(), t.state)),
                _ => None,
            })
            .collect();
        assert_eq!(tools, [("m1", ToolState::OutputAvailable), ("m2", ToolState::OutputError)]);
    }

    #[test]
    fn a_supervisor_hand_over_is_a_heading_not_text() {
        let frames = [
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "A", "content": [{"type": "output_text", "text": "<name>research</name>"}]}}),
            json!({"type": "response.output_item.done", "item": {"type": "message", "id": "B", "content": [{"type": "output_text", "text": "Found it."}]}}),
        ];
        let (answer, _, _) = run(&frames).expect("parses");
        assert_eq!(answer.text(), "Found it.");
        let MessagePart::Data(agent) = &answer.parts[0] else { panic!("a heading part: {:?}", answer.parts) };
        assert_eq!((agent.kind.as_str(), &agent.data), ("data-agent", &json!({"name": "research"})));
        assert_eq!(handover(" <name>a b</name> "), Some("a b"));
        assert_eq!(handover("<name></name>"), None);
        assert_eq!(handover("see <name>x</name>"), None);
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
