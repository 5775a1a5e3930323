//! One assistant answer on screen, built from the stream's chunks (or from a stored message).
//!
//! Chunks are applied by sequence number: one the answer already has is ignored, so replays after a reconnect
//! never duplicate text. Content chunks build the answer's parts with the shared [`shared::Answer`] (the same
//! parts the server stores); this module adds what only the screen needs: the markdown of each stretch of text
//! rendered as it streams, the status, what the turn waits for, the user's vote and answer to an approval request.

use shared::{Answer, ChatRef, MessagePart, MessageStatus, TurnState, UiChunk, UiMessage, Usage};

use super::feedback::Vote;
use super::layout::{Approval, Block, layout, run_start};
use crate::markdown::IncrementalMarkdown;

/// What an applied chunk means for the rest of the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The chat's title (new chat or a generated title).
    Chat(ChatRef),
    /// The answer ended.
    Finished(MessageStatus),
}

/// An assistant answer.
#[derive(Debug, Clone)]
pub struct AnswerState {
    /// Stored message id (from the `start` chunk, or the stored message).
    pub message_id: Option<String>,
    /// The answer's parts.
    pub answer: Answer,
    /// The text rendered to HTML as it streams: each run of adjacent text parts at the index of its first part
    /// (empty elsewhere), apart from the others, since tool calls, an agent's name or an approval stand between.
    pub markdown: Vec<IncrementalMarkdown>,
    /// How much of each text part is in `markdown`.
    seen: Vec<usize>,
    /// Counts changes to the parts other than text growing: views of tool calls, sources and approvals follow it
    /// instead of every token.
    pub parts_version: u32,
    /// Lifecycle status.
    pub status: MessageStatus,
    /// Safe error text.
    pub error: Option<String>,
    /// Highest event id applied.
    pub last_event: u64,
    /// Model answering.
    pub model: Option<String>,
    /// Token usage, once known.
    pub usage: Option<Usage>,
    /// Where the turn stands before the first token (queued, retrying).
    pub waiting: Option<TurnState>,
    /// The user's vote.
    pub feedback: Option<Vote>,
    /// Why the last vote could not be saved.
    pub feedback_error: Option<String>,
    /// A vote is being saved.
    pub feedback_saving: bool,
    /// The vote made while another was being saved: sent when that one has answered, so that a comment sent right
    /// after its thumb is never dropped (`Some(None)`: the vote was taken back).
    pub feedback_queued: Option<Option<Vote>>,
    /// The user's answer to an approval request is being sent.
    pub approval_sending: bool,
    /// Why the last answer to an approval request failed.
    pub approval_error: Option<String>,
}

impl AnswerState {
    /// Shows the vote `next` at once. Returns the vote the server holds when `next` is to be sent now; `None` when a
    /// save is in flight: `next` is queued (replacing any queued before it) and goes when that one has answered, so
    /// votes and comments reach the server in the order they were made and none is lost.
    pub fn begin_vote(&mut self, next: Option<Vote>) -> Option<Option<Vote>> {
        self.feedback_error = None;
        let shown = std::mem::replace(&mut self.feedback, next.clone());
        if self.feedback_saving {
            self.feedback_queued = Some(next);
            return None;
        }
        self.feedback_saving = true;
        Some(shown)
    }

    /// The save in flight has answered (`error`: refused, saying why) and the server holds `held`. Returns the
    /// queued vote to send next; with none queued, saving ends and a refusal puts `held` back on screen.
    pub fn vote_answered(&mut self, held: Option<Vote>, error: Option<String>) -> Option<Option<Vote>> {
        self.feedback_error = error;
        let queued = self.feedback_queued.take();
        if queued.is_none() {
            self.feedback_saving = false;
            if self.feedback_error.is_some() {
                self.feedback = held;
            }
        }
        queued
    }

    /// An answer that is about to stream.
    pub fn streaming() -> Self {
        Self {
            message_id: None,
            answer: Answer::default(),
            markdown: Vec::new(),
            seen: Vec::new(),
            parts_version: 0,
            status: MessageStatus::Streaming,
            error: None,
            last_event: 0,
            model: None,
            usage: None,
            waiting: None,
            feedback: None,
            feedback_error: None,
            feedback_saving: false,
            feedback_queued: None,
            approval_sending: false,
            approval_error: None,
        }
    }

    /// An answer loaded from history; a streaming one continues from its resume cursor.
    pub fn from_stored(message: &UiMessage) -> Self {
        let mut answer = Self::streaming();
        answer.message_id = Some(message.id.to_string());
        answer.answer = Answer::from_parts(message.parts.clone());
        answer.sync_markdown();
        answer.status = message.metadata.status;
        answer.error = message.metadata.error.clone();
        answer.model = message.metadata.model.clone();
        answer.usage = message.metadata.usage;
        answer.last_event = message.metadata.resume_cursor.map(|c| c.max(0) as u64).unwrap_or(0);
        answer.feedback = message.metadata.feedback.as_ref().map(Vote::of);
        if answer.status.is_terminal() {
            answer.finish_markdown();
        }
        answer
    }

    /// Whether the answer is still being written.
    pub fn is_streaming(&self) -> bool {
        self.status == MessageStatus::Streaming
    }

    /// Whether a built-in tool created, renamed or deleted a chat in this answer (the sidebar must learn it).
    pub fn changed_chats(&self) -> bool {
        self.answer.parts.iter().any(|part| {
            matches!(part, MessagePart::Tool(tool) if tool.state == shared::ToolState::OutputAvailable
                && matches!(tool.tool_name.as_str(), "create_chat" | "rename_chat" | "delete_chat"))
        })
    }

    /// The answer text so far (stretches of text with something else between them a paragraph apart).
    pub fn text(&self) -> String {
        let mut all = String::new();
        for text in self.markdown.iter().map(IncrementalMarkdown::text).filter(|t| !t.is_empty()) {
            if !all.is_empty() {
                all.push_str("\n\n");
            }
            all.push_str(text);
        }
        all
    }

    /// How much text there is (cheaper than [`AnswerState::text`], for following the answer as it grows).
    pub fn text_len(&self) -> usize {
        self.markdown.iter().map(|m| m.text().len()).sum()
    }

    /// The reasoning so far.
    pub fn reasoning(&self) -> String {
        self.answer.reasoning()
    }

    /// Whether the answer has reasoning.
    pub fn has_reasoning(&self) -> bool {
        self.answer.parts.iter().any(|part| part.is_reasoning() && !part.text().is_empty())
    }

    /// Applies one chunk; returns what it means for the app, if anything.
    pub fn apply(&mut self, seq: Option<u64>, chunk: UiChunk) -> Option<Signal> {
        if let Some(seq) = seq {
            if seq <= self.last_event {
                return None;
            }
            self.last_event = seq;
        }
        match chunk {
            UiChunk::Start { message_id, message_metadata } => {
                if message_id.is_some() {
                    self.message_id = message_id;
                }
                if let Some(model) = message_metadata.and_then(|m| m.model) {
                    self.model = Some(model);
                }
                None
            }
            UiChunk::DataChat { data, .. } => Some(Signal::Chat(data)),
            UiChunk::DataStatus { data, .. } => {
                self.waiting = match data {
                    TurnState::Running => None,
                    other => Some(other),
                };
                None
            }
            UiChunk::Error { error_text } => {
                self.error = Some(error_text);
                None
            }
            UiChunk::MessageMetadata { message_metadata } => {
                self.merge_metadata(*message_metadata);
                None
            }
            UiChunk::Finish { message_metadata } => {
                if let Some(metadata) = message_metadata {
                    self.merge_metadata(*metadata);
                }
                if self.status == MessageStatus::Streaming {
                    self.status = if self.error.is_some() { MessageStatus::Error } else { MessageStatus::Complete };
                }
                self.waiting = None;
                self.finish_markdown();
                Some(Signal::Finished(self.status))
            }
            UiChunk::Abort => {
                self.status = MessageStatus::Stopped;
                None
            }
            content => {
                if self.answer.apply(&content) {
                    self.waiting = None;
                    if !matches!(content, UiChunk::TextDelta { .. } | UiChunk::ReasoningDelta { .. }) {
                        self.parts_version += 1;
                    }
                    self.sync_markdown();
                }
                None
            }
        }
    }

    /// Marks the answer failed locally (the connection could not be resumed).
    pub fn fail(&mut self, message: String) {
        self.status = MessageStatus::Error;
        self.error = Some(message);
        self.waiting = None;
        self.finish_markdown();
    }

    /// Sending the user's answer to an approval request: starts it (`None`; false when one is already being sent),
    /// or ends it with why it failed (empty when the thread is reloaded instead).
    pub fn approval_sent(&mut self, failure: Option<String>) -> bool {
        let starting = failure.is_none();
        if starting && self.approval_sending {
            return false;
        }
        self.approval_sending = starting;
        self.approval_error = failure.filter(|f| !f.is_empty());
        self.parts_version += 1;
        true
    }

    /// The answer goes on (the user answered an approval): it streams again, and the approval shows its outcome
    /// at once, before the continued stream says so too.
    pub fn resume_after(&mut self, approval_id: &str, approve: bool, reason: Option<&str>) {
        self.status = MessageStatus::Streaming;
        self.error = None;
        self.approval_sending = false;
        let at = self.answer.parts.iter().position(|part| Approval::of(part).is_some_and(|a| a.id == approval_id));
        if let Some(MessagePart::Data(data)) = at.and_then(|at| self.answer.parts.get_mut(at))
            && let Some(fields) = data.data.as_object_mut()
        {
            fields.insert("state".into(), if approve { "approved" } else { "denied" }.into());
            if let Some(reason) = reason {
                fields.insert("reason".into(), reason.into());
            }
        }
        self.parts_version += 1;
    }

    /// Brings the markdown up to the text: each run of adjacent text parts is rendered as one, in the markdown of
    /// its first part; parts only grow, so what is new is their end (`seen` says how much of each was rendered).
    /// Text followed by another block (a tool call, an agent, an approval) is complete: it is rendered final.
    fn sync_markdown(&mut self) {
        let parts = &self.answer.parts;
        self.markdown.resize_with(parts.len(), IncrementalMarkdown::new);
        self.seen.resize(parts.len(), 0);
        let last = layout(parts).last().map(Block::key).unwrap_or_default();
        for (at, part) in parts.iter().enumerate() {
            if let MessagePart::Text { text } = part {
                let start = run_start(parts, at);
                let markdown = &mut self.markdown[start];
                markdown.push(text.get(self.seen[at]..).unwrap_or_default());
                self.seen[at] = text.len();
                if start < last {
                    markdown.finish();
                }
            }
        }
    }

    /// The HTML of the answer's last text, when it is the last block and may still grow.
    pub fn tail_html(&self) -> &str {
        match layout(&self.answer.parts).last() {
            Some(Block::Text(at)) => self.markdown.get(*at).map_or("", IncrementalMarkdown::tail_html),
            _ => "",
        }
    }

    fn finish_markdown(&mut self) {
        self.markdown.iter_mut().for_each(IncrementalMarkdown::finish);
    }

    fn merge_metadata(&mut self, metadata: shared::StreamMetadata) {
        if let Some(status) = metadata.status {
            self.status = status;
        }
        if metadata.error.is_some() {
            self.error = metadata.error;
        }
        if metadata.usage.is_some() {
            self.usage = metadata.usage;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(rating: shared::Rating, comment: Option<&str>) -> Option<Vote> {
        Some(Vote { rating, comment: comment.map(str::to_owned) })
    }

    #[test]
    fn a_comment_sent_while_its_thumb_is_saving_goes_after_it() {
        let mut answer = AnswerState::streaming();
        let down = vote(shared::Rating::Down, None);
        let commented = vote(shared::Rating::Down, Some("Missed the budget."));
        assert_eq!(answer.begin_vote(down.clone()), Some(None), "the thumb is sent at once");
        assert_eq!(answer.begin_vote(commented.clone()), None, "the comment waits for the thumb's answer");
        assert_eq!(answer.feedback, commented, "and shows at once");
        assert_eq!(answer.vote_answered(down.clone(), None), Some(commented.clone()), "then it is sent");
        assert!(answer.feedback_saving);
        assert_eq!(answer.vote_answered(commented.clone(), None), None);
        assert!(!answer.feedback_saving);
        assert_eq!(answer.feedback, commented);
    }

    #[test]
    fn a_refused_vote_puts_back_what_the_server_holds_unless_a_later_one_is_on_its_way() {
        let mut answer = AnswerState::streaming();
        let up = vote(shared::Rating::Up, None);
        answer.begin_vote(up.clone());
        assert_eq!(answer.vote_answered(None, Some("refused".into())), None);
        assert_eq!((answer.feedback.clone(), answer.feedback_error.as_deref()), (None, Some("refused")));
        answer.begin_vote(up.clone());
        answer.begin_vote(None);
        assert_eq!(answer.vote_answered(None, Some("refused".into())), Some(None), "the later vote still goes");
        assert_eq!(answer.vote_answered(None, None), None);
        assert_eq!((answer.feedback.clone(), answer.feedback_error.clone()), (None, None));
    }

    fn delta(text: &str) -> UiChunk {
        UiChunk::TextDelta { id: "0".into(), delta: text.into() }
    }

    #[test]
    fn replayed_events_are_not_applied_twice() {
        let mut answer = AnswerState::streaming();
        answer.apply(Some(1), delta("Hello"));
        answer.apply(Some(2), delta(" world"));
        // A resume from the start replays 1 and 2 before the new 3.
        answer.apply(Some(1), delta("Hello"));
        answer.apply(Some(2), delta(" world"));
        answer.apply(Some(3), delta("!"));
        assert_eq!(answer.text(), "Hello world!");
    }

    #[test]
    fn finish_sets_the_status_and_reports_it() {
        let mut answer = AnswerState::streaming();
        answer.apply(Some(1), delta("partial"));
        answer.apply(Some(2), UiChunk::Abort);
        let signal = answer.apply(
            Some(3),
            UiChunk::Finish {
                message_metadata: Some(Box::new(shared::StreamMetadata {
                    status: Some(MessageStatus::Stopped),
                    ..shared::StreamMetadata::default()
                })),
            },
        );
        assert_eq!(signal, Some(Signal::Finished(MessageStatus::Stopped)));
        assert!(!answer.is_streaming());
    }

    #[test]
    fn content_builds_the_same_parts_as_the_server_stores_and_the_text_renders() {
        let mut answer = AnswerState::streaming();
        let chunks = [
            UiChunk::StartStep,
            UiChunk::ReasoningStart { id: "0".into() },
            UiChunk::ReasoningDelta { id: "0".into(), delta: "hmm".into() },
            UiChunk::ReasoningEnd { id: "0".into() },
            UiChunk::ToolInputAvailable {
                tool_call_id: "c1".into(),
                tool_name: "lookup".into(),
                input: serde_json::json!({"q": 1}),
                provider_executed: Some(true),
                dynamic: Some(true),
                provider_metadata: None,
            },
            UiChunk::TextStart { id: "2".into() },
            UiChunk::TextDelta { id: "2".into(), delta: "**bold**".into() },
            UiChunk::TextEnd { id: "2".into() },
        ];
        for (seq, chunk) in chunks.into_iter().enumerate() {
            answer.apply(Some(seq as u64 + 1), chunk);
        }
        assert_eq!(answer.reasoning(), "hmm");
        assert!(answer.has_reasoning());
        assert_eq!(answer.text(), "**bold**");
        assert_eq!(answer.answer.parts.len(), 3, "reasoning, the tool call, text");
        assert!(matches!(&answer.answer.parts[1], shared::MessagePart::Tool(t) if t.tool_name == "lookup"));
    }

    #[test]
    fn each_text_part_renders_apart_and_tokens_do_not_count_as_part_changes() {
        let mut answer = AnswerState::streaming();
        answer.apply(Some(1), UiChunk::TextStart { id: "0".into() });
        answer.apply(Some(2), delta("Let me *look*."));
        let version = answer.parts_version;
        answer.apply(Some(3), delta(" Now."));
        assert_eq!(answer.parts_version, version, "a token is not a change of the parts");
        answer.apply(
            Some(4),
            UiChunk::ToolInputAvailable {
                tool_call_id: "c1".into(),
                tool_name: "lookup".into(),
                input: serde_json::json!({}),
                provider_executed: None,
                dynamic: Some(true),
                provider_metadata: None,
            },
        );
        assert!(answer.parts_version > version);
        answer.apply(Some(5), UiChunk::TextStart { id: "1".into() });
        answer.apply(Some(6), UiChunk::TextDelta { id: "1".into(), delta: "Found.".into() });
        answer.apply(Some(7), UiChunk::Finish { message_metadata: None });
        assert_eq!(answer.text(), "Let me *look*. Now.\n\nFound.");
        assert_eq!(answer.text_len(), "Let me *look*. Now.Found.".len());
        assert_eq!(answer.markdown[0].finished_blocks().concat(), "<p>Let me <em>look</em>. Now.</p>\n");
        assert_eq!(answer.markdown[2].finished_blocks().concat(), "<p>Found.</p>\n");
    }

    #[test]
    fn a_resumed_answer_reads_on_in_the_same_paragraph() {
        let stored: UiMessage = serde_json::from_value(serde_json::json!({
            "id": "00000000-0000-0000-0000-000000000001", "role": "assistant",
            "parts": [{"type": "text", "text": "w1 w2 w"}],
            "metadata": {"status": "streaming", "created_at": "2026-01-01T00:00:00Z", "seq": 2, "resume_cursor": 4},
        }))
        .expect("a stored message");
        let mut answer = AnswerState::from_stored(&stored);
        // The resumed stream's text id is not in the stored parts: the shared assembler opens a new part.
        answer.apply(Some(5), UiChunk::TextDelta { id: "0".into(), delta: "3 w4".into() });
        answer.apply(Some(6), UiChunk::Finish { message_metadata: None });
        assert_eq!(answer.answer.parts.len(), 2);
        assert_eq!(answer.text(), "w1 w2 w3 w4");
        assert_eq!(answer.markdown[0].finished_blocks().concat(), "<p>w1 w2 w3 w4</p>\n");
    }

    #[test]
    fn an_answered_approval_streams_on_and_shows_its_outcome_at_once() {
        let approval = |state: &str| {
            UiChunk::Data(Box::new(shared::DataPart {
                kind: crate::state::layout::APPROVAL_PART.into(),
                id: Some("approval-R".into()),
                data: serde_json::json!({"approvalId": "R", "toolName": "send_email", "state": state}),
            }))
        };
        let mut answer = AnswerState::streaming();
        answer.apply(Some(1), approval("requested"));
        answer.apply(Some(2), UiChunk::Finish { message_metadata: None });
        assert!(!answer.is_streaming());
        answer.resume_after("R", false, Some("not now"));
        assert!(answer.is_streaming());
        let shown = Approval::of(&answer.answer.parts[0]).expect("the approval");
        assert_eq!(shown.outcome(), "Denied: not now");
        // The continued stream says the same, in place.
        answer.apply(Some(3), approval("denied"));
        assert_eq!(answer.answer.parts.len(), 1);
    }

    #[test]
    fn an_error_chunk_ends_as_error() {
        let mut answer = AnswerState::streaming();
        answer.apply(Some(1), UiChunk::Error { error_text: "the model failed".into() });
        answer.apply(Some(2), UiChunk::Finish { message_metadata: None });
        assert_eq!(answer.status, MessageStatus::Error);
        assert_eq!(answer.error.as_deref(), Some("the model failed"));
    }
}
