//! A chat's thread on screen, as plain data: its messages in order and what can happen to them (a page loaded,
//! an older page prepended, a message sent, the last answer regenerated, a refused send taken back). The session
//! (`session.rs`) holds it in a signal and does the talking to the server; this module does no I/O and is tested
//! natively.

use shared::{MessagePage, Role, UiMessage};

use super::answer::AnswerState;

/// One message on screen. `A` holds an answer: a signal in the app (so a streaming answer re-renders alone), the
/// state itself in tests.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry<A> {
    /// What the user wrote.
    User {
        /// Stable key for the list (message id, or the client id until the page is reloaded).
        key: String,
        /// The text.
        text: String,
    },
    /// An answer, updated as it streams.
    Assistant {
        /// Stable key for the list.
        key: String,
        /// The answer.
        answer: A,
    },
}

impl<A> Entry<A> {
    /// The list key.
    pub fn key(&self) -> String {
        match self {
            Entry::User { key, .. } | Entry::Assistant { key, .. } => key.clone(),
        }
    }
}

/// The messages of a chat shown so far, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Thread<A> {
    entries: Vec<Entry<A>>,
    /// Cursor of the older messages not loaded yet.
    older: Option<String>,
}

impl<A> Default for Thread<A> {
    fn default() -> Self {
        Self { entries: Vec::new(), older: None }
    }
}

impl<A: Clone> Thread<A> {
    /// The messages, oldest first.
    pub fn entries(&self) -> &[Entry<A>] {
        &self.entries
    }

    /// Whether nothing is shown.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cursor of older messages, if there are any.
    pub fn older(&self) -> Option<&str> {
        self.older.as_deref()
    }

    /// The key of the last message.
    pub fn last_key(&self) -> Option<String> {
        self.entries.last().map(Entry::key)
    }

    /// The answer shown under `key`.
    pub fn answer(&self, key: &str) -> Option<A> {
        self.entries.iter().find_map(|entry| match entry {
            Entry::Assistant { key: shown, answer } if shown == key => Some(answer.clone()),
            _ => None,
        })
    }

    /// Shows the newest page of the chat, replacing what was shown; `make` wraps each answer.
    pub fn show_page(&mut self, page: MessagePage, make: impl FnMut(AnswerState) -> A) {
        self.older = page.next_before;
        self.entries = entries_of(page.messages, make);
    }

    /// Puts an older page before what is shown.
    pub fn prepend_page(&mut self, page: MessagePage, make: impl FnMut(AnswerState) -> A) {
        self.older = page.next_before;
        let mut entries = entries_of(page.messages, make);
        entries.append(&mut self.entries);
        self.entries = entries;
    }

    /// Shows a message the user just sent (under its client id) and the answer about to stream.
    pub fn send(&mut self, client_id: &str, text: String, answer: A) {
        self.entries.push(Entry::User { key: client_id.to_owned(), text });
        self.entries.push(Entry::Assistant { key: format!("answer-{client_id}"), answer });
    }

    /// Takes back the message and answer [`Thread::send`] added (the server refused the message).
    pub fn withdraw_sent(&mut self) {
        if matches!(self.entries.last(), Some(Entry::Assistant { key, .. }) if key.starts_with("answer-")) {
            self.entries.pop();
            if matches!(self.entries.last(), Some(Entry::User { .. })) {
                self.entries.pop();
            }
        }
    }

    /// Replaces the last answer with a new one about to stream (regenerate, or retry of a failed answer); `key`
    /// must be new.
    pub fn regenerate(&mut self, key: String, answer: A) {
        if matches!(self.entries.last(), Some(Entry::Assistant { .. })) {
            self.entries.pop();
        }
        self.entries.push(Entry::Assistant { key, answer });
    }

    /// The newest answer for which `is_streaming` holds.
    pub fn streaming_answer(&self, is_streaming: impl Fn(&A) -> bool) -> Option<A> {
        self.entries.iter().rev().find_map(|entry| match entry {
            Entry::Assistant { answer, .. } if is_streaming(answer) => Some(answer.clone()),
            _ => None,
        })
    }
}

fn entries_of<A>(messages: Vec<UiMessage>, mut make: impl FnMut(AnswerState) -> A) -> Vec<Entry<A>> {
    messages
        .into_iter()
        .map(|message| match message.role {
            Role::Assistant => {
                Entry::Assistant { key: message.id.to_string(), answer: make(AnswerState::from_stored(&message)) }
            }
            _ => Entry::User { key: message.id.to_string(), text: message.text() },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use shared::{MessageMetadata, MessagePart, MessageStatus};
    use uuid::Uuid;

    use super::*;

    fn message(role: Role, text: &str, status: MessageStatus, seq: i64) -> UiMessage {
        UiMessage {
            id: Uuid::from_u128(seq as u128),
            role,
            parts: vec![MessagePart::Text { text: text.into() }],
            metadata: MessageMetadata {
                status,
                model: None,
                created_at: Utc::now(),
                usage: None,
                error: None,
                seq,
                resume_cursor: (status == MessageStatus::Streaming).then_some(7),
                trace_id: None,
                feedback: None,
            },
        }
    }

    fn page(messages: Vec<UiMessage>, next_before: Option<&str>) -> MessagePage {
        MessagePage { messages, next_before: next_before.map(str::to_owned) }
    }

    fn texts(thread: &Thread<AnswerState>) -> Vec<String> {
        thread
            .entries()
            .iter()
            .map(|entry| match entry {
                Entry::User { text, .. } => format!("user: {text}"),
                Entry::Assistant { answer, .. } => format!("answer: {}", answer.text()),
            })
            .collect()
    }

    #[test]
    fn pages_load_newest_first_and_older_ones_go_before() {
        let mut thread = Thread::default();
        let newest = vec![
            message(Role::User, "q2", MessageStatus::Complete, 3),
            message(Role::Assistant, "a2", MessageStatus::Complete, 4),
        ];
        thread.show_page(page(newest, Some("3")), |a| a);
        assert_eq!(thread.older(), Some("3"));
        let older = vec![
            message(Role::User, "q1", MessageStatus::Complete, 1),
            message(Role::Assistant, "a1", MessageStatus::Complete, 2),
        ];
        thread.prepend_page(page(older, None), |a| a);
        assert_eq!(texts(&thread), ["user: q1", "answer: a1", "user: q2", "answer: a2"]);
        assert_eq!(thread.older(), None);
        assert_eq!(thread.last_key(), Some(Uuid::from_u128(4).to_string()));
    }

    #[test]
    fn a_streaming_answer_is_found_to_continue_it() {
        let mut thread = Thread::default();
        thread.show_page(
            page(
                vec![
                    message(Role::User, "q", MessageStatus::Complete, 1),
                    message(Role::Assistant, "partial", MessageStatus::Streaming, 2),
                ],
                None,
            ),
            |a| a,
        );
        let streaming = thread.streaming_answer(AnswerState::is_streaming).expect("the streaming answer");
        assert_eq!((streaming.text().as_str(), streaming.last_event), ("partial", 7));
        thread.show_page(page(vec![message(Role::Assistant, "done", MessageStatus::Complete, 2)], None), |a| a);
        assert!(thread.streaming_answer(AnswerState::is_streaming).is_none());
    }

    #[test]
    fn a_sent_message_shows_at_once_and_a_refused_one_is_taken_back() {
        let mut thread: Thread<AnswerState> = Thread::default();
        thread.show_page(page(vec![message(Role::User, "q", MessageStatus::Complete, 1)], None), |a| a);
        thread.send("c1", "hello".into(), AnswerState::streaming());
        assert_eq!(thread.entries().len(), 3);
        assert_eq!(thread.last_key().as_deref(), Some("answer-c1"));
        thread.withdraw_sent();
        assert_eq!(texts(&thread), ["user: q"]);
        thread.withdraw_sent();
        assert_eq!(texts(&thread), ["user: q"], "nothing else is taken back");
    }

    #[test]
    fn regenerating_replaces_the_last_answer_only() {
        let mut thread = Thread::default();
        thread.show_page(
            page(
                vec![
                    message(Role::User, "q", MessageStatus::Complete, 1),
                    message(Role::Assistant, "old", MessageStatus::Error, 2),
                ],
                None,
            ),
            |a| a,
        );
        thread.regenerate("answer-new".into(), AnswerState::streaming());
        assert_eq!(texts(&thread), ["user: q", "answer: "]);
        assert_eq!(thread.last_key().as_deref(), Some("answer-new"));
    }
}
