//! An answer's body as HTML made here, escaped like the markdown of its text: the finished markdown blocks, tool
//! calls (collapsed `<details>` cards, calls one after the other in one group), the agents that took over, approval
//! requests, the notice of older messages summarised, the numbered sources, and the vote; around messages, the box
//! to edit a question, the switcher between a message's versions and the pin; and a shared chat's messages,
//! read-only. Strings rather than a view per field: each kind of view costs
//! WebAssembly the initial load cannot afford, and these pieces only change when a part does. What their buttons do
//! is in `answer_actions.rs` (one delegated listener, as for the copy buttons of code blocks).

use serde_json::Value;
use shared::{Branch, MessagePart, Rating, Role, ToolPart, UiMessage};
use uuid::Uuid;

use super::icons::Icon;
use crate::highlight::escape_html;
use crate::markdown::escape_href;
use crate::state::answer::AnswerState;
use crate::state::feedback::{MAX_COMMENT, Vote};
use crate::state::layout::{
    Approval, Block, Citation, PREVIEW_BYTES, PREVIEW_LINES, Summary, ToolStatus, citations, group_summary, json_text,
    layout, preview, server_label, size_label, tool_title,
};

/// One finished piece of the body, keyed by its place and version: a piece that changes (a tool call that ends) is
/// made again, the others stay as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Place and version.
    pub key: (usize, u64),
    /// The HTML.
    pub html: String,
}

/// The body's pieces before the text still being written ([`AnswerState::tail_html`]). `can_answer`: approval
/// requests get their buttons (the answer is the chat's last).
pub fn pieces(answer: &AnswerState, can_answer: bool) -> Vec<Piece> {
    let parts = &answer.answer.parts;
    // Controls find their answer by it (`answer_actions.rs`).
    let message = escape_html(answer.message_id.as_deref().unwrap_or_default());
    // Each piece with what names its version: a finished markdown block never changes (its place in the text is
    // enough, and hashing all the text at every block would not be); the others by a hash of their HTML.
    let mut pieces: Vec<(u64, String)> = Vec::new();
    for block in layout(parts) {
        let html = match block {
            Block::Text(at) => {
                let blocks = answer.markdown.get(at).map(|m| m.finished_blocks()).unwrap_or_default();
                let id = |index: usize| 1 << 63 | (at as u64) << 32 | index as u64;
                pieces.extend(blocks.iter().enumerate().map(|(index, html)| (id(index), html.clone())));
                continue;
            }
            Block::Tools(calls) => tools_html(answer, &calls, &message),
            Block::Agent(_, name) => format!(
                "<h3 class=\"agent-heading\" data-testid=\"agent-heading\"><span class=\"visually-hidden\">Agent: </span>{}</h3>",
                escape_html(&name)
            ),
            Block::Approval(at) => match parts.get(at).and_then(Approval::of) {
                Some(approval) => approval_html(&approval, can_answer, &message, answer),
                None => continue,
            },
            Block::Summary(at) => match parts.get(at).and_then(Summary::of) {
                Some(summary) => summary_html(&summary),
                None => continue,
            },
        };
        pieces.push((hash(&html), html));
    }
    pieces.into_iter().enumerate().map(|(at, (id, html))| Piece { key: (at, id), html }).collect()
}

/// FNV-1a: enough to tell a piece that changed.
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// A call alone, or several in one group.
fn tools_html(answer: &AnswerState, calls: &[usize], message: &str) -> String {
    let parts = &answer.answer.parts;
    let tools: Vec<&ToolPart> = calls
        .iter()
        .filter_map(|at| match parts.get(*at) {
            Some(MessagePart::Tool(tool)) => Some(tool),
            _ => None,
        })
        .collect();
    let status = |tool: &ToolPart| ToolStatus::of(tool.state, answer.is_streaming());
    let cards: String =
        tools.iter().map(|tool| card_html(tool, status(tool), server_label(parts, tool), message)).collect();
    match tools.first() {
        Some(first) if tools.len() > 1 => {
            let summary = group_summary(&tools.iter().map(|tool| status(tool)).collect::<Vec<_>>());
            format!(
                "<details class=\"tool-group\" data-testid=\"tool-group\" data-key=\"group-{}\"><summary>{summary}</summary>{cards}</details>",
                escape_html(&first.tool_call_id),
            )
        }
        _ => cards,
    }
}

/// One call: a summary (status icon, readable name with the raw one on hover, server, status word) and inside the
/// raw name, the arguments and the result (cut) or the error.
fn card_html(tool: &ToolPart, status: ToolStatus, server: Option<String>, message: &str) -> String {
    let icon = match status {
        ToolStatus::Running => "<span class=\"dot-pulse\"></span>".to_owned(),
        ToolStatus::Done => Icon::Check.svg(),
        ToolStatus::Failed => Icon::Cross.svg(),
        ToolStatus::Unfinished => "<span class=\"dot\"></span>".to_owned(),
    };
    let name = escape_html(&tool.tool_name);
    let server = server.map(|s| format!("<span class=\"tool-server\">{}</span>", escape_html(&s))).unwrap_or_default();
    let mut html = format!(
        "<details class=\"tool\" data-testid=\"tool-call\" data-status=\"{status}\" data-key=\"{key}\" \
         data-message=\"{message}\"><summary>\
         <span class=\"tool-icon {status}\" aria-hidden=\"true\">{icon}</span><span class=\"tool-name\" title=\"{name}\">{title}</span>\
         {server}<span class=\"tool-status\" role=\"status\">{word}</span></summary><div class=\"tool-body\"><p class=\"tool-raw\"><code>{name}</code></p>",
        status = status.name(),
        key = escape_html(&tool.tool_call_id),
        title = escape_html(&tool_title(&tool.tool_name)),
        word = status.label(),
    );
    if let Some(input) = &tool.input {
        html.push_str(&long_text_html("Arguments", &json_text(input)));
    }
    if let Some(output) = &tool.output {
        html.push_str(&long_text_html("Result", &json_text(output)));
    }
    if let Some(error) = &tool.error_text {
        html.push_str(&format!("<p class=\"tool-error\">{}</p>", escape_html(error)));
    }
    html.push_str("</div></details>");
    html
}

/// A labelled, scrollable, focusable box of text, cut to its first lines with a button for the rest.
fn long_text_html(label: &str, text: &str) -> String {
    let (shown, more) = match preview(text, PREVIEW_BYTES, PREVIEW_LINES) {
        Some(start) => (
            format!("{}\n…", escape_html(start)),
            format!(
                "<button type=\"button\" class=\"button subtle small\" data-action=\"show-all\" data-testid=\"show-all\">\
                 Show all ({})</button>",
                size_label(text.len())
            ),
        ),
        None => (escape_html(text), String::new()),
    };
    format!(
        "<p class=\"long-text-label\">{label}</p><pre class=\"long-text-box\" tabindex=\"0\" aria-label=\"{label}\">{shown}</pre>{more}"
    )
}

/// The full text a "show all" button stands for: the `label` ("Arguments" or "Result") of the call `call` among
/// an answer's parts.
pub fn full_text(parts: &[MessagePart], call: &str, label: &str) -> Option<String> {
    parts.iter().find_map(|part| match part {
        MessagePart::Tool(tool) if tool.tool_call_id == call => {
            let value: &Option<Value> = if label == "Result" { &tool.output } else { &tool.input };
            value.as_ref().map(json_text)
        }
        _ => None,
    })
}

/// The older messages summarised: a line while the summary is written or when it failed; once written, a folded
/// section that opens on it.
fn summary_html(summary: &Summary) -> String {
    let notice = summary.notice();
    match summary.text.filter(|_| summary.state == "done") {
        Some(text) => format!(
            "<details class=\"summary-notice\" data-testid=\"summary-notice\" data-state=\"done\"><summary>{notice}\
             </summary><p class=\"summary-text\" data-testid=\"summary-text\">{}</p></details>",
            escape_html(text)
        ),
        None => format!(
            "<p class=\"summary-notice\" data-testid=\"summary-notice\" data-state=\"{}\">{}{notice}</p>",
            escape_html(summary.state),
            if summary.is_running() { "<span class=\"dot-pulse\" aria-hidden=\"true\"></span>" } else { "" },
        ),
    }
}

/// A request waiting for the user (with Allow, Deny and a reason when `can_answer`), or one line saying how it was
/// answered.
fn approval_html(approval: &Approval, can_answer: bool, message: &str, answer: &AnswerState) -> String {
    let title = escape_html(&tool_title(approval.tool_name));
    if !approval.is_requested() || !can_answer {
        let outcome = if approval.is_requested() { "Not answered".to_owned() } else { approval.outcome() };
        return format!(
            "<p class=\"approval-outcome\" data-testid=\"approval-outcome\" data-state=\"{}\"><strong>{}</strong> · {title}</p>",
            escape_html(approval.state),
            escape_html(&outcome),
        );
    }
    let server = approval
        .server_label
        .map(|s| format!(" on <span class=\"tool-server\">{}</span>", escape_html(s)))
        .unwrap_or_default();
    format!(
        "<section class=\"approval\" data-testid=\"approval\" data-approval=\"{id}\" data-message=\"{message}\" \
         aria-label=\"Approval needed: {title}\" aria-busy=\"{busy}\">\
         <p class=\"approval-title\">Approval needed to run <strong title=\"{name}\">{title}</strong>{server}</p>{args}\
         <div class=\"approval-actions\"><button type=\"button\" class=\"button primary small\" data-action=\"approve\" \
         data-testid=\"approve\">Allow</button><button type=\"button\" class=\"button small\" data-action=\"deny\" \
         data-testid=\"deny\">Deny</button></div>\
         <div class=\"approval-actions approval-deny\" hidden><label class=\"approval-reason\">Reason (optional)\
         <input maxlength=\"{max}\" data-testid=\"deny-reason\"></label><button type=\"button\" \
         class=\"button danger small\" data-action=\"confirm-deny\" data-testid=\"confirm-deny\">Deny</button>\
         <button type=\"button\" class=\"button subtle small\" data-action=\"cancel\">Cancel</button></div>\
         <p class=\"approval-error\" role=\"alert\">{error}</p></section>",
        id = escape_html(approval.id),
        name = escape_html(approval.tool_name),
        args = long_text_html("Arguments", &json_text(approval.arguments)),
        max = shared::MAX_APPROVAL_REASON_CHARS,
        busy = answer.approval_sending,
        error = escape_html(answer.approval_error.as_deref().unwrap_or_default()),
    )
}

/// The numbered sources under an answer (nothing when it cites none).
pub fn sources_html(list: &[Citation]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<section class=\"sources\" data-testid=\"sources\"><h3 class=\"sources-title\">Sources</h3>\
         <ol class=\"sources-list\" role=\"list\">",
    );
    for Citation { number, href, label } in list {
        let number = format!("<span class=\"source-number\" aria-hidden=\"true\">{number}</span>");
        let label = escape_html(label);
        html.push_str(&match href {
            Some(href) => format!(
                "<li><a class=\"source-link\" data-testid=\"source\" href=\"{href}\" title=\"{href}\" target=\"_blank\" \
                 rel=\"noopener noreferrer\">{number}{label}</a></li>",
                href = escape_href(href),
            ),
            None => format!("<li><span class=\"source-link\" data-testid=\"source\">{number}{label}</span></li>"),
        });
    }
    html.push_str("</ol></section>");
    html
}

/// A question's text, or the box to edit it with Cancel and Save (Escape and Ctrl/Cmd+Enter in the box do the
/// same).
pub fn question_html(text: &str, editing: bool) -> String {
    let text = escape_html(text);
    match editing {
        false => format!("<div class=\"bubble\">{text}</div>"),
        // The newline after `<textarea>` is dropped by the parser, so a text that begins with one keeps it.
        true => format!(
            "<div class=\"edit\"><textarea class=\"edit-input\" data-testid=\"edit-input\" aria-label=\"Edit your message\">\n\
             {text}</textarea><span class=\"edit-actions\"><button type=\"button\" class=\"button subtle small\" \
             data-action=\"edit-cancel\" data-testid=\"edit-cancel\">Cancel</button><button type=\"button\" \
             class=\"button primary small\" data-action=\"edit-save\" data-testid=\"edit-save\">Save</button></span></div>"
        ),
    }
}

/// Under the question `id`: the switcher of its versions, when it has several, the pin, and Edit; the switcher and
/// Edit are disabled while `busy` (an answer streams).
pub fn question_actions_html(id: &str, branch: Option<&Branch>, busy: bool, pinned: bool) -> String {
    format!(
        "{}{}<button type=\"button\" class=\"icon-button small edit-message\" data-action=\"edit\" \
         data-testid=\"edit-message\" aria-label=\"Edit message\" title=\"Edit\"{}>{}</button>",
        branch.map(|branch| versions_html(id, branch, busy)).unwrap_or_default(),
        pin_html(id, pinned),
        if busy { " disabled" } else { "" },
        Icon::Rename.svg(),
    )
}

/// The toggle that pins the message `key` (sent to the model as it is however long the chat grows), pressed when
/// pinned, after a marker saying so.
pub fn pin_html(key: &str, pinned: bool) -> String {
    format!(
        "{}<button type=\"button\" class=\"icon-button small pin\" data-action=\"pin\" data-pin=\"{}\" \
         data-testid=\"pin-message\" aria-pressed=\"{pinned}\" aria-label=\"Pin message\" title=\"{}\">{}</button>",
        if pinned { "<span class=\"pin-marker\" data-testid=\"pin-marker\">Pinned</span>" } else { "" },
        escape_html(key),
        if pinned { "Unpin" } else { "Pin" },
        Icon::Pin.svg(),
    )
}

/// A shared chat's messages, read-only: questions as text, answers as in a chat (reasoning folded, the body, the
/// sources) without their controls.
pub fn shared_html(messages: &[UiMessage]) -> String {
    let mut html = String::new();
    for message in messages {
        if message.role != Role::Assistant {
            html.push_str(&format!(
                "<article class=\"message user\" data-testid=\"message-user\" aria-label=\"You\">{}</article>",
                question_html(&message.text(), false)
            ));
            continue;
        }
        let answer = AnswerState::from_stored(message);
        let reasoning = answer.reasoning();
        html.push_str(
            "<article class=\"message assistant\" data-testid=\"message-assistant\" aria-label=\"Assistant\">",
        );
        if !reasoning.is_empty() {
            html.push_str(&format!(
                "<details class=\"reasoning\"><summary>Thinking</summary><div class=\"reasoning-text\">{}</div></details>",
                escape_html(&reasoning)
            ));
        }
        html.push_str("<div class=\"markdown\" data-testid=\"answer-text\">");
        for piece in pieces(&answer, false) {
            html.push_str(&piece.html);
        }
        html.push_str(answer.tail_html());
        html.push_str(&sources_html(&citations(&answer.answer.parts)));
        html.push_str("</div></article>");
    }
    html
}

/// The switcher between the versions of message `id` (edits of a question, regenerated answers): previous, "2/3",
/// next; a button has the version it shows in `data-to`, and is disabled at the ends and while `busy` (an answer
/// streams).
pub fn versions_html(id: &str, branch: &Branch, busy: bool) -> String {
    let (at, count) = (branch.index + 1, branch.siblings.len());
    let button = |dir: &str, label: &str, to: Option<&Uuid>| {
        format!(
            "<button type=\"button\" class=\"icon-button small {dir}\" data-action=\"version\" data-dir=\"{dir}\" \
             data-to=\"{}\" aria-label=\"{label}\" title=\"{label}\"{}>{}</button>",
            to.map(|id| id.to_string()).unwrap_or_default(),
            if to.is_none() || busy { " disabled" } else { "" },
            Icon::Back.svg(),
        )
    };
    format!(
        "<span class=\"versions\" role=\"group\" aria-label=\"Versions\" data-versions=\"{id}\" data-testid=\"versions\">\
         {prev}<span class=\"version-count\" role=\"img\" aria-label=\"Version {at} of {count}\" \
         data-testid=\"version-count\">{at}/{count}</span>{next}</span>",
        id = escape_html(id),
        prev = button("prev", "Previous version", branch.index.checked_sub(1).and_then(|i| branch.siblings.get(i))),
        next = button("next", "Next version", branch.siblings.get(at)),
    )
}

/// The thumbs (pressed as voted), the comment control, why the last vote failed, and the comment form (hidden).
pub fn feedback_html(message_id: &str, vote: Option<&Vote>, error: Option<&str>) -> String {
    let pressed = |rating| vote.is_some_and(|v| v.rating == rating);
    let thumb = |rating: Rating, label: &str, class: &str| {
        format!(
            "<button type=\"button\" class=\"icon-button small thumb{class}\" data-action=\"vote\" data-rating=\"{}\" \
             data-testid=\"thumb-{}\" aria-pressed=\"{}\" aria-label=\"{label}\" title=\"{label}\">{}</button>",
            rating.as_str(),
            rating.as_str(),
            pressed(rating),
            Icon::Thumb.svg(),
        )
    };
    let comment = match vote {
        Some(vote) => format!(
            "<button type=\"button\" class=\"button subtle small\" data-action=\"comment\" data-testid=\"feedback-comment\">{}</button>",
            if vote.comment.is_some() { "Edit comment" } else { "Add a comment" }
        ),
        None => String::new(),
    };
    format!(
        "<span class=\"feedback-wrap\" data-message=\"{id}\"><span class=\"feedback\" role=\"group\" \
         aria-label=\"Feedback on this answer\">{up}{down}{comment}\
         <span class=\"feedback-error\" role=\"alert\" data-testid=\"feedback-error\">{error}</span></span>\
         <span class=\"feedback-form\" data-testid=\"feedback-form\" hidden>\
         <label class=\"feedback-label\">Comment (optional)<textarea rows=\"2\" maxlength=\"{MAX_COMMENT}\" \
         data-testid=\"feedback-comment-input\">{text}</textarea></label><span class=\"feedback-form-actions\">\
         <span class=\"counter\" data-testid=\"feedback-counter\">{count}</span><button type=\"button\" \
         class=\"button subtle small\" data-action=\"close\">Cancel</button><button type=\"button\" \
         class=\"button primary small\" data-action=\"send-comment\" data-testid=\"feedback-send\">Send</button></span>\
         </span></span>",
        id = escape_html(message_id),
        up = thumb(Rating::Up, "Good answer", ""),
        down = thumb(Rating::Down, "Bad answer", " flip"),
        error = escape_html(error.unwrap_or_default()),
        text = escape_html(vote.and_then(|v| v.comment.as_deref()).unwrap_or_default()),
        count = crate::state::feedback::counter(vote.and_then(|v| v.comment.as_deref()).unwrap_or_default()),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::UiChunk;

    use super::*;

    fn answer(parts: serde_json::Value, streaming: bool) -> AnswerState {
        let parts = parts.as_array().expect("parts").iter().map(|p| MessagePart::from_json(p.clone()).expect("part"));
        let mut answer = AnswerState::streaming();
        for (seq, part) in parts.enumerate() {
            let chunk = match part {
                MessagePart::Text { text } => UiChunk::TextDelta { id: seq.to_string(), delta: text },
                MessagePart::Data(data) => UiChunk::Data(Box::new(data)),
                MessagePart::Tool(tool) => {
                    answer.answer.parts.push(MessagePart::Tool(tool));
                    answer.parts_version += 1;
                    continue;
                }
                _ => continue,
            };
            answer.apply(Some(seq as u64 + 1), chunk);
        }
        if !streaming {
            answer.apply(None, UiChunk::Finish { message_metadata: None });
        }
        answer
    }

    #[test]
    fn the_body_has_markdown_tool_groups_agents_and_approvals_in_order() {
        let answer = answer(
            json!([
                {"type": "text", "text": "Let me look.\n\n"},
                {"type": "dynamic-tool", "toolCallId": "a", "toolName": "system__ai__python_exec", "state": "output-available",
                 "input": {"code": "<b>"}, "output": "42"},
                {"type": "dynamic-tool", "toolCallId": "b", "toolName": "search", "state": "input-available", "input": {}},
                {"type": "data-agent", "id": "agent-1", "data": {"name": "research <team>"}},
                {"type": "text", "text": "Found it."},
                {"type": "data-approval", "id": "approval-R", "data": {"approvalId": "R", "toolName": "send_email",
                 "serverLabel": "mail-server", "arguments": {"to": "a@b.c"}, "state": "requested"}},
            ]),
            true,
        );
        let pieces = pieces(&answer, true);
        let html: Vec<&str> = pieces.iter().map(|p| p.html.as_str()).collect();
        assert_eq!(html.len(), 5, "{html:#?}");
        assert_eq!(html[0], "<p>Let me look.</p>\n", "text before a tool call is final");
        assert!(html[1].starts_with("<details class=\"tool-group\"") && html[1].contains("2 tool calls, 1 running"));
        assert!(html[1].contains(">Python exec</span>") && html[1].contains("&lt;b&gt;"));
        assert!(html[2].contains("research &lt;team&gt;"));
        assert_eq!(html[3], "<p>Found it.</p>\n");
        assert!(
            html[4].contains("data-approval=\"R\"") && html[4].contains("on <span class=\"tool-server\">mail-server")
        );
        assert_eq!(answer.tail_html(), "", "nothing streams after the approval");
        for at in [1, 2, 4] {
            assert_eq!(pieces[at].key.1, hash(&pieces[at].html), "pieces other than text are known by their HTML");
        }

        let later = super::pieces(&answer, false);
        assert!(later[4].html.contains("<strong>Not answered</strong> · Send email"), "{}", later[4].html);
        assert_eq!(later[1].key, pieces[1].key, "an unchanged piece keeps its key");
        assert_ne!(later[4].key, pieces[4].key, "a changed one is made again");
    }

    #[test]
    fn a_card_shows_its_failure_and_cuts_a_long_result() {
        let lines: Vec<String> = (0..100).map(|i| format!("row {i}")).collect();
        let answer = answer(
            json!([
                {"type": "dynamic-tool", "toolCallId": "c", "toolName": "t", "state": "output-available", "output": lines.join("\n")},
                {"type": "text", "text": "between"},
                {"type": "dynamic-tool", "toolCallId": "d", "toolName": "t", "state": "output-error", "errorText": "boom <i>"},
            ]),
            false,
        );
        let html: Vec<String> = pieces(&answer, true).into_iter().map(|p| p.html).collect();
        assert!(html[0].contains("row 29\n…</pre>") && !html[0].contains("row 30"), "{}", html[0]);
        assert!(html[0].contains("Show all (689 bytes)"));
        assert!(full_text(&answer.answer.parts, "c", "Result").is_some_and(|text| text.ends_with("row 99")));
        assert_eq!(full_text(&answer.answer.parts, "c", "Arguments"), None, "the call had no arguments");
        assert_eq!(full_text(&answer.answer.parts, "x", "Result"), None);
        assert!(html[2].contains("data-status=\"failed\"") && html[2].contains("boom &lt;i&gt;"));
    }

    #[test]
    fn sources_are_numbered_links_only_for_web_addresses_and_escaped() {
        let list = [
            Citation { number: 1, href: Some("https://a.example/?q=\"x\"&y".into()), label: "A <b>".into() },
            Citation { number: 2, href: None, label: "ftp://f".into() },
        ];
        let html = sources_html(&list);
        assert!(html.contains("href=\"https://a.example/?q=%22x%22&amp;y\""), "{html}");
        assert!(html.contains("target=\"_blank\" rel=\"noopener noreferrer\""));
        assert!(html.contains(">1</span>A &lt;b&gt;</a>"), "{html}");
        assert!(
            html.contains("data-testid=\"source\"><span class=\"source-number\" aria-hidden=\"true\">2</span>ftp://f")
        );
        assert_eq!(sources_html(&[]), "");
    }

    #[test]
    fn the_version_switcher_points_at_the_neighbours_and_stops_at_the_ends() {
        let ids: Vec<Uuid> = (1..=3).map(Uuid::from_u128).collect();
        let middle = versions_html("m<2>", &Branch { siblings: ids.clone(), index: 1 }, false);
        assert!(middle.contains("data-versions=\"m&lt;2&gt;\""), "{middle}");
        assert!(middle.contains(&format!("data-dir=\"prev\" data-to=\"{}\" aria-label=\"Previous version\"", ids[0])));
        assert!(middle.contains(&format!("data-dir=\"next\" data-to=\"{}\"", ids[2])));
        assert!(middle.contains("aria-label=\"Version 2 of 3\"") && middle.contains(">2/3</span>"));
        assert!(!middle.contains("disabled"));
        let first = versions_html("m", &Branch { siblings: ids.clone(), index: 0 }, false);
        assert!(first.contains("data-to=\"\" aria-label=\"Previous version\" title=\"Previous version\" disabled>"));
        assert_eq!(first.matches(" disabled").count(), 1, "{first}");
        let last = versions_html("m", &Branch { siblings: ids, index: 2 }, true);
        assert_eq!(last.matches(" disabled").count(), 2, "an answer streams: {last}");
        assert!(last.contains(">3/3<"));
    }

    #[test]
    fn a_question_is_escaped_text_or_a_box_with_it() {
        assert_eq!(question_html("<b>hi</b>", false), "<div class=\"bubble\">&lt;b&gt;hi&lt;/b&gt;</div>");
        let editing = question_html("\nline & <i>", true);
        assert!(editing.contains("aria-label=\"Edit your message\">\n\nline &amp; &lt;i&gt;</textarea>"), "{editing}");
        assert!(editing.contains("data-action=\"edit-cancel\"") && editing.contains("data-action=\"edit-save\""));
        let actions = question_actions_html("q1", None, false, false);
        assert!(actions.starts_with("<button") && !actions.contains("disabled"), "{actions}");
        let branch = Branch { siblings: vec![Uuid::from_u128(1), Uuid::from_u128(2)], index: 1 };
        let busy = question_actions_html("q1", Some(&branch), true, true);
        assert!(busy.contains("data-versions=\"q1\""), "{busy}");
        assert_eq!(busy.matches(" disabled").count(), 3, "both versions and Edit wait for the answer: {busy}");
        assert!(busy.contains("data-pin=\"q1\"") && busy.contains("aria-pressed=\"true\""), "pinning never waits");
    }

    #[test]
    fn a_pin_is_a_toggle_pressed_with_a_marker_when_pinned() {
        let off = pin_html("m<1>", false);
        assert!(off.starts_with("<button") && off.contains("data-pin=\"m&lt;1&gt;\""), "{off}");
        assert!(off.contains("aria-pressed=\"false\" aria-label=\"Pin message\" title=\"Pin\""));
        let on = pin_html("m1", true);
        assert!(on.starts_with("<span class=\"pin-marker\" data-testid=\"pin-marker\">Pinned</span>"), "{on}");
        assert!(on.contains("aria-pressed=\"true\" aria-label=\"Pin message\" title=\"Unpin\""));
    }

    #[test]
    fn older_messages_summarised_show_before_the_answer_and_the_summary_opens() {
        let summary = |data: serde_json::Value| {
            answer(
                json!([{"type": "data-summary", "id": "summary", "data": data}, {"type": "text", "text": "Answer."}]),
                false,
            )
        };
        let running = pieces(&summary(json!({"state": "summarising", "messages": 40})), true);
        assert!(running[0].html.contains("Summarising 40 earlier messages…</p>"), "{}", running[0].html);
        assert!(running[0].html.contains("data-state=\"summarising\"") && running[0].html.contains("dot-pulse"));
        assert_eq!(running[1].html, "<p>Answer.</p>\n");
        let done = pieces(&summary(json!({"state": "done", "messages": 40, "text": "Facts <kept>."})), true);
        assert!(done[0].html.starts_with("<details class=\"summary-notice\""), "{}", done[0].html);
        assert!(done[0].html.contains("<summary>40 earlier messages summarised</summary>"));
        assert!(done[0].html.contains(">Facts &lt;kept&gt;.</p></details>"));
        let failed = pieces(&summary(json!({"state": "failed", "messages": 3})), true);
        assert!(failed[0].html.contains("3 earlier messages could not be summarised; the oldest were left out"));
        assert!(!failed[0].html.contains("dot-pulse"));
    }

    #[test]
    fn votes_show_pressed_with_their_comment() {
        let none = feedback_html("m1", None, None);
        assert!(none.contains("aria-pressed=\"false\"") && !none.contains("aria-pressed=\"true\""));
        assert!(!none.contains("feedback-comment\""), "no comment without a vote");
        let vote = Vote { rating: Rating::Down, comment: Some("too <long>".into()) };
        let down = feedback_html("m1", Some(&vote), Some("Your feedback was not saved"));
        assert!(down.contains("data-testid=\"thumb-down\" aria-pressed=\"true\""), "{down}");
        assert!(down.contains(">Edit comment<") && down.contains(">too &lt;long&gt;</textarea>"));
        assert!(down.contains(">10 / 2000<") && down.contains("not saved</span>"));
    }
}
