//! How an answer's parts show, as plain data: which blocks follow each other (text, a group of tool calls, an
//! agent taking over, an approval, the older messages summarised), the numbered citations under the answer, and the words a tool call is shown
//! with. No I/O and no view code, so it is tested natively; `components/message.rs` draws what this decides.

use serde_json::Value;
use shared::{MessagePart, ToolPart, ToolState};

use crate::markdown::web_url;

/// Data part of a sub-agent taking over (the text after it is that agent's).
pub const AGENT_PART: &str = "data-agent";
/// Data part of a tool call waiting for the user's approval (replaced in place once answered).
pub const APPROVAL_PART: &str = "data-approval";
/// Data part saying the chat's older messages were summarised to fit the model's window (replaced in place as the
/// summary is written).
pub const SUMMARY_PART: &str = "data-summary";

/// One block of an answer on screen, named by the index of its first part (stable while the answer grows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A text part, rendered as markdown.
    Text(usize),
    /// Tool calls one after the other (nothing visible between them): their part indices.
    Tools(Vec<usize>),
    /// A sub-agent takes over: its name.
    Agent(usize, String),
    /// A `data-approval` part.
    Approval(usize),
    /// A `data-summary` part.
    Summary(usize),
}

impl Block {
    /// The list key: the index of the block's first part. A growing group of tool calls keeps its key, so its
    /// disclosure stays open while more calls arrive.
    pub fn key(&self) -> usize {
        match self {
            Block::Text(at) | Block::Agent(at, _) | Block::Approval(at) | Block::Summary(at) => *at,
            Block::Tools(calls) => calls.first().copied().unwrap_or_default(),
        }
    }
}

/// The blocks of an answer in order. Reasoning (shown apart, collapsed), sources (listed under the answer), step
/// boundaries, blank text and data parts this client does not draw show nothing, so tool calls on either side of
/// them still form one group. Adjacent text parts are one block, named by the first ([`run_start`]).
pub fn layout(parts: &[MessagePart]) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for (at, part) in parts.iter().enumerate() {
        let block = match part {
            MessagePart::Text { text } => {
                let start = run_start(parts, at);
                if text.trim().is_empty() || blocks.last() == Some(&Block::Text(start)) {
                    continue;
                }
                Block::Text(start)
            }
            MessagePart::Tool(_) => {
                if let Some(Block::Tools(calls)) = blocks.last_mut() {
                    calls.push(at);
                    continue;
                }
                Block::Tools(vec![at])
            }
            MessagePart::Data(data) if data.kind == AGENT_PART => {
                Block::Agent(at, data.data.get("name").and_then(Value::as_str).unwrap_or("Agent").to_owned())
            }
            MessagePart::Data(data) if data.kind == APPROVAL_PART => Block::Approval(at),
            MessagePart::Data(data) if data.kind == SUMMARY_PART => Block::Summary(at),
            _ => continue,
        };
        blocks.push(block);
    }
    blocks
}

/// Where the text run holding text part `at` starts. Text parts one after the other are one text: an answer resumed
/// after a reload goes on in a new part (the stream's text id is not stored), and it must read on without a break.
pub fn run_start(parts: &[MessagePart], at: usize) -> usize {
    let before = parts[..at].iter().rev().take_while(|part| part.is_text()).count();
    at - before
}

/// A source the answer cites, as listed under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Citation {
    /// 1, 2, 3… in the order the answer first cites them.
    pub number: usize,
    /// The address, only when it is an `http(s)` URL (anything else is shown, never linked).
    pub href: Option<String>,
    /// The title, else the host, else the address as written.
    pub label: String,
}

/// The answer's `source-url` parts, numbered; a URL cited twice is listed once.
pub fn citations(parts: &[MessagePart]) -> Vec<Citation> {
    let mut seen: Vec<&str> = Vec::new();
    let mut list = Vec::new();
    for part in parts {
        let MessagePart::SourceUrl(source) = part else { continue };
        let url = source.url.trim();
        if url.is_empty() || seen.contains(&url) {
            continue;
        }
        seen.push(url);
        let href = web_url(url).map(str::to_owned);
        let title = source.title.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let label = title.or_else(|| href.as_deref().and_then(host)).unwrap_or(url).to_owned();
        list.push(Citation { number: list.len() + 1, href, label });
    }
    list
}

/// The host of an `http(s)` URL, without `www.`, credentials or port.
fn host(url: &str) -> Option<&str> {
    let rest = &url[url.find("//")? + 2..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = &authority[authority.rfind('@').map_or(0, |at| at + 1)..];
    // A bracketed IPv6 address keeps its colons.
    let end = if host.starts_with('[') { host.len() } else { host.find(':').unwrap_or(host.len()) };
    let host = &host[..end];
    let host = host.strip_prefix("www.").unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// A tool's name for people: Unity Catalog functions come as `catalog__schema__function` (the dots of
/// `catalog.schema.function` are not allowed in tool names), and only the function says what happens;
/// underscores, dashes and camel case become words: `system__ai__python_exec` → "Python exec".
pub fn tool_title(name: &str) -> String {
    let bytes = name.as_bytes();
    let start = bytes.windows(2).rposition(|w| w == b"__").map_or(0, |at| at + 2);
    let last = &bytes[start..];
    let last = last.rsplit(|&b| b == b'.').next().unwrap_or(last);
    // ASCII case rules only: tool names are identifiers, and Unicode case tables would cost WebAssembly. Other
    // bytes are copied as they come (spaces only go next to ASCII), so the words stay UTF-8.
    let mut words: Vec<u8> = Vec::with_capacity(last.len() + 4);
    for (at, &c) in last.iter().enumerate() {
        let previous = if at > 0 { last[at - 1] } else { b' ' };
        let next = last.get(at + 1).copied().unwrap_or(b' ');
        if matches!(c, b'_' | b'-' | b' ') {
            if words.last().is_some_and(|&w| w != b' ') {
                words.push(b' ');
            }
            continue;
        }
        let upper = c.is_ascii_uppercase();
        // A capital starts a word after a small letter or a digit, and ends an acronym ("HTTPRequest").
        let starts_word = previous.is_ascii_lowercase()
            || previous.is_ascii_digit()
            || previous.is_ascii_uppercase() && next.is_ascii_lowercase();
        if upper && starts_word && words.last().is_some_and(|&w| w != b' ') {
            words.push(b' ');
        }
        // The first letter is a capital; "searchDocs" reads "search docs"; an acronym ("getURL") stays.
        words.push(if words.is_empty() {
            c.to_ascii_uppercase()
        } else if upper && next.is_ascii_lowercase() {
            c.to_ascii_lowercase()
        } else {
            c
        });
    }
    while words.last() == Some(&b' ') {
        words.pop();
    }
    match String::from_utf8(words) {
        Ok(words) if !words.is_empty() => words,
        _ => name.to_owned(),
    }
}

/// Where a tool call stands, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolStatus {
    /// Its arguments are arriving or it runs.
    Running,
    /// It answered.
    Done,
    /// It failed.
    Failed,
    /// The answer ended without the tool's answer (stopped, failed, or waiting for an approval).
    Unfinished,
}

impl ToolStatus {
    /// The status of a call in an answer that is (or is no longer) being written.
    pub fn of(state: ToolState, answer_streaming: bool) -> Self {
        match state {
            ToolState::OutputAvailable => ToolStatus::Done,
            ToolState::OutputError => ToolStatus::Failed,
            _ if answer_streaming => ToolStatus::Running,
            _ => ToolStatus::Unfinished,
        }
    }

    /// The word shown (and read out).
    pub fn label(self) -> &'static str {
        match self {
            ToolStatus::Running => "Running",
            ToolStatus::Done => "Done",
            ToolStatus::Failed => "Failed",
            ToolStatus::Unfinished => "No result",
        }
    }

    /// CSS/test name.
    pub fn name(self) -> &'static str {
        match self {
            ToolStatus::Running => "running",
            ToolStatus::Done => "done",
            ToolStatus::Failed => "failed",
            ToolStatus::Unfinished => "unfinished",
        }
    }
}

/// The summary of a group of calls: "3 tool calls", with how many still run or failed.
pub fn group_summary(statuses: &[ToolStatus]) -> String {
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    let mut summary = format!("{} tool calls", statuses.len());
    for (status, word) in [(ToolStatus::Running, "running"), (ToolStatus::Failed, "failed")] {
        let n = count(status);
        if n > 0 {
            summary.push_str(&format!(", {n} {word}"));
        }
    }
    summary
}

/// The MCP server a call went to: from the call's own metadata (`{"databricks":{"serverLabel":…}}`), else from
/// the approval asked for it.
pub fn server_label(parts: &[MessagePart], tool: &ToolPart) -> Option<String> {
    // Read directly: `ToolPart::server_label` goes through a JSON pointer, whose unescaping costs WebAssembly.
    let metadata = tool.call_provider_metadata.as_ref();
    let from_call = metadata.and_then(|m| m.get("databricks")?.get("serverLabel")?.as_str());
    let label = from_call.map(str::to_owned).or_else(|| {
        parts.iter().find_map(|part| {
            let approval = Approval::of(part)?;
            (approval.tool_call_id == tool.tool_call_id).then_some(approval.server_label?.to_owned())
        })
    });
    label.filter(|l| !l.is_empty())
}

/// A tool call the agent asks the user to allow (a `data-approval` part), read in place.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval<'a> {
    /// What to answer (`POST /api/chat/{chat}/approvals/{id}`).
    pub id: &'a str,
    /// The call it is about.
    pub tool_call_id: &'a str,
    /// The tool.
    pub tool_name: &'a str,
    /// The MCP server, when known.
    pub server_label: Option<&'a str>,
    /// The arguments the call would have.
    pub arguments: &'a Value,
    /// `requested`, `approved` or `denied`.
    pub state: &'a str,
    /// Why it was denied, when the user said.
    pub reason: Option<&'a str>,
}

impl<'a> Approval<'a> {
    /// Reads a `data-approval` part; `None` for any other part.
    pub fn of(part: &'a MessagePart) -> Option<Self> {
        let MessagePart::Data(data) = part else { return None };
        if data.kind != APPROVAL_PART {
            return None;
        }
        let text = |key: &str| data.data.get(key).and_then(Value::as_str);
        let id =
            text("approvalId").or_else(|| data.id.as_deref().map(|id| id.strip_prefix("approval-").unwrap_or(id)))?;
        Some(Self {
            id,
            tool_call_id: text("toolCallId").unwrap_or(id),
            tool_name: text("toolName").unwrap_or_default(),
            server_label: text("serverLabel"),
            arguments: data.data.get("arguments").unwrap_or(&Value::Null),
            state: text("state").unwrap_or("requested"),
            reason: text("reason").filter(|r| !r.trim().is_empty()),
        })
    }

    /// Whether the user still has to answer.
    pub fn is_requested(&self) -> bool {
        self.state == "requested"
    }

    /// The line an answered approval leaves: "Allowed" or "Denied: reason".
    pub fn outcome(&self) -> String {
        match (self.state, self.reason) {
            ("approved", _) => "Allowed".to_owned(),
            ("denied", Some(reason)) => format!("Denied: {reason}"),
            ("denied", None) => "Denied".to_owned(),
            ("expired", _) => "Expired: not run".to_owned(),
            (other, _) => other.to_owned(),
        }
    }
}

/// The older messages of a long chat summarised before the answer (a `data-summary` part), read in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<'a> {
    /// `summarising`, `done` or `failed`.
    pub state: &'a str,
    /// How many messages it stands for.
    pub messages: u64,
    /// The summary, once written.
    pub text: Option<&'a str>,
}

impl<'a> Summary<'a> {
    /// Reads a `data-summary` part; `None` for any other part.
    pub fn of(part: &'a MessagePart) -> Option<Self> {
        let MessagePart::Data(data) = part else { return None };
        if data.kind != SUMMARY_PART {
            return None;
        }
        let text = |key: &str| data.data.get(key).and_then(Value::as_str);
        Some(Self {
            state: text("state").unwrap_or_default(),
            messages: data.data.get("messages").and_then(Value::as_u64).unwrap_or_default(),
            text: text("text").filter(|t| !t.trim().is_empty()),
        })
    }

    /// Whether the summary is being written.
    pub fn is_running(&self) -> bool {
        self.state == "summarising"
    }

    /// The line the answer shows: "Summarising 12 earlier messages…", "12 earlier messages summarised", or why
    /// they could not be.
    pub fn notice(&self) -> String {
        let n = self.messages;
        let what = if n == 1 { "earlier message" } else { "earlier messages" };
        match self.state {
            "summarising" => format!("Summarising {n} {what}…"),
            "done" => format!("{n} {what} summarised"),
            _ => format!("{n} {what} could not be summarised; the oldest were left out"),
        }
    }
}

/// JSON as people read it: a string is shown as its text (pretty printed when it holds JSON itself, as tool
/// results often do), anything else pretty printed.
pub fn json_text(value: &Value) -> String {
    match value {
        Value::String(text) => {
            let trimmed = text.trim_start();
            match serde_json::from_str::<Value>(text) {
                Ok(inner @ (Value::Object(_) | Value::Array(_))) if trimmed.starts_with(['{', '[']) => pretty(&inner),
                _ => text.clone(),
            }
        }
        other => pretty(other),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Output longer than this many bytes is cut until the user asks for all of it.
pub const PREVIEW_BYTES: usize = 2_000;
/// … and longer than this many lines.
pub const PREVIEW_LINES: usize = 30;

/// The start of a long text to show first, or `None` when the whole text is short enough. The cut falls at the
/// end of a line when one is near, else at a character boundary.
pub fn preview(text: &str, max_bytes: usize, max_lines: usize) -> Option<&str> {
    let line_cut = text.match_indices('\n').nth(max_lines.saturating_sub(1)).map(|(at, _)| at);
    if text.len() <= max_bytes && line_cut.is_none_or(|at| at + 1 >= text.len()) {
        return None;
    }
    let mut cut = line_cut.unwrap_or(text.len()).min(max_bytes);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    // Prefer a whole last line, unless that loses more than a quarter of what is shown.
    if let Some(newline) = text[..cut].rfind('\n')
        && newline >= cut - cut / 4
        && line_cut != Some(cut)
    {
        cut = newline;
    }
    Some(&text[..cut])
}

/// "12.3 KB": how much "show all" shows.
pub fn size_label(bytes: usize) -> String {
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    // Tenths in integers: formatting a float would bring float printing into the WebAssembly.
    let tenths = (bytes * 10 + 512) / 1024;
    format!("{}.{} KB", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::{DataPart, Source};

    use super::*;

    fn text(text: &str) -> MessagePart {
        MessagePart::Text { text: text.into() }
    }

    /// Built from JSON so the tests keep compiling as `ToolPart` gains fields.
    fn tool(id: &str, state: &str) -> MessagePart {
        MessagePart::from_json(json!({"type": "dynamic-tool", "toolCallId": id, "toolName": "t", "state": state}))
            .expect("a tool part")
    }

    fn data(kind: &str, data: Value) -> MessagePart {
        MessagePart::Data(DataPart { kind: kind.into(), id: None, data })
    }

    fn source(url: &str, title: Option<&str>) -> MessagePart {
        MessagePart::SourceUrl(Source { source_id: url.into(), url: url.into(), title: title.map(str::to_owned) })
    }

    #[test]
    fn consecutive_tool_calls_form_one_group_and_text_splits_groups() {
        let parts = vec![
            text("Let me look."),
            tool("a", "output-available"),
            MessagePart::StepStart,
            text("  \n"),
            tool("b", "output-error"),
            source("https://x.example", None),
            tool("c", "input-available"),
            text("Found it."),
            tool("d", "input-streaming"),
            data(AGENT_PART, json!({"name": "research"})),
            text("Research says…"),
            data(APPROVAL_PART, json!({"approvalId": "r1"})),
            data("data-other", json!(1)),
            data(SUMMARY_PART, json!({"state": "done", "messages": 3})),
        ];
        assert_eq!(
            layout(&parts),
            [
                Block::Text(0),
                Block::Tools(vec![1, 4, 6]),
                Block::Text(7),
                Block::Tools(vec![8]),
                Block::Agent(9, "research".into()),
                Block::Text(10),
                Block::Approval(11),
                Block::Summary(13),
            ]
        );
        assert_eq!(layout(&parts)[1].key(), 1, "a group is named by its first call");
    }

    #[test]
    fn a_summary_says_how_many_messages_it_stands_for_in_each_state() {
        let read = |value: Value| {
            let part = data(SUMMARY_PART, value);
            Summary::of(&part).map(|s| (s.notice(), s.text.map(str::to_owned), s.is_running()))
        };
        assert_eq!(
            read(json!({"state": "summarising", "messages": 12})),
            Some(("Summarising 12 earlier messages…".into(), None, true))
        );
        assert_eq!(
            read(json!({"state": "done", "messages": 1, "text": "Facts."})),
            Some(("1 earlier message summarised".into(), Some("Facts.".into()), false))
        );
        assert_eq!(
            read(json!({"state": "failed", "messages": 40, "text": " "})),
            Some(("40 earlier messages could not be summarised; the oldest were left out".into(), None, false))
        );
        assert_eq!(Summary::of(&data(APPROVAL_PART, json!({"state": "done"}))), None);
    }

    #[test]
    fn adjacent_text_parts_are_one_block_named_by_the_first() {
        let parts = vec![text("Hello "), text("world"), tool("a", "output-available"), text(" "), text("Again")];
        assert_eq!(layout(&parts), [Block::Text(0), Block::Tools(vec![2]), Block::Text(3)]);
        assert_eq!((run_start(&parts, 1), run_start(&parts, 4)), (0, 3));
    }

    #[test]
    fn citations_are_numbered_once_each_and_only_web_urls_link() {
        let parts = vec![
            text("See [1]."),
            source("https://www.example.com/a?b#c", None),
            source("https://docs.example/x", Some("  The docs ")),
            source("https://www.example.com/a?b#c", Some("again")),
            source("javascript:alert(1)", Some("bad")),
            source("ftp://files.example/f", None),
            source("http://user:pw@[::1]:8080/p", None),
        ];
        let list = citations(&parts);
        let shown: Vec<(usize, Option<&str>, &str)> =
            list.iter().map(|c| (c.number, c.href.as_deref(), c.label.as_str())).collect();
        assert_eq!(
            shown,
            [
                (1, Some("https://www.example.com/a?b#c"), "example.com"),
                (2, Some("https://docs.example/x"), "The docs"),
                (3, None, "bad"),
                (4, None, "ftp://files.example/f"),
                (5, Some("http://user:pw@[::1]:8080/p"), "[::1]:8080"),
            ]
        );
    }

    #[test]
    fn tool_names_read_as_words() {
        let cases = [
            ("system__ai__python_exec", "Python exec"),
            ("main.default.lookup_customer", "Lookup customer"),
            ("send_email", "Send email"),
            ("searchDocs", "Search docs"),
            ("get-weather-v2", "Get weather v2"),
            ("getURL", "Get URL"),
            ("HTTPRequest", "HTTP request"),
            ("Send_Email", "Send email"),
            ("__", "__"),
            ("x", "X"),
        ];
        for (raw, shown) in cases {
            assert_eq!(tool_title(raw), shown, "{raw}");
        }
    }

    #[test]
    fn statuses_follow_the_call_and_the_answer() {
        assert_eq!(ToolStatus::of(ToolState::InputStreaming, true), ToolStatus::Running);
        assert_eq!(ToolStatus::of(ToolState::InputAvailable, true), ToolStatus::Running);
        assert_eq!(ToolStatus::of(ToolState::InputAvailable, false), ToolStatus::Unfinished);
        assert_eq!(ToolStatus::of(ToolState::OutputAvailable, true), ToolStatus::Done);
        assert_eq!(ToolStatus::of(ToolState::OutputError, false), ToolStatus::Failed);
        let statuses = [ToolStatus::Done, ToolStatus::Running, ToolStatus::Failed, ToolStatus::Running];
        assert_eq!(group_summary(&statuses), "4 tool calls, 2 running, 1 failed");
        assert_eq!(group_summary(&statuses[..1]), "1 tool calls");
    }

    #[test]
    fn approvals_are_read_and_name_the_server_of_their_call() {
        let approval = data(
            APPROVAL_PART,
            json!({"approvalId": "R", "toolCallId": "R", "toolName": "send_email", "serverLabel": "mail-server",
                   "arguments": {"to": "a@b.c"}, "state": "requested"}),
        );
        let read = Approval::of(&approval).expect("an approval");
        assert!(read.is_requested());
        assert_eq!((read.id, read.arguments["to"].as_str()), ("R", Some("a@b.c")));
        let MessagePart::Tool(call) = tool("R", "input-available") else { unreachable!() };
        assert_eq!(server_label(&[approval], &call).as_deref(), Some("mail-server"));
        assert_eq!(server_label(&[], &call), None);

        let denied = data(APPROVAL_PART, json!({"approvalId": "R", "state": "denied", "reason": "not now"}));
        assert_eq!(Approval::of(&denied).expect("read").outcome(), "Denied: not now");
        let allowed = data(APPROVAL_PART, json!({"approvalId": "R", "state": "approved"}));
        assert_eq!(Approval::of(&allowed).expect("read").outcome(), "Allowed");
        assert_eq!(Approval::of(&text("x")), None);
    }

    #[test]
    fn the_server_label_comes_from_the_call_metadata_when_it_has_one() {
        let part = MessagePart::from_json(json!({"type": "dynamic-tool", "toolCallId": "c", "toolName": "t",
            "state": "input-available", "callProviderMetadata": {"databricks": {"serverLabel": "mail-server"}}}))
        .expect("a tool part");
        let MessagePart::Tool(call) = part else { unreachable!() };
        assert_eq!(server_label(&[], &call).as_deref(), Some("mail-server"));
    }

    #[test]
    fn json_shows_as_text_or_pretty_printed() {
        assert_eq!(json_text(&json!({"a": 1})), "{\n  \"a\": 1\n}");
        assert_eq!(json_text(&json!("plain words")), "plain words");
        assert_eq!(json_text(&json!("[1,2]")), "[\n  1,\n  2\n]");
        assert_eq!(json_text(&json!("42")), "42", "a string stays a string");
    }

    #[test]
    fn long_output_is_cut_at_a_line_end_or_a_character_boundary() {
        assert_eq!(preview("short", 100, 5), None);
        assert_eq!(preview("a\nb\nc\n", 100, 3), None, "a final newline is not a fourth line");
        assert_eq!(preview("a\nb\nc\nd", 100, 3), Some("a\nb\nc"));
        let lines: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let cut = preview(&lines, 100, 30).expect("cut");
        assert!(cut.len() <= 100 && cut.ends_with(|c: char| c.is_ascii_digit()), "{cut:?}");
        let wide = "é".repeat(100);
        let cut = preview(&wide, 51, 30).expect("cut");
        assert_eq!(cut.len(), 50, "never inside a character");
        assert_eq!(size_label(12_595), "12.3 KB");
        assert_eq!(size_label(10), "10 bytes");
    }
}
