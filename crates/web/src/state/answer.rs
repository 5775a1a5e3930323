//! One assistant answer on screen, built from the stream's chunks (or from a stored message).
//!
//! Chunks are applied by sequence number: one the answer already has is ignored, so replays after a reconnect
//! never duplicate text. Content chunks build the answer's parts with the shared [`shared::Answer`] (the same
//! parts the server stores); this module adds what only the screen needs: the markdown rendered as it streams,
//! the status, and what the turn waits for.

use shared::{Answer, ChatRef, MessageStatus, TurnState, UiChunk, UiMessage, Usage};

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
    /// Its text, rendered to HTML as it streams.
    pub markdown: IncrementalMarkdown,
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
}

impl AnswerState {
    /// An answer that is about to stream.
    pub fn streaming() -> Self {
        Self {
            message_id: None,
            answer: Answer::default(),
            markdown: IncrementalMarkdown::new(),
            status: MessageStatus::Streaming,
            error: None,
            last_event: 0,
            model: None,
            usage: None,
            waiting: None,
        }
    }

    /// An answer loaded from history; a streaming one continues from its resume cursor.
    pub fn from_stored(message: &UiMessage) -> Self {
        let mut answer = Self::streaming();
        answer.message_id = Some(message.id.to_string());
        answer.answer = Answer::from_parts(message.parts.clone());
        answer.markdown.set(&answer.answer.text());
        answer.status = message.metadata.status;
        answer.error = message.metadata.error.clone();
        answer.model = message.metadata.model.clone();
        answer.usage = message.metadata.usage;
        answer.last_event = message.metadata.resume_cursor.map(|c| c.max(0) as u64).unwrap_or(0);
        if answer.status.is_terminal() {
            answer.markdown.finish();
        }
        answer
    }

    /// Whether the answer is still being written.
    pub fn is_streaming(&self) -> bool {
        self.status == MessageStatus::Streaming
    }

    /// The answer text so far.
    pub fn text(&self) -> &str {
        self.markdown.text()
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
                self.markdown.finish();
                Some(Signal::Finished(self.status))
            }
            UiChunk::Abort => {
                self.status = MessageStatus::Stopped;
                None
            }
            content => {
                if self.answer.apply(&content) {
                    self.waiting = None;
                }
                if let UiChunk::TextDelta { delta, .. } = &content {
                    self.markdown.push(delta);
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
        self.markdown.finish();
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
    fn an_error_chunk_ends_as_error() {
        let mut answer = AnswerState::streaming();
        answer.apply(Some(1), UiChunk::Error { error_text: "the model failed".into() });
        answer.apply(Some(2), UiChunk::Finish { message_metadata: None });
        assert_eq!(answer.status, MessageStatus::Error);
        assert_eq!(answer.error.as_deref(), Some("the model failed"));
    }
}
