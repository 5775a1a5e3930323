//! A Responses-API agent's answer (AGENTS-PROTOCOL.md §B.2) as frames, in the OpenAI event set real agents send:
//! per model iteration `response.created`, then for each output item `output_item.added`, its deltas (text with
//! `item_id`, reasoning summary, function-call arguments) and `output_item.done` repeating the whole item, then
//! `response.completed` with usage; a tool's result as a bare `function_call_output` frame between iterations;
//! after the last iteration the trace id (when asked) and `data: [DONE]`.
//!
//! Ids are deterministic: `serial` (one per request) numbers every item and response of the answer.

use std::time::Duration;

use serde_json::{Value, json};

use super::content::{
    APPROVAL_PROMPT, APPROVAL_SERVER, APPROVAL_TOOL, TOOL_NAME, approval_answer, approval_input, citation, pieces,
    tool_input, tool_output,
};
use super::directives::{AgentDirectives, ErrorForm, TraceForm, name_text};
use super::frames::{Frame, interrupt};
use super::request::AgentRequest;
use crate::scenario::split_tokens;

/// The frames of the answer to `request`.
pub fn frames(directives: &AgentDirectives, request: &AgentRequest, serial: u64, token_delay: Duration) -> Vec<Frame> {
    let mut writer = Writer::new(directives, request, serial, token_delay);
    if directives.approval {
        writer.approval();
        return writer.frames;
    }
    let count = directives.iteration_count();
    for index in 1..=count {
        let last = index == count;
        writer.created();
        if index == 1 && directives.base.reasoning > 0 {
            writer.reasoning();
        }
        if last && let Some(name) = &directives.agent_name {
            writer.name_item(name);
        }
        let tokens = directives.iteration_tokens(index, count, &request.user_text);
        if !writer.message(&format!("msg_{serial}_{index}"), &tokens, last) {
            return writer.frames;
        }
        if index == 1 && directives.tool {
            writer.tool_call();
        } else {
            writer.completed();
        }
    }
    writer.finish();
    writer.frames
}

/// The response id of background runs and of each iteration: `resp_` and 24 hex digits.
pub fn response_id(serial: u64, response: usize) -> String {
    format!("resp_{serial:016x}{response:08x}")
}

struct Writer<'a> {
    directives: &'a AgentDirectives,
    request: &'a AgentRequest,
    serial: u64,
    token_delay: Duration,
    frames: Vec<Frame>,
    /// Responses (iterations) started so far.
    responses: usize,
    /// Done items of the response being written (its `output`).
    output: Vec<Value>,
    /// Deltas of the response being written (its output tokens).
    output_tokens: usize,
    /// Where in `frames` the last `output_item.done` is (the trace may be attached to it).
    last_done: Option<usize>,
}

impl<'a> Writer<'a> {
    fn new(directives: &'a AgentDirectives, request: &'a AgentRequest, serial: u64, token_delay: Duration) -> Self {
        let token_delay = directives.base.delay_ms.map_or(token_delay, Duration::from_millis);
        Self {
            directives,
            request,
            serial,
            token_delay,
            frames: Vec::new(),
            responses: 0,
            output: Vec::new(),
            output_tokens: 0,
            last_done: None,
        }
    }

    fn push(&mut self, frame: Value) {
        self.frames.push(Frame::Data(frame));
    }

    fn token_pause(&mut self) {
        if !self.token_delay.is_zero() {
            self.frames.push(Frame::Pause(self.token_delay));
        }
    }

    fn response_id(&self) -> String {
        response_id(self.serial, self.responses)
    }

    fn created(&mut self) {
        self.responses += 1;
        self.output.clear();
        self.output_tokens = 0;
        let response = json!({"id": self.response_id(), "object": "response", "status": "in_progress", "output": []});
        self.push(json!({"type": "response.created", "response": response}));
        self.push(json!({"type": "response.in_progress", "response": response}));
    }

    fn completed(&mut self) {
        let input_tokens = (self.request.user_text.len() / 4).max(1) + 10 * (self.responses - 1);
        let response = json!({
            "id": self.response_id(),
            "object": "response",
            "status": "completed",
            "output": std::mem::take(&mut self.output),
            "incomplete_details": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": self.output_tokens,
                      "total_tokens": input_tokens + self.output_tokens},
        });
        self.push(json!({"type": "response.completed", "response": response}));
    }

    fn item_added(&mut self, item: Value) {
        let index = self.output.len();
        self.push(json!({"type": "response.output_item.added", "output_index": index, "item": item}));
    }

    fn item_done(&mut self, item: Value) {
        let index = self.output.len();
        self.last_done = Some(self.frames.len());
        self.push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
        self.output.push(item);
    }

    /// A text item; on the last iteration also the interruptions, citations and footnote. False when the stream
    /// ended in it.
    fn message(&mut self, id: &str, tokens: &[String], last: bool) -> bool {
        let text: String = tokens.concat();
        let cite = if last { self.directives.cite } else { 0 };
        let annotations: Vec<Value> = (1..=cite).map(|index| citation(index, text.len())).collect();
        let done_text = if last && self.directives.footnote { format!("{text}[^1]") } else { text.clone() };
        let done = json!({
            "type": "message", "id": id, "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": done_text, "annotations": annotations}],
        });
        let len = tokens.len();
        if self.directives.done_only {
            // A supervisor forwards its agents' text whole, once each is finished.
            self.token_pause();
            self.output_tokens += len;
            self.item_done(done);
            return !last || (0..=len).all(|index| self.interrupt(index, len));
        }
        let index = self.output.len();
        self.item_added(
            json!({"type": "message", "id": id, "role": "assistant", "status": "in_progress", "content": []}),
        );
        self.push(json!({"type": "response.content_part.added", "item_id": id, "output_index": index,
                         "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}));
        for (position, token) in tokens.iter().enumerate() {
            if last && !self.interrupt(position, len) {
                return false;
            }
            self.token_pause();
            self.output_tokens += 1;
            self.push(json!({"type": "response.output_text.delta", "item_id": id, "output_index": index,
                             "content_index": 0, "delta": token}));
        }
        if last && !self.interrupt(len, len) {
            return false;
        }
        for (annotation_index, annotation) in annotations.iter().enumerate() {
            self.push(json!({"type": "response.output_text.annotation.added", "item_id": id, "output_index": index,
                             "content_index": 0, "annotation_index": annotation_index, "annotation": annotation}));
        }
        self.push(json!({"type": "response.output_text.done", "item_id": id, "output_index": index,
                         "content_index": 0, "text": done_text}));
        self.push(json!({"type": "response.content_part.done", "item_id": id, "output_index": index,
                         "content_index": 0, "part": done["content"][0].clone()}));
        self.item_done(done);
        true
    }

    fn interrupt(&mut self, index: usize, len: usize) -> bool {
        let interruptions = self.directives.interruptions_at(index, len);
        let response_id = self.response_id();
        interrupt(&mut self.frames, interruptions, self.token_delay, |frames, form| {
            frames.extend(failure(form, &response_id));
        })
    }

    /// `reasoning=N` words, streamed as summary deltas (or whole in the done item of a supervisor).
    fn reasoning(&mut self) {
        let id = format!("rs_{}", self.serial);
        let words: Vec<String> = (1..=self.directives.base.reasoning)
            .map(|i| if i == 1 { format!("r{i}") } else { format!(" r{i}") })
            .collect();
        let text = words.concat();
        let done = json!({"type": "reasoning", "id": id, "summary": [{"type": "summary_text", "text": text}]});
        if self.directives.done_only {
            self.item_done(done);
            return;
        }
        let index = self.output.len();
        self.item_added(json!({"type": "reasoning", "id": id, "summary": []}));
        for word in words {
            self.token_pause();
            self.push(json!({"type": "response.reasoning_summary_text.delta", "item_id": id, "output_index": index,
                             "summary_index": 0, "delta": word}));
        }
        self.push(json!({"type": "response.reasoning_summary_text.done", "item_id": id, "output_index": index,
                         "summary_index": 0, "text": text}));
        self.item_done(done);
    }

    /// The `<name>agent</name>` item a multi-agent supervisor sends before an agent's answer, only whole.
    fn name_item(&mut self, name: &str) {
        let id = format!("msg_{}_name", self.serial);
        self.item_done(json!({
            "type": "message", "id": id, "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": name_text(name), "annotations": []}],
        }));
    }

    /// A tool call whose arguments stream in pieces, the end of the iteration, the pause of `tool_pause_ms`, and
    /// the tool's result as a bare `function_call_output` frame.
    fn tool_call(&mut self) {
        let (item_id, call_id) = (format!("fc_{}", self.serial), format!("call_{}", self.serial));
        let arguments = tool_input(&self.request.user_text).to_string();
        let index = self.output.len();
        self.item_added(json!({"type": "function_call", "id": item_id, "call_id": call_id, "name": TOOL_NAME,
                               "arguments": "", "status": "in_progress"}));
        for piece in pieces(&arguments, 3) {
            self.token_pause();
            self.push(json!({"type": "response.function_call_arguments.delta", "item_id": item_id,
                             "output_index": index, "delta": piece}));
        }
        self.push(json!({"type": "response.function_call_arguments.done", "item_id": item_id, "output_index": index,
                         "arguments": arguments}));
        self.item_done(json!({"type": "function_call", "id": item_id, "call_id": call_id, "name": TOOL_NAME,
                              "arguments": arguments, "status": "completed"}));
        self.completed();
        if self.directives.tool_pause_ms > 0 {
            self.frames.push(Frame::Pause(Duration::from_millis(self.directives.tool_pause_ms)));
        }
        let output = tool_output(&self.request.user_text).to_string();
        self.push(json!({"type": "function_call_output", "call_id": call_id, "output": output}));
    }

    /// `approval=1`: the answer to the decision the request carries, else a request for approval that ends the
    /// answer (AGENTS-PROTOCOL.md §G).
    fn approval(&mut self) {
        self.created();
        let id = format!("msg_{}_1", self.serial);
        match &self.request.approval {
            Some(decision) => {
                let tokens = split_tokens(&approval_answer(decision));
                if !self.message(&id, &tokens, true) {
                    return;
                }
            }
            None => {
                self.message(&id, &split_tokens(APPROVAL_PROMPT), false);
                self.item_done(json!({
                    "type": "mcp_approval_request",
                    "id": format!("apr-{}", self.serial),
                    "name": APPROVAL_TOOL,
                    "arguments": approval_input().to_string(),
                    "server_label": APPROVAL_SERVER,
                }));
            }
        }
        self.completed();
        self.finish();
    }

    /// The trace id where it was asked for, and `[DONE]`.
    fn finish(&mut self) {
        let trace_id = self.request.trace_id();
        match self.directives.trace {
            TraceForm::Frame if self.request.trace_header => self.push(json!({"trace_id": trace_id})),
            TraceForm::Output if self.request.return_trace => {
                if let Some(Frame::Data(frame)) = self.last_done.and_then(|at| self.frames.get_mut(at)) {
                    frame["databricks_output"] = json!({"trace": {"info": {"trace_id": trace_id}}, "databricks_request_id": format!("req-{}", self.serial)});
                }
            }
            _ => {}
        }
        self.frames.push(Frame::Done);
    }
}

/// The frames of a failure in `form`.
fn failure(form: ErrorForm, response_id: &str) -> Vec<Frame> {
    let frame = match form {
        ErrorForm::Type => {
            json!({"type": "error", "code": "server_error", "message": "The fake agent's tool backend is unavailable.", "param": null})
        }
        ErrorForm::Nested => {
            json!({"type": "error", "error": {"message": "Task timed out", "type": "server_error", "code": "task_timeout"}})
        }
        ErrorForm::String => {
            return vec![Frame::Data(json!({"error": "The fake agent raised an exception."})), Frame::Done];
        }
        ErrorForm::Databricks => json!({"error_code": "INTERNAL_ERROR", "message": "The fake agent failed."}),
        ErrorForm::Failed => json!({"type": "response.failed", "response": {
            "id": response_id, "object": "response", "status": "failed", "output": [],
            "error": {"code": "server_error", "message": "The fake agent's response failed."}}}),
        ErrorForm::Incomplete => json!({"type": "response.incomplete", "response": {
            "id": response_id, "object": "response", "status": "incomplete", "output": [],
            "incomplete_details": {"reason": "max_output_tokens"}}}),
    };
    vec![Frame::Data(frame)]
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::super::frames::payloads;
    use super::*;

    fn request(text: &str, trace_header: bool) -> AgentRequest {
        let mut headers = HeaderMap::new();
        if trace_header {
            headers.insert(super::super::request::TRACE_HEADER, "true".parse().expect("header"));
        }
        let body = json!({"input": [{"role": "user", "content": text}], "context": {"conversation_id": "c"},
                          "databricks_options": {"return_trace": true}});
        AgentRequest::read(body, &headers)
    }

    fn frames_of(text: &str, trace_header: bool) -> Vec<Frame> {
        let directives = AgentDirectives::parse(text).unwrap_or_default();
        frames(&directives, &request(text, trace_header), 7, Duration::ZERO)
    }

    fn types(frames: &[Frame]) -> Vec<String> {
        payloads(frames).map(|f| f["type"].as_str().unwrap_or("<untyped>").to_owned()).collect()
    }

    fn deltas(frames: &[Frame]) -> String {
        payloads(frames)
            .filter(|f| f["type"] == "response.output_text.delta")
            .filter_map(|f| f["delta"].as_str())
            .collect()
    }

    #[test]
    fn a_tool_call_streams_its_arguments_then_its_output_between_two_iterations() {
        let frames = frames_of("weather? [[fake tool=1 tool_pause_ms=50]]", true);
        let types = types(&frames);
        assert_eq!(types.iter().filter(|t| *t == "response.created").count(), 2);
        assert_eq!(types.iter().filter(|t| *t == "response.completed").count(), 2);
        assert_eq!(types.iter().filter(|t| *t == "response.function_call_arguments.delta").count(), 3);
        let output_at = types.iter().position(|t| t == "function_call_output").expect("output");
        assert_eq!(types[output_at - 1], "response.completed", "the output follows the first iteration");
        assert!(frames.contains(&Frame::Pause(Duration::from_millis(50))));
        assert_eq!(deltas(&frames), "Step 1 of 2. You said: weather?");
        let arguments: String = payloads(&frames)
            .filter(|f| f["type"] == "response.function_call_arguments.delta")
            .filter_map(|f| f["delta"].as_str())
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&arguments).ok(), Some(tool_input("weather?")));
        let last_data: Vec<&Value> = payloads(&frames).collect();
        assert_eq!(
            last_data.last().map(|f| f["trace_id"].clone()),
            Some(json!(request("weather? [[fake tool=1 tool_pause_ms=50]]", true).trace_id()))
        );
        assert_eq!(frames.last(), Some(&Frame::Done));
    }

    #[test]
    fn done_only_text_never_comes_as_deltas_and_footnotes_only_in_the_done_item() {
        let supervisor = frames_of("hi [[fake done_only=1 agent_name=genie]]", false);
        assert_eq!(deltas(&supervisor), "");
        let done_texts: Vec<&str> = payloads(&supervisor)
            .filter(|f| f["type"] == "response.output_item.done")
            .filter_map(|f| f["item"]["content"][0]["text"].as_str())
            .collect();
        assert_eq!(done_texts, ["<name>genie</name>", "You said: hi"]);
        assert!(!payloads(&supervisor).any(|f| f.get("trace_id").is_some()), "no trace without the header");

        let assistant = frames_of("hi [[fake footnote=1 cite=2]]", false);
        assert_eq!(deltas(&assistant), "You said: hi");
        let done = payloads(&assistant).find(|f| f["type"] == "response.output_item.done").expect("done");
        assert_eq!(done["item"]["content"][0]["text"], "You said: hi[^1]");
        assert_eq!(done["item"]["content"][0]["annotations"].as_array().map(Vec::len), Some(2));
        assert_eq!(types(&assistant).iter().filter(|t| *t == "response.output_text.annotation.added").count(), 2);
    }

    #[test]
    fn every_error_form_comes_after_the_text_and_ends_the_stream() {
        for (form, tail) in [
            ("type", "error"),
            ("nested", "error"),
            ("string", "<untyped>"),
            ("databricks", "<untyped>"),
            ("failed", "response.failed"),
            ("incomplete", "response.incomplete"),
        ] {
            let frames = frames_of(&format!("[[fake tokens=3 error={form}]]"), true);
            assert_eq!(deltas(&frames), "w1 w2 w3", "{form}");
            assert_eq!(types(&frames).last().map(String::as_str), Some(tail), "{form}");
            assert_eq!(
                frames.last() == Some(&Frame::Done),
                form == "string",
                "{form}: only MLflow's form is followed by [DONE]"
            );
        }
        let early = frames_of("[[fake tokens=5 fail_after=2]]", false);
        assert_eq!(deltas(&early), "w1 w2");
    }

    #[test]
    fn an_approval_is_asked_for_then_answered() {
        let asked = frames_of("mail it [[fake approval=1]]", true);
        let request_item = payloads(&asked)
            .find(|f| f["item"]["type"] == "mcp_approval_request")
            .map(|f| f["item"].clone())
            .expect("an approval request");
        assert_eq!(request_item["id"], "apr-7");
        assert_eq!(request_item["server_label"], APPROVAL_SERVER);
        assert_eq!(deltas(&asked), APPROVAL_PROMPT);

        let text = "mail it [[fake approval=1]]";
        let body = json!({"input": [{"role": "user", "content": text},
            {"type": "mcp_approval_response", "id": "apr-7", "approval_request_id": "apr-7", "approve": false, "reason": "not now"}]});
        let decided = AgentRequest::read(body, &HeaderMap::new());
        let answered = frames(&AgentDirectives::parse(text).expect("found"), &decided, 8, Duration::ZERO);
        assert_eq!(deltas(&answered), "Denied: not now.");
    }

    #[test]
    fn the_trace_may_ride_on_the_last_done_item() {
        let frames = frames_of("[[fake trace=output]]", true);
        let traced: Vec<&Value> = payloads(&frames).filter(|f| f.get("databricks_output").is_some()).collect();
        assert_eq!(traced.len(), 1);
        assert_eq!(traced[0]["type"], "response.output_item.done");
        assert!(!payloads(&frames).any(|f| f.get("trace_id").is_some()));
    }
}
