//! A chat's thread on screen, as plain data: the messages of one branch of the conversation in order and what can
//! happen to them (a page loaded, an older page prepended, a message sent, a question edited, the last answer
//! regenerated, a refused send taken back, a message pinned), and what the branch used of the model's window. Each message knows its versions (edits of a question, regenerated
//! answers), which the server keeps as siblings in the chat's tree. The session (`session.rs`) holds it in a signal
//! and does the talking to the server; this module does no I/O and is tested natively.

use shared::{Branch, MessagePage, Role, UiMessage, Usage};

use super::answer::AnswerState;

/// One message on screen. `A` holds an answer: a signal in the app (so a streaming answer re-renders alone), the
/// state itself in tests.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry<A> {
    /// What the user wrote.
    User {
        /// Stable key (message id, or the client id until the page is reloaded; the server knows it by either).
        key: String,
        /// The text.
        text: String,
        /// Its versions, when it has several.
        branch: Option<Branch>,
    },
    /// An answer, updated as it streams.
    Assistant {
        /// Stable key (message id, or a local one while it is sent).
        key: String,
        /// The answer.
        answer: A,
        /// Its versions, when it has several.
        branch: Option<Branch>,
    },
}

impl<A> Entry<A> {
    /// The stable key.
    pub fn key(&self) -> String {
        match self {
            Entry::User { key, .. } | Entry::Assistant { key, .. } => key.clone(),
        }
    }

    /// The key of its view: the key and how many versions it has, so a message that gained one is drawn again.
    pub fn view_key(&self) -> String {
        let (Entry::User { key, branch, .. } | Entry::Assistant { key, branch, .. }) = self;
        format!("{key}/{}", branch.as_ref().map_or(1, |b| b.siblings.len()))
    }
}

/// The messages of a chat shown so far, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Thread<A> {
    entries: Vec<Entry<A>>,
    /// Cursor of the older messages not loaded yet.
    older: Option<String>,
    /// The keys of the pinned messages.
    pinned: Vec<String>,
}

impl<A> Default for Thread<A> {
    fn default() -> Self {
        Self { entries: Vec::new(), older: None, pinned: Vec::new() }
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
            Entry::Assistant { key: shown, answer, .. } if shown == key => Some(answer.clone()),
            _ => None,
        })
    }

    /// Shows the newest page of the chat, replacing what was shown; `make` wraps each answer.
    pub fn show_page(&mut self, page: MessagePage, make: impl FnMut(AnswerState) -> A) {
        self.entries.clear();
        self.pinned.clear();
        self.prepend_page(page, make);
    }

    /// Puts an older page before what is shown.
    pub fn prepend_page(&mut self, page: MessagePage, make: impl FnMut(AnswerState) -> A) {
        self.older = page.next_before;
        self.pinned.extend(page.messages.iter().filter(|m| m.metadata.pinned).map(|m| m.id.to_string()));
        let mut entries = entries_of(page.messages, make);
        entries.append(&mut self.entries);
        self.entries = entries;
    }

    /// Whether the message `key` is pinned.
    pub fn is_pinned(&self, key: &str) -> bool {
        self.pinned.iter().any(|k| k == key)
    }

    /// Pins or unpins the message `key`.
    pub fn set_pinned(&mut self, key: &str, pinned: bool) {
        self.pinned.retain(|k| k != key);
        if pinned {
            self.pinned.push(key.to_owned());
        }
    }

    /// The answer to the question `key` when that question was sent from this page: it is shown under its client
    /// id, and the server's id for it is the parent of that answer ([`question_of`]).
    pub fn sent_answer(&self, key: &str) -> Option<A> {
        self.answer(&format!("answer-{key}"))
    }

    /// The tokens the branch shown used at its last answer that says (prompt and answer), from the newest answer
    /// back; `usage` reads an answer's figures.
    pub fn last_usage(&self, usage: impl Fn(&A) -> Option<Usage>) -> Option<u64> {
        self.entries.iter().rev().find_map(|entry| match entry {
            Entry::Assistant { answer, .. } => {
                let usage = usage(answer)?;
                let total = usage.input_tokens.unwrap_or(0) + usage.output_tokens.unwrap_or(0);
                (total > 0).then_some(total as u64)
            }
            Entry::User { .. } => None,
        })
    }

    /// Shows a message the user just sent (under its client id) and the answer about to stream.
    pub fn send(&mut self, client_id: &str, text: String, answer: A) {
        self.entries.push(Entry::User { key: client_id.to_owned(), text, branch: None });
        self.entries.push(Entry::Assistant { key: format!("answer-{client_id}"), answer, branch: None });
    }

    /// Shows a new version of the question `key` in its place: what followed it goes (it stays on the server, on
    /// the old branch), the new question and the answer about to stream come after its parent. False when the
    /// question is not shown.
    pub fn edit(&mut self, key: &str, client_id: &str, text: String, answer: A) -> bool {
        let Some(at) = self.entries.iter().position(|e| matches!(e, Entry::User { key: k, .. } if k == key)) else {
            return false;
        };
        self.entries.truncate(at);
        self.send(client_id, text, answer);
        true
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

    /// Shows a new answer about to stream in place of the last one (regenerate, or retry of a failed answer; the
    /// server keeps the old one as another version); `key` must be new.
    pub fn regenerate(&mut self, key: String, answer: A) {
        if matches!(self.entries.last(), Some(Entry::Assistant { .. })) {
            self.entries.pop();
        }
        self.entries.push(Entry::Assistant { key, answer, branch: None });
    }

    /// The newest answer for which `is_streaming` holds.
    pub fn streaming_answer(&self, is_streaming: impl Fn(&A) -> bool) -> Option<A> {
        self.entries.iter().rev().find_map(|entry| match entry {
            Entry::Assistant { answer, .. } if is_streaming(answer) => Some(answer.clone()),
            _ => None,
        })
    }
}

/// The id of the question the answer `answer` replies to, among stored messages.
pub fn question_of(messages: &[UiMessage], answer: &str) -> Option<String> {
    let answer = messages.iter().find(|m| m.id.to_string() == answer)?;
    answer.metadata.parent_id.map(|id| id.to_string())
}

fn entries_of<A>(messages: Vec<UiMessage>, mut make: impl FnMut(AnswerState) -> A) -> Vec<Entry<A>> {
    messages
        .into_iter()
        .map(|message| {
            let (key, branch) = (message.id.to_string(), message.metadata.branch.clone());
            match message.role {
                Role::Assistant => Entry::Assistant { key, answer: make(AnswerState::from_stored(&message)), branch },
                _ => Entry::User { key, text: message.text(), branch },
            }
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
                parent_id: None,
                branch: None,
                pinned: false,
            },
        }
    }

    fn page(messages: Vec<UiMessage>, next_before: Option<&str>) -> MessagePage {
        MessagePage { messages, next_before: next_before.map(str::to_owned), leaf_id: None }
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

    #[test]
    fn an_edit_replaces_the_question_and_what_followed_it() {
        let mut thread = Thread::default();
        let mut q2 = message(Role::User, "q2", MessageStatus::Complete, 3);
        q2.metadata.branch = Branch::among(q2.id, vec![Uuid::from_u128(9), q2.id]);
        thread.show_page(
            page(
                vec![
                    message(Role::User, "q1", MessageStatus::Complete, 1),
                    message(Role::Assistant, "a1", MessageStatus::Complete, 2),
                    q2,
                    message(Role::Assistant, "a2", MessageStatus::Complete, 4),
                ],
                Some("1"),
            ),
            |a| a,
        );
        let Entry::User { branch: Some(branch), .. } = &thread.entries()[2] else { panic!("q2 has its versions") };
        assert_eq!(branch.index, 1);
        assert_eq!(thread.entries()[2].view_key(), format!("{}/2", Uuid::from_u128(3)));
        assert_eq!(thread.entries()[0].view_key(), format!("{}/1", Uuid::from_u128(1)));

        assert!(!thread.edit("unknown", "c1", "nothing".into(), AnswerState::streaming()));
        assert_eq!(thread.entries().len(), 4);
        assert!(thread.edit(&Uuid::from_u128(3).to_string(), "c1", "q2, better".into(), AnswerState::streaming()));
        assert_eq!(texts(&thread), ["user: q1", "answer: a1", "user: q2, better", "answer: "]);
        assert_eq!(thread.older(), Some("1"), "older messages are still above");
        assert_eq!(thread.last_key().as_deref(), Some("answer-c1"));
        assert!(thread.edit(&Uuid::from_u128(1).to_string(), "c2", "q1 again".into(), AnswerState::streaming()));
        assert_eq!(texts(&thread), ["user: q1 again", "answer: "], "the first question's edit starts over");
    }

    #[test]
    fn pins_come_with_the_pages_and_follow_the_user() {
        let mut thread: Thread<AnswerState> = Thread::default();
        let mut pinned = message(Role::User, "q2", MessageStatus::Complete, 3);
        pinned.metadata.pinned = true;
        thread.show_page(
            page(vec![pinned, message(Role::Assistant, "a2", MessageStatus::Complete, 4)], Some("3")),
            |a| a,
        );
        let key = |n: u128| Uuid::from_u128(n).to_string();
        assert!(thread.is_pinned(&key(3)) && !thread.is_pinned(&key(4)));
        let mut older = message(Role::Assistant, "a1", MessageStatus::Complete, 2);
        older.metadata.pinned = true;
        thread.prepend_page(page(vec![message(Role::User, "q1", MessageStatus::Complete, 1), older], None), |a| a);
        assert!(thread.is_pinned(&key(2)) && thread.is_pinned(&key(3)), "an older page adds its pins");
        thread.set_pinned(&key(3), false);
        thread.set_pinned(&key(4), true);
        thread.set_pinned(&key(4), true);
        assert!(!thread.is_pinned(&key(3)) && thread.is_pinned(&key(4)));
        thread.show_page(page(vec![message(Role::User, "q9", MessageStatus::Complete, 9)], None), |a| a);
        assert!(!thread.is_pinned(&key(2)) && !thread.is_pinned(&key(4)), "another branch has its own pins");
    }

    #[test]
    fn a_question_sent_here_is_found_by_the_parent_of_its_answer() {
        let mut thread: Thread<AnswerState> = Thread::default();
        thread.show_page(page(vec![message(Role::User, "q1", MessageStatus::Complete, 1)], None), |a| a);
        let mut answer = AnswerState::streaming();
        answer.message_id = Some(Uuid::from_u128(8).to_string());
        thread.send("c1", "hello".into(), answer);
        assert_eq!(thread.sent_answer("c1").and_then(|a| a.message_id), Some(Uuid::from_u128(8).to_string()));
        assert!(thread.sent_answer(&Uuid::from_u128(1).to_string()).is_none(), "a stored question is known by its id");

        let mut stored = message(Role::Assistant, "a", MessageStatus::Complete, 8);
        stored.metadata.parent_id = Some(Uuid::from_u128(7));
        let messages = [message(Role::User, "hello", MessageStatus::Complete, 7), stored];
        assert_eq!(question_of(&messages, &Uuid::from_u128(8).to_string()), Some(Uuid::from_u128(7).to_string()));
        assert_eq!(question_of(&messages, "unknown"), None);
    }

    #[test]
    fn the_branch_used_what_its_newest_answer_with_figures_says() {
        let usage = |input, output| Some(Usage { input_tokens: input, output_tokens: output });
        let mut thread: Thread<AnswerState> = Thread::default();
        assert_eq!(thread.last_usage(|a| a.usage), None);
        let mut first = message(Role::Assistant, "a1", MessageStatus::Complete, 2);
        first.metadata.usage = usage(Some(3_000), Some(200));
        let mut second = message(Role::Assistant, "a2", MessageStatus::Complete, 4);
        second.metadata.usage = usage(None, None);
        thread.show_page(
            page(
                vec![
                    message(Role::User, "q1", MessageStatus::Complete, 1),
                    first,
                    message(Role::User, "q2", MessageStatus::Complete, 3),
                    second,
                ],
                None,
            ),
            |a| a,
        );
        assert_eq!(thread.last_usage(|a| a.usage), Some(3_200), "an answer without figures is passed over");
        thread.send("c1", "more".into(), AnswerState::streaming());
        assert_eq!(thread.last_usage(|a| a.usage), Some(3_200), "the answer being written has none yet");
    }
}
