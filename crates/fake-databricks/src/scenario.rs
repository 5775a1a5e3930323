//! Scripted answers: a [`Scenario`] is an HTTP status and a list of [`Step`]s, built explicitly by a test or
//! derived from [`Directives`] written into the user's message.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One scripted answer to a chat-completions request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// HTTP status; anything but 200 answers with `body` instead of a stream.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Extra response headers (e.g. `Retry-After`).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body of a non-200 answer.
    #[serde(default)]
    pub body: Option<String>,
    /// Stream content, in order.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Pause before every content step.
    #[serde(default)]
    pub step_delay_ms: u64,
}

fn ok_status() -> u16 {
    200
}

/// One thing the fake does while streaming.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    /// `delta.content` as a string.
    Text {
        /// The text.
        text: String,
    },
    /// A text token holding the moment it is sent, in microseconds of [`crate::clock::micros`] (benchmarks
    /// measure how long the server took to pass it on).
    Stamp,
    /// `delta.content` as a list with one text item (GPT-OSS style).
    TextParts {
        /// The text.
        text: String,
    },
    /// `delta.content` as a list with one reasoning item (Databricks Claude/GPT-OSS style).
    Reasoning {
        /// The reasoning text.
        text: String,
    },
    /// `delta.reasoning_content` (vLLM/DeepSeek style).
    ReasoningContent {
        /// The reasoning text.
        text: String,
    },
    /// A raw `data:` payload, sent verbatim (malformed chunks).
    Raw {
        /// The payload.
        data: String,
    },
    /// An SSE comment line (`: ping`).
    Comment,
    /// A pause.
    Delay {
        /// Milliseconds.
        ms: u64,
    },
    /// A chunk with empty choices and token usage.
    Usage {
        /// Prompt tokens.
        prompt_tokens: u64,
        /// Completion tokens.
        completion_tokens: u64,
    },
    /// A chunk with an empty delta and a finish reason.
    Finish {
        /// e.g. `stop`, `length`.
        reason: String,
    },
    /// An OpenAI-style error event: `data: {"error":{"message":...}}`.
    Error {
        /// Error message.
        message: String,
    },
    /// A Databricks-style error event: `data: {"error_code":...,"message":...}`.
    DatabricksError {
        /// e.g. `REQUEST_LIMIT_EXCEEDED`.
        error_code: String,
        /// Error message.
        message: String,
    },
    /// A piece of a tool call: `delta.tool_calls[0]` with this `index` (id and name on a call's first piece).
    ToolCall {
        /// The call's index among the step's calls.
        index: usize,
        /// The call's id (first piece only).
        #[serde(default)]
        id: Option<String>,
        /// The function's name (first piece only).
        #[serde(default)]
        name: Option<String>,
        /// A piece of the arguments' JSON text.
        #[serde(default)]
        arguments: String,
    },
    /// `data: [DONE]`.
    Done,
    /// Cuts the connection without finishing the response.
    Abort,
    /// Sends nothing more, ever (until the client gives up).
    Hang,
}

impl Scenario {
    /// A 200 stream of the given steps.
    pub fn stream(steps: Vec<Step>) -> Self {
        Scenario { status: 200, headers: Vec::new(), body: None, steps, step_delay_ms: 0 }
    }

    /// A streamed answer made of these text tokens, then usage, a stop and `[DONE]`.
    pub fn tokens<S: Into<String>>(tokens: impl IntoIterator<Item = S>) -> Self {
        let mut steps: Vec<Step> = tokens.into_iter().map(|t| Step::Text { text: t.into() }).collect();
        let count = steps.len() as u64;
        steps.push(Step::Finish { reason: "stop".into() });
        steps.push(Step::Usage { prompt_tokens: 10, completion_tokens: count });
        steps.push(Step::Done);
        Scenario::stream(steps)
    }

    /// The same scenario, reporting this many prompt tokens in its usage.
    pub fn with_prompt_tokens(mut self, tokens: u64) -> Self {
        for step in &mut self.steps {
            if let Step::Usage { prompt_tokens, .. } = step {
                *prompt_tokens = tokens;
            }
        }
        self
    }

    /// A non-200 answer with an OpenAI-style error body.
    pub fn http_error(status: u16, message: &str) -> Self {
        let body = serde_json::json!({"error": {"message": message, "type": "fake_error", "code": status}});
        Scenario { status, headers: Vec::new(), body: Some(body.to_string()), steps: Vec::new(), step_delay_ms: 0 }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets a pause before every content step.
    pub fn with_step_delay(mut self, delay: Duration) -> Self {
        self.step_delay_ms = delay.as_millis() as u64;
        self
    }

    /// The answer a request with `max_tokens` gets, as real endpoints give it: the first `max_tokens` output tokens
    /// (text and reasoning steps count one each), then `finish_reason: "length"`, the usage and `[DONE]`. Whatever
    /// the scenario would have done later (a failure, a cut, a stall) never happens. A chat title is asked with a
    /// small `max_tokens`, so a title of a long scripted answer arrives while that answer is still streaming.
    pub fn limited_to(mut self, max_tokens: usize) -> Self {
        let is_output = |step: &Step| {
            matches!(
                step,
                Step::Text { .. }
                    | Step::Stamp
                    | Step::TextParts { .. }
                    | Step::Reasoning { .. }
                    | Step::ReasoningContent { .. }
            )
        };
        let mut produced = 0;
        let Some(cut) = self.steps.iter().position(|step| {
            if is_output(step) {
                produced += 1;
            }
            produced > max_tokens
        }) else {
            return self;
        };
        self.steps.truncate(cut);
        self.steps.push(Step::Finish { reason: "length".into() });
        self.steps.push(Step::Usage { prompt_tokens: 10, completion_tokens: max_tokens as u64 });
        self.steps.push(Step::Done);
        self
    }
}

/// Directives in a user message: `[[fake key=value ...]]`. They let browser tests and benchmarks script the fake
/// through the real UI or API.
///
/// | key | effect |
/// |---|---|
/// | `tokens=N` | answer with N numbered words `w1 w2 ... wN` instead of echoing |
/// | `delay_ms=D` | pause D ms before each token |
/// | `reasoning=N` | first stream N reasoning words `r1 ... rN` |
/// | `think=N` | first stream N words inside `<think>...</think>` in the text |
/// | `status=S` | answer HTTP S with an error body (with `retry_after=R` as `Retry-After`) |
/// | `status_times=N` | with `status`: only the first N requests carrying this exact message fail, later ones stream |
/// | `fail_after=N` | after N tokens, send an error event |
/// | `abort_after=N` | after N tokens, cut the connection |
/// | `stall_after=N` + `stall_ms=D` | after N tokens, say nothing for D ms |
/// | `malformed_after=N` | after N tokens, send a chunk that is not JSON |
/// | `markdown=1` | answer with a fixed markdown sample (heading, list, table, code block) |
/// | `html=1` | answer with HTML that must never run (`<script>`, `<img onerror>`) |
/// | `stamp=1` | each token is ` <microseconds>` of the moment it is sent (benchmarks) |
/// | `call=NAME` | call the tool NAME (repeat for parallel calls); after the results, answer `Results: ...` |
/// | `args=JSON` | the arguments of the call before it (JSON without spaces; default `{}`) |
/// | `call_chunks=N` | split each call's arguments over N pieces (default 3) |
/// | `call_rounds=N` | call again until N rounds of results came back (default 1; large: a loop) |
/// | `call_text=1` | print the calls as text, Llama style, instead of `tool_calls` |
/// | `call_malformed=1` | arguments that are not valid JSON |
/// | `call_noid=1` | calls without ids |
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `tokens`.
    pub tokens: Option<usize>,
    /// `delay_ms`.
    pub delay_ms: Option<u64>,
    /// `reasoning`.
    pub reasoning: usize,
    /// `think`.
    pub think: usize,
    /// `status`.
    pub status: Option<u16>,
    /// `retry_after`.
    pub retry_after: Option<u64>,
    /// `status_times`.
    pub status_times: Option<u32>,
    /// `fail_after`.
    pub fail_after: Option<usize>,
    /// `abort_after`.
    pub abort_after: Option<usize>,
    /// `stall_after`.
    pub stall_after: Option<usize>,
    /// `stall_ms`.
    pub stall_ms: u64,
    /// `malformed_after`.
    pub malformed_after: Option<usize>,
    /// `markdown`.
    pub markdown: bool,
    /// `html`.
    pub html: bool,
    /// `stamp`.
    pub stamp: bool,
    /// `call` (with the `args` after each).
    pub calls: Vec<(String, String)>,
    /// `call_chunks`.
    pub call_chunks: Option<usize>,
    /// `call_rounds`.
    pub call_rounds: Option<usize>,
    /// `call_text`.
    pub call_text: bool,
    /// `call_malformed`.
    pub call_malformed: bool,
    /// `call_noid`.
    pub call_noid: bool,
}

/// The markdown sample of `markdown=1`.
pub const MARKDOWN_SAMPLE: &str = "## Result\n\nHere is a list:\n\n- first item\n- second **bold** item\n\n| Name | Value |\n|---|---|\n| alpha | 1 |\n| beta | 2 |\n\n```rust\nfn main() {\n    println!(\"hello\");\n}\n```\n\nDone.";

/// The HTML sample of `html=1`: none of it may execute in the browser.
pub const HTML_SAMPLE: &str = "Look: <script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\"> <a href=\"javascript:window.__pwned=3\">link</a> end.";

impl Directives {
    /// Finds `[[fake ...]]` in a message; `None` when there is none. The last one wins: a server merges
    /// consecutive user messages (after an answer with no text) oldest first, and the newest is the one asked.
    pub fn parse(text: &str) -> Option<Self> {
        let start = text.rfind("[[fake")?;
        let rest = &text[start + "[[fake".len()..];
        let end = rest.find("]]")?;
        let mut directives = Directives::default();
        for pair in rest[..end].split_whitespace() {
            let Some((key, value)) = pair.split_once('=') else { continue };
            match key {
                "call" => directives.calls.push((value.to_owned(), "{}".to_owned())),
                "args" => {
                    if let Some(last) = directives.calls.last_mut() {
                        last.1 = value.to_owned();
                    }
                }
                _ => {}
            }
            let number = value.parse::<u64>().ok();
            match (key, number) {
                ("tokens", Some(n)) => directives.tokens = Some(n as usize),
                ("delay_ms", Some(n)) => directives.delay_ms = Some(n),
                ("reasoning", Some(n)) => directives.reasoning = n as usize,
                ("think", Some(n)) => directives.think = n as usize,
                ("status", Some(n)) => directives.status = u16::try_from(n).ok(),
                ("retry_after", Some(n)) => directives.retry_after = Some(n),
                ("status_times", Some(n)) => directives.status_times = u32::try_from(n).ok(),
                ("fail_after", Some(n)) => directives.fail_after = Some(n as usize),
                ("abort_after", Some(n)) => directives.abort_after = Some(n as usize),
                ("stall_after", Some(n)) => directives.stall_after = Some(n as usize),
                ("stall_ms", Some(n)) => directives.stall_ms = n,
                ("malformed_after", Some(n)) => directives.malformed_after = Some(n as usize),
                ("markdown", Some(n)) => directives.markdown = n > 0,
                ("html", Some(n)) => directives.html = n > 0,
                ("stamp", Some(n)) => directives.stamp = n > 0,
                ("call_chunks", Some(n)) => directives.call_chunks = Some((n as usize).max(1)),
                ("call_rounds", Some(n)) => directives.call_rounds = Some(n as usize),
                ("call_text", Some(n)) => directives.call_text = n > 0,
                ("call_malformed", Some(n)) => directives.call_malformed = n > 0,
                ("call_noid", Some(n)) => directives.call_noid = n > 0,
                _ => {}
            }
        }
        Some(directives)
    }

    /// The scenario these directives describe, answering `user_text`.
    pub fn scenario(&self, user_text: &str, default_delay: Duration) -> Scenario {
        if let Some(status) = self.status {
            let mut scenario = Scenario::http_error(status, &format!("fake upstream error {status}"));
            if let Some(seconds) = self.retry_after {
                scenario = scenario.with_header("retry-after", &seconds.to_string());
            }
            return scenario;
        }
        let delay = self.delay_ms.map(Duration::from_millis).unwrap_or(default_delay);
        let mut steps = Vec::new();
        let push = |steps: &mut Vec<Step>, step: Step| {
            if !delay.is_zero() {
                steps.push(Step::Delay { ms: delay.as_millis() as u64 });
            }
            steps.push(step);
        };
        for i in 1..=self.reasoning {
            push(&mut steps, Step::Reasoning { text: format!("{}r{i}", if i == 1 { "" } else { " " }) });
        }
        if self.think > 0 {
            push(&mut steps, Step::Text { text: "<think>".into() });
            for i in 1..=self.think {
                push(&mut steps, Step::Text { text: format!("{}t{i}", if i == 1 { "" } else { " " }) });
            }
            push(&mut steps, Step::Text { text: "</think>".into() });
        }
        let words = self.answer_tokens(user_text);
        let count = words.len() as u64;
        for (index, word) in words.into_iter().enumerate() {
            if self.fail_after == Some(index) {
                steps.push(Step::Error { message: "fake failure mid-stream".into() });
                return Scenario::stream(steps);
            }
            if self.abort_after == Some(index) {
                // Let the tokens already sent reach the client before the connection drops.
                steps.push(Step::Delay { ms: delay.as_millis() as u64 });
                steps.push(Step::Abort);
                return Scenario::stream(steps);
            }
            if self.malformed_after == Some(index) {
                steps.push(Step::Raw { data: "{\"choices\": [ this is not json".into() });
            }
            if self.stall_after == Some(index) {
                steps.push(Step::Delay { ms: self.stall_ms });
            }
            push(&mut steps, if self.stamp { Step::Stamp } else { Step::Text { text: word } });
        }
        steps.push(Step::Finish { reason: "stop".into() });
        steps.push(Step::Usage { prompt_tokens: (user_text.len() as u64 / 4).max(1), completion_tokens: count });
        steps.push(Step::Done);
        Scenario::stream(steps)
    }

    /// The scenario of a model asked to use tools (`call=`), given the request so far: the calls while fewer than
    /// `call_rounds` rounds of results came back since the user's message, else the answer `Results: ...` naming
    /// every result it got (so tests see what reached the model). `None` without `call=`.
    pub fn tool_scenario(&self, request: &serde_json::Value, delay: Duration) -> Option<Scenario> {
        if self.calls.is_empty() {
            return None;
        }
        let messages = request["messages"].as_array().cloned().unwrap_or_default();
        let since_user = match messages.iter().rposition(|m| m["role"] == "user") {
            Some(at) => &messages[at + 1..],
            None => &messages[..],
        };
        let rounds = since_user.iter().filter(|m| m["tool_calls"].is_array()).count();
        let mut steps = Vec::new();
        if rounds < self.call_rounds.unwrap_or(1) {
            let round = rounds + 1;
            if self.call_text {
                let printed: Vec<String> = self
                    .calls
                    .iter()
                    .map(|(name, args)| format!("{{\"name\": \"{name}\", \"parameters\": {args}}}"))
                    .collect();
                for token in split_tokens(&format!("[{}]", printed.join(", "))) {
                    steps.push(Step::Text { text: token });
                }
                steps.push(Step::Finish { reason: "stop".into() });
            } else {
                for (index, (name, args)) in self.calls.iter().enumerate() {
                    let args =
                        if self.call_malformed { format!("{}{{", args.trim_end_matches('}')) } else { args.clone() };
                    let pieces = chunked(&args, self.call_chunks.unwrap_or(3));
                    for (at, piece) in pieces.into_iter().enumerate() {
                        if !delay.is_zero() {
                            steps.push(Step::Delay { ms: delay.as_millis() as u64 });
                        }
                        let first = at == 0;
                        steps.push(Step::ToolCall {
                            index,
                            id: (first && !self.call_noid).then(|| format!("call_r{round}_{index}")),
                            name: first.then(|| name.clone()),
                            arguments: piece,
                        });
                    }
                }
                steps.push(Step::Finish { reason: "tool_calls".into() });
            }
        } else {
            let results: Vec<String> = since_user
                .iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
                .collect();
            for token in split_tokens(&format!("Results: {}", results.join(" | "))) {
                if !delay.is_zero() {
                    steps.push(Step::Delay { ms: delay.as_millis() as u64 });
                }
                steps.push(Step::Text { text: token });
            }
            steps.push(Step::Finish { reason: "stop".into() });
        }
        steps.push(Step::Usage { prompt_tokens: 10, completion_tokens: 5 });
        steps.push(Step::Done);
        Some(Scenario::stream(steps))
    }

    /// The answer's text tokens: the markdown or HTML sample, `tokens=N` numbered words, else the echo of the
    /// user's text (agents answer with the same words).
    pub fn answer_tokens(&self, user_text: &str) -> Vec<String> {
        if self.markdown {
            return split_tokens(MARKDOWN_SAMPLE);
        }
        if self.html {
            return split_tokens(HTML_SAMPLE);
        }
        match self.tokens {
            Some(n) => numbered_words(n),
            None => echo_tokens(user_text),
        }
    }
}

/// `text` in `n` pieces of about equal length (at least one piece, never splitting a character).
fn chunked(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    let pieces: Vec<String> = chars.chunks(size).map(|piece| piece.iter().collect()).collect();
    if pieces.is_empty() { vec![String::new()] } else { pieces }
}

/// `w1`, ` w2`, ..., ` wN`: easy to check for gaps and duplicates.
pub fn numbered_words(n: usize) -> Vec<String> {
    (1..=n).map(|i| if i == 1 { format!("w{i}") } else { format!(" w{i}") }).collect()
}

/// The text `numbered_words(n)` adds up to.
pub fn numbered_text(n: usize) -> String {
    numbered_words(n).concat()
}

/// The default answer: `You said: <text>`, one token per word.
pub fn echo_tokens(user_text: &str) -> Vec<String> {
    let stripped = match (user_text.find("[[fake"), user_text.find("]]")) {
        (Some(start), Some(end)) if end > start => format!("{}{}", &user_text[..start], &user_text[end + 2..]),
        _ => user_text.to_owned(),
    };
    split_tokens(&format!("You said: {}", stripped.trim()))
}

/// Splits text into tokens that keep their leading whitespace, so their concatenation is the text.
pub fn split_tokens(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            if in_word {
                tokens.push(std::mem::take(&mut current));
                in_word = false;
            }
            current.push(ch);
        } else {
            current.push(ch);
            in_word = true;
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_found_anywhere_in_the_message() {
        let directives = Directives::parse("please [[fake tokens=5 delay_ms=20 fail_after=3]] thanks").expect("found");
        assert_eq!(directives.tokens, Some(5));
        assert_eq!(directives.delay_ms, Some(20));
        assert_eq!(directives.fail_after, Some(3));
        assert_eq!(Directives::parse("no directives here"), None);
        let merged = Directives::parse("[[fake tokens=40]]\n\n[[fake tokens=5]]").expect("found");
        assert_eq!(merged.tokens, Some(5), "the newest message's directives win");
        let transient = Directives::parse("[[fake status=429 retry_after=1 status_times=2]]").expect("found");
        assert_eq!((transient.status, transient.retry_after, transient.status_times), (Some(429), Some(1), Some(2)));
    }

    #[test]
    fn max_tokens_cuts_the_answer_with_finish_reason_length() {
        let scenario =
            Directives::parse("[[fake tokens=10 fail_after=8]]").expect("found").scenario("", Duration::ZERO);
        let limited = scenario.clone().limited_to(3);
        let texts: Vec<&Step> = limited.steps.iter().filter(|s| matches!(s, Step::Text { .. })).collect();
        assert_eq!(texts.len(), 3);
        assert!(!limited.steps.iter().any(|s| matches!(s, Step::Error { .. })), "the failure after 8 never comes");
        assert!(limited.steps.contains(&Step::Finish { reason: "length".into() }));
        assert_eq!(limited.steps.last(), Some(&Step::Done));
        assert_eq!(scenario.clone().limited_to(50), scenario, "a longer limit changes nothing");
    }

    #[test]
    fn tool_calls_come_first_then_an_answer_naming_the_results() {
        let directives =
            Directives::parse("[[fake call=list_chats args={\"limit\":2} call=current_user call_chunks=2]]")
                .expect("found");
        assert_eq!(
            directives.calls,
            [("list_chats".into(), "{\"limit\":2}".into()), ("current_user".into(), "{}".into())]
        );
        let asked = serde_json::json!({"messages": [{"role": "user", "content": "hi"}]});
        let calls = directives.tool_scenario(&asked, Duration::ZERO).expect("a tool scenario");
        let pieces: Vec<&Step> = calls.steps.iter().filter(|s| matches!(s, Step::ToolCall { .. })).collect();
        assert_eq!(pieces.len(), 4);
        assert!(calls.steps.contains(&Step::Finish { reason: "tool_calls".into() }));
        let answered = serde_json::json!({"messages": [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": " ", "tool_calls": []},
            {"role": "tool", "tool_call_id": "a", "content": "one"}, {"role": "tool", "tool_call_id": "b", "content": "two"}]});
        let answer = directives.tool_scenario(&answered, Duration::ZERO).expect("a tool scenario");
        let text: String = answer
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Results: one | two");
        assert!(Directives::parse("[[fake tokens=3]]").expect("found").tool_scenario(&asked, Duration::ZERO).is_none());
    }

    #[test]
    fn tokens_concatenate_back_to_the_text() {
        let text = "  Hello,\n\nworld  of   tokens ";
        assert_eq!(split_tokens(text).concat(), text);
        assert_eq!(numbered_text(3), "w1 w2 w3");
        assert_eq!(echo_tokens("hi [[fake delay_ms=1]] there").concat(), "You said: hi  there");
    }
}
