//! The agent directives: the keys of `[[fake ...]]` that script an agent's answer, on top of the chat-completions
//! ones of [`crate::scenario::Directives`] (`tokens`, `delay_ms`, `reasoning`, `status`, `fail_after`,
//! `abort_after`, ...). The table of keys is in the [`super`] module header.

use crate::scenario::Directives;

/// How an agent reports a failure in its stream (AGENTS-PROTOCOL.md §B.2, §I.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorForm {
    /// `{"type":"error","code":...,"message":...}` (OpenAI, MLflow `ResponseErrorEvent`).
    Type,
    /// `{"type":"error","error":{"message","type","code"}}` (LongRunningAgentServer).
    Nested,
    /// `{"error":"..."}` then `[DONE]` (MLflow AgentServer on a handler exception).
    String,
    /// `{"error_code":...,"message":...}` (Databricks).
    Databricks,
    /// `response.failed` with `response.error`.
    Failed,
    /// `response.incomplete` with `response.incomplete_details`.
    Incomplete,
}

impl ErrorForm {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "type" => ErrorForm::Type,
            "nested" => ErrorForm::Nested,
            "string" => ErrorForm::String,
            "databricks" => ErrorForm::Databricks,
            "failed" => ErrorForm::Failed,
            "incomplete" => ErrorForm::Incomplete,
            _ => return None,
        })
    }
}

/// Where the trace id of an answer goes (AGENTS-PROTOCOL.md §B.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TraceForm {
    /// A `{"trace_id": ...}` frame before `[DONE]`, when the request header `x-mlflow-return-trace-id` is `true`.
    #[default]
    Frame,
    /// `databricks_output.trace.info.trace_id` on the last `response.output_item.done`, when the body asks
    /// `databricks_options.return_trace`.
    Output,
    /// No trace id at all.
    None,
}

/// What an agent's answer should look like, from the `[[fake ...]]` directives of the last user message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentDirectives {
    /// The chat-completions directives: answer tokens, delays, reasoning, HTTP status, cuts.
    pub base: Directives,
    /// `tool=1`: one tool call (arguments streamed in pieces) and its output between two iterations.
    pub tool: bool,
    /// `tool_pause_ms=D`: a pause after the tool call is complete, before its output.
    pub tool_pause_ms: u64,
    /// `cite=N`: N `url_citation` annotations on the answer.
    pub cite: usize,
    /// `iterations=N`: N `response.created`/`completed` pairs in one stream (0 reads as 1).
    pub iterations: usize,
    /// `done_only=1`: text only in `output_item.done`, never as deltas (Multi-Agent Supervisor).
    pub done_only: bool,
    /// `footnote=1`: the done item's text ends with a `[^1]` the deltas lacked (Knowledge Assistant).
    pub footnote: bool,
    /// `agent_name=X`: a done-only item `<name>X</name>` before the answer (Multi-Agent Supervisor).
    pub agent_name: Option<String>,
    /// `error=FORM`: the stream fails in this form after `fail_after` tokens (default: all of them).
    pub error: Option<ErrorForm>,
    /// `hang_after=N`: after N tokens the agent says nothing more, ever.
    pub hang_after: Option<usize>,
    /// `approval=1`: ask for approval of a tool call (MCP), or answer the approval the request carries.
    pub approval: bool,
    /// `cut_after=N`: in background mode, the first connection drops after N frames; the run goes on.
    pub cut_after: Option<usize>,
    /// `resumed=1`: in background mode, the run records a `response.resumed` frame where the first
    /// connection was cut, as a crash-resumed run does.
    pub resumed: bool,
    /// `trace=frame|output|none`.
    pub trace: TraceForm,
}

impl AgentDirectives {
    /// The directives of the last `[[fake ...]]` in `text`; `None` when there is none.
    pub fn parse(text: &str) -> Option<Self> {
        let base = Directives::parse(text)?;
        let mut directives = AgentDirectives { base, ..AgentDirectives::default() };
        for (key, value) in pairs(text) {
            let number = value.parse::<u64>().ok();
            match (key, number) {
                ("tool", Some(n)) => directives.tool = n > 0,
                ("tool_pause_ms", Some(n)) => directives.tool_pause_ms = n,
                ("cite", Some(n)) => directives.cite = n as usize,
                ("iterations", Some(n)) => directives.iterations = n as usize,
                ("done_only", Some(n)) => directives.done_only = n > 0,
                ("footnote", Some(n)) => directives.footnote = n > 0,
                ("agent_name", _) if !value.is_empty() => directives.agent_name = Some(value.to_owned()),
                ("error", _) => directives.error = ErrorForm::parse(value),
                ("hang_after", Some(n)) => directives.hang_after = Some(n as usize),
                ("approval", Some(n)) => directives.approval = n > 0,
                ("cut_after", Some(n)) => directives.cut_after = Some(n as usize),
                ("resumed", Some(n)) => directives.resumed = n > 0,
                ("trace", _) => {
                    directives.trace = match value {
                        "output" => TraceForm::Output,
                        "none" => TraceForm::None,
                        _ => TraceForm::Frame,
                    }
                }
                _ => {}
            }
        }
        Some(directives)
    }

    /// How many model iterations the answer takes: `iterations`, at least one, at least two with a tool call
    /// (the call ends the first, the answer comes in the next).
    pub fn iteration_count(&self) -> usize {
        self.iterations.max(1).max(if self.tool { 2 } else { 1 })
    }

    /// The text tokens of iteration `index` (1-based) of `count`: every iteration but the last says which step it
    /// is; the last one answers.
    pub fn iteration_tokens(&self, index: usize, count: usize, user_text: &str) -> Vec<String> {
        if index < count {
            crate::scenario::split_tokens(&format!("Step {index} of {count}. "))
        } else if self.base.stamp {
            // `stamp=1` (benchmarks): each token is the moment it is sent, written in when it is played.
            vec![super::frames::STAMP.to_owned(); self.base.tokens.unwrap_or(10)]
        } else {
            self.base.answer_tokens(user_text)
        }
    }

    /// The whole text a client should end up with (every text item once, footnotes left out): the steps and the
    /// answer. The agent's name item (`agent_name`) is not counted: it names who answers, a heading rather than
    /// text of the answer.
    pub fn answer_text(&self, user_text: &str) -> String {
        let count = self.iteration_count();
        (1..=count).flat_map(|index| self.iteration_tokens(index, count, user_text)).collect()
    }
}

/// Something that happens between two tokens of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// The agent says nothing for this many milliseconds (`stall_after` with `stall_ms`).
    Stall(u64),
    /// A frame that is not JSON (`malformed_after`).
    Malformed,
    /// The stream fails in this form and ends (`error`, `fail_after`).
    Fail(ErrorForm),
    /// The connection is cut (`abort_after`).
    Abort,
    /// The agent goes silent for good (`hang_after`).
    Hang,
}

impl Interruption {
    /// Whether the stream ends here.
    pub fn ends_stream(self) -> bool {
        matches!(self, Interruption::Fail(_) | Interruption::Abort | Interruption::Hang)
    }
}

impl AgentDirectives {
    /// What happens before answer token `index` of `len` (`index == len`: after the last one), in order; at most
    /// one of them ends the stream, and it comes last.
    pub fn interruptions_at(&self, index: usize, len: usize) -> Vec<Interruption> {
        let base = &self.base;
        let mut found = Vec::new();
        if base.stall_after == Some(index) {
            found.push(Interruption::Stall(base.stall_ms));
        }
        if base.malformed_after == Some(index) {
            found.push(Interruption::Malformed);
        }
        let fails = self.error.is_some() || base.fail_after.is_some();
        if fails && base.fail_after.unwrap_or(len) == index {
            found.push(Interruption::Fail(self.error.unwrap_or(ErrorForm::Type)));
        } else if base.abort_after == Some(index) {
            found.push(Interruption::Abort);
        } else if self.hang_after == Some(index) {
            found.push(Interruption::Hang);
        }
        found
    }
}

/// The text of a supervisor's agent-name item.
pub fn name_text(name: &str) -> String {
    format!("<name>{name}</name>")
}

/// The `key=value` pairs of the last `[[fake ...]]` block (the one [`Directives::parse`] reads).
fn pairs(text: &str) -> Vec<(&str, &str)> {
    let Some(start) = text.rfind("[[fake") else { return Vec::new() };
    let rest = &text[start + "[[fake".len()..];
    let Some(end) = rest.find("]]") else { return Vec::new() };
    rest[..end].split_whitespace().filter_map(|pair| pair.split_once('=')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_keys_are_read_beside_the_chat_completion_ones() {
        let directives = AgentDirectives::parse(
            "hi [[fake tokens=4 delay_ms=5 tool=1 tool_pause_ms=300 cite=2 done_only=1 footnote=1 \
             agent_name=research error=nested fail_after=2 approval=1 cut_after=3 resumed=1 trace=output]]",
        )
        .expect("found");
        assert_eq!(
            (directives.base.tokens, directives.base.delay_ms, directives.base.fail_after),
            (Some(4), Some(5), Some(2))
        );
        assert!(
            directives.tool && directives.done_only && directives.footnote && directives.approval && directives.resumed
        );
        assert_eq!((directives.tool_pause_ms, directives.cite, directives.cut_after), (300, 2, Some(3)));
        assert_eq!(directives.agent_name.as_deref(), Some("research"));
        assert_eq!(directives.error, Some(ErrorForm::Nested));
        assert_eq!(directives.trace, TraceForm::Output);
        assert_eq!(AgentDirectives::parse("no directives"), None);
        assert_eq!(AgentDirectives::parse("[[fake error=unknown]]").expect("found").error, None);
    }

    #[test]
    fn a_tool_call_makes_two_iterations_and_the_text_is_each_item_once() {
        let tool = AgentDirectives::parse("[[fake tool=1]] weather?").expect("found");
        assert_eq!(tool.iteration_count(), 2);
        assert_eq!(tool.answer_text("[[fake tool=1]] weather?"), "Step 1 of 2. You said: weather?");
        let named = AgentDirectives::parse("[[fake tokens=2 iterations=3 agent_name=genie]]").expect("found");
        assert_eq!(named.answer_text(""), "Step 1 of 3. Step 2 of 3. w1 w2", "the name item is not answer text");
        assert_eq!(AgentDirectives::default().iteration_count(), 1);
    }

    #[test]
    fn an_error_without_a_position_comes_after_the_whole_text() {
        let at_end = AgentDirectives::parse("[[fake error=string]]").expect("found");
        assert_eq!(at_end.interruptions_at(2, 3), []);
        assert_eq!(at_end.interruptions_at(3, 3), [Interruption::Fail(ErrorForm::String)]);
        let early = AgentDirectives::parse("[[fake fail_after=1 stall_after=1 stall_ms=50]]").expect("found");
        assert_eq!(early.interruptions_at(1, 3), [Interruption::Stall(50), Interruption::Fail(ErrorForm::Type)]);
        let cut = AgentDirectives::parse("[[fake abort_after=2 hang_after=0]]").expect("found");
        assert_eq!(
            (cut.interruptions_at(2, 5), cut.interruptions_at(0, 5)),
            (vec![Interruption::Abort], vec![Interruption::Hang])
        );
    }
}
