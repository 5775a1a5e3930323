//! The in-memory event log of one turn.
//!
//! Every event has a sequence number (1, 2, 3, ...). Content is stored once, as the growing text of each part,
//! and a delta event is just a byte range into it, so a turn of N tokens costs N small entries rather than N
//! strings. Events are turned into UI-message-stream chunks only when a client or a checkpoint reads them.

use serde::{Deserialize, Serialize};
use shared::{MessagePart, UiChunk};

/// Kind of a content part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// Answer text.
    Text,
    /// Reasoning.
    Reasoning,
}

#[derive(Debug)]
struct Part {
    kind: PartKind,
    text: String,
    open: bool,
}

/// One event: 8 bytes. A delta stores where it ends; it starts where the part's previous delta (or its start)
/// left off, because a part's deltas are contiguous in its text, whatever other entries come between them.
#[derive(Debug, Clone, Copy)]
enum Entry {
    /// A control chunk, stored in `controls`.
    Control(u32),
    Start(u16),
    Delta {
        part: u16,
        end: u32,
    },
    End(u16),
}

/// Append-only log of a turn's events.
#[derive(Debug, Default)]
pub struct TurnLog {
    parts: Vec<Part>,
    entries: Vec<Entry>,
    controls: Vec<UiChunk>,
    sealed: bool,
    finished: bool,
}

impl TurnLog {
    /// Number of events (= the last sequence number).
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether nothing was logged yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Marks that the turn is ending: nothing but its closing chunks may follow.
    pub fn seal(&mut self) {
        self.sealed = true;
    }

    /// Whether the turn is ending (see [`TurnLog::seal`]).
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// The chunks [`TurnLog::finish_with`] will append: the end of the open part, if any, then `terminal`.
    pub fn closing_chunks(&self, terminal: &[UiChunk]) -> Vec<UiChunk> {
        let open_end = self.parts.last().filter(|p| p.open).map(|p| {
            let id = part_id((self.parts.len() - 1) as u16);
            match p.kind {
                PartKind::Text => UiChunk::TextEnd { id },
                PartKind::Reasoning => UiChunk::ReasoningEnd { id },
            }
        });
        open_end.into_iter().chain(terminal.iter().cloned()).collect()
    }

    /// Appends the closing chunks announced by [`TurnLog::closing_chunks`].
    pub fn finish_with(&mut self, terminal: Vec<UiChunk>) {
        self.close_part();
        for chunk in terminal {
            self.push_control(chunk);
        }
    }

    /// Whether the final `finish` chunk was logged.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Appends a control chunk (anything but text and reasoning content).
    pub fn push_control(&mut self, chunk: UiChunk) {
        if chunk.is_finish() {
            self.finished = true;
        }
        self.entries.push(Entry::Control(self.controls.len() as u32));
        self.controls.push(chunk);
    }

    /// Appends content, opening a new part when the kind changes.
    pub fn push_content(&mut self, kind: PartKind, text: &str) {
        if text.is_empty() {
            return;
        }
        let index = match self.parts.last() {
            Some(part) if part.open && part.kind == kind => self.parts.len() - 1,
            _ => {
                self.close_part();
                self.parts.push(Part { kind, text: String::new(), open: true });
                let index = self.parts.len() - 1;
                self.entries.push(Entry::Start(index as u16));
                index
            }
        };
        let part = &mut self.parts[index];
        part.text.push_str(text);
        self.entries.push(Entry::Delta { part: index as u16, end: part.text.len() as u32 });
    }

    /// Closes the open part, if any (before a step ends or the turn finishes).
    pub fn close_part(&mut self) {
        if let Some(part) = self.parts.last_mut()
            && part.open
        {
            part.open = false;
            let index = (self.parts.len() - 1) as u16;
            self.entries.push(Entry::End(index));
        }
    }

    /// The entry with sequence number `seq` (1-based) and its index.
    fn entry(&self, seq: u64) -> Option<(usize, Entry)> {
        let index = usize::try_from(seq).ok()?.checked_sub(1)?;
        Some((index, *self.entries.get(index)?))
    }

    /// The text of the delta at `index`: from where the part's previous delta ended (or from the part's start) to
    /// its own end. Other entries (a title, a status) may sit between two deltas of one part; they are skipped,
    /// never taken for the part's start, or the delta after them would repeat the part's whole text. The walk back
    /// is one step for a plain stream and a few when something came in between.
    fn delta_text(&self, index: usize, part: u16, end: u32) -> &str {
        let start = self.entries[..index]
            .iter()
            .rev()
            .find_map(|entry| match *entry {
                Entry::Delta { part: previous, end: previous_end } if previous == part => Some(previous_end),
                Entry::Start(previous) if previous == part => Some(0),
                _ => None,
            })
            .unwrap_or(0);
        &self.parts[part as usize].text[start as usize..end as usize]
    }

    /// The chunk with sequence number `seq` (1-based).
    pub fn chunk(&self, seq: u64) -> Option<UiChunk> {
        let (index, entry) = self.entry(seq)?;
        Some(match entry {
            Entry::Control(index) => self.controls[index as usize].clone(),
            Entry::Start(part) => match self.parts[part as usize].kind {
                PartKind::Text => UiChunk::TextStart { id: part_id(part) },
                PartKind::Reasoning => UiChunk::ReasoningStart { id: part_id(part) },
            },
            Entry::Delta { part, end } => {
                let delta = self.delta_text(index, part, end).to_owned();
                match self.parts[part as usize].kind {
                    PartKind::Text => UiChunk::TextDelta { id: part_id(part), delta },
                    PartKind::Reasoning => UiChunk::ReasoningDelta { id: part_id(part), delta },
                }
            }
            Entry::End(part) => match self.parts[part as usize].kind {
                PartKind::Text => UiChunk::TextEnd { id: part_id(part) },
                PartKind::Reasoning => UiChunk::ReasoningEnd { id: part_id(part) },
            },
        })
    }

    /// Chunks with sequence numbers in `first..=last`.
    pub fn chunks(&self, first: u64, last: u64) -> Vec<UiChunk> {
        (first..=last.min(self.len())).filter_map(|seq| self.chunk(seq)).collect()
    }

    /// The content so far, as stored message parts.
    pub fn parts(&self) -> Vec<MessagePart> {
        self.parts
            .iter()
            .map(|p| match p.kind {
                PartKind::Text => MessagePart::Text { text: p.text.clone() },
                PartKind::Reasoning => MessagePart::Reasoning { text: p.text.clone() },
            })
            .collect()
    }

    /// All answer text so far.
    pub fn text(&self) -> String {
        self.parts.iter().filter(|p| p.kind == PartKind::Text).map(|p| p.text.as_str()).collect()
    }

    /// Approximate heap bytes held (for memory accounting in benchmarks and logs).
    pub fn heap_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.text.capacity()).sum::<usize>()
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.controls.capacity() * std::mem::size_of::<UiChunk>()
    }
}

/// An event as stored in `chat.generation_events`: content deltas as compact arrays (`["t", 1, " word"]`, a
/// third of the size of the chunk JSON, and most events are deltas), anything else as its UI chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredEvent {
    /// `[kind, part, text]`.
    Delta(StoredKind, u16, String),
    /// Any other chunk.
    Chunk(UiChunk),
}

/// Kind of a stored delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredKind {
    /// Answer text.
    #[serde(rename = "t")]
    Text,
    /// Reasoning.
    #[serde(rename = "r")]
    Reasoning,
}

impl From<StoredEvent> for UiChunk {
    fn from(event: StoredEvent) -> Self {
        match event {
            StoredEvent::Delta(StoredKind::Text, part, delta) => UiChunk::TextDelta { id: part_id(part), delta },
            StoredEvent::Delta(StoredKind::Reasoning, part, delta) => {
                UiChunk::ReasoningDelta { id: part_id(part), delta }
            }
            StoredEvent::Chunk(chunk) => chunk,
        }
    }
}

impl From<UiChunk> for StoredEvent {
    fn from(chunk: UiChunk) -> Self {
        let part = |id: &str| id.parse::<u16>().ok();
        match chunk {
            UiChunk::TextDelta { id, delta } if part(&id).is_some() => {
                StoredEvent::Delta(StoredKind::Text, part(&id).unwrap_or_default(), delta)
            }
            UiChunk::ReasoningDelta { id, delta } if part(&id).is_some() => {
                StoredEvent::Delta(StoredKind::Reasoning, part(&id).unwrap_or_default(), delta)
            }
            other => StoredEvent::Chunk(other),
        }
    }
}

impl TurnLog {
    /// Events `first..=last` in their stored form.
    pub fn stored_events(&self, first: u64, last: u64) -> Vec<StoredEvent> {
        (first..=last.min(self.len()))
            .filter_map(|seq| {
                let (index, entry) = self.entry(seq)?;
                Some(match entry {
                    Entry::Delta { part, end } => {
                        let kind = match self.parts[part as usize].kind {
                            PartKind::Text => StoredKind::Text,
                            PartKind::Reasoning => StoredKind::Reasoning,
                        };
                        StoredEvent::Delta(kind, part, self.delta_text(index, part, end).to_owned())
                    }
                    _ => StoredEvent::Chunk(self.chunk(seq)?),
                })
            })
            .collect()
    }
}

/// Part ids are the part's index: stable across replays and processes.
fn part_id(part: u16) -> String {
    part.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_becomes_start_delta_end_chunks_with_sequence_numbers() {
        let mut log = TurnLog::default();
        log.push_control(UiChunk::StartStep);
        log.push_content(PartKind::Reasoning, "hmm");
        log.push_content(PartKind::Text, "Hel");
        log.push_content(PartKind::Text, "lo");
        log.close_part();
        log.push_control(UiChunk::Finish { message_metadata: None });

        assert_eq!(
            log.chunks(1, 100),
            vec![
                UiChunk::StartStep,
                UiChunk::ReasoningStart { id: "0".into() },
                UiChunk::ReasoningDelta { id: "0".into(), delta: "hmm".into() },
                UiChunk::ReasoningEnd { id: "0".into() },
                UiChunk::TextStart { id: "1".into() },
                UiChunk::TextDelta { id: "1".into(), delta: "Hel".into() },
                UiChunk::TextDelta { id: "1".into(), delta: "lo".into() },
                UiChunk::TextEnd { id: "1".into() },
                UiChunk::Finish { message_metadata: None },
            ]
        );
        assert!(log.is_finished());
        assert_eq!(log.text(), "Hello");
        assert_eq!(log.chunks(6, 7).len(), 2);
        assert_eq!(log.chunk(0), None);
        assert_eq!(log.chunk(10), None);
    }

    #[test]
    fn closing_chunks_announce_exactly_what_finishing_appends() {
        let terminal = vec![UiChunk::FinishStep, UiChunk::Finish { message_metadata: None }];
        for open in [true, false] {
            let mut log = TurnLog::default();
            log.push_content(PartKind::Reasoning, "a");
            if !open {
                log.close_part();
            }
            let before = log.len();
            let announced = log.closing_chunks(&terminal);
            log.finish_with(terminal.clone());
            assert_eq!(log.chunks(before + 1, log.len()), announced);
        }
    }

    #[test]
    fn stored_events_are_compact_and_turn_back_into_the_same_chunks() {
        let mut log = TurnLog::default();
        log.push_control(UiChunk::StartStep);
        log.push_content(PartKind::Reasoning, "why");
        log.push_content(PartKind::Text, " w1");
        log.close_part();
        let stored = log.stored_events(1, log.len());
        let json = serde_json::to_string(&stored).expect("serializes");
        assert!(json.contains(r#"["r",0,"why"]"#) && json.contains(r#"["t",1," w1"]"#), "{json}");
        let back: Vec<StoredEvent> = serde_json::from_str(&json).expect("parses");
        let chunks: Vec<UiChunk> = back.into_iter().map(UiChunk::from).collect();
        assert_eq!(chunks, log.chunks(1, log.len()));
    }

    #[test]
    fn an_entry_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 8);
    }

    #[test]
    fn closing_twice_or_without_a_part_adds_nothing() {
        let mut log = TurnLog::default();
        log.close_part();
        log.push_content(PartKind::Text, "x");
        log.close_part();
        log.close_part();
        log.push_content(PartKind::Text, "");
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn a_control_chunk_between_two_deltas_does_not_repeat_the_text_before_it() {
        let mut log = TurnLog::default();
        log.push_content(PartKind::Text, "w1");
        log.push_content(PartKind::Text, " w2");
        log.push_control(UiChunk::chat(uuid::Uuid::nil(), "A title mid-answer"));
        log.push_control(UiChunk::status(shared::TurnState::Running));
        log.push_content(PartKind::Text, " w3");
        log.push_content(PartKind::Reasoning, "r1");
        log.push_control(UiChunk::chat(uuid::Uuid::nil(), "Another"));
        log.push_content(PartKind::Reasoning, " r2");
        let deltas = |chunks: Vec<UiChunk>| -> Vec<String> {
            chunks
                .into_iter()
                .filter_map(|chunk| match chunk {
                    UiChunk::TextDelta { delta, .. } | UiChunk::ReasoningDelta { delta, .. } => Some(delta),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(deltas(log.chunks(1, log.len())), ["w1", " w2", " w3", "r1", " r2"]);
        let stored: Vec<UiChunk> = log.stored_events(1, log.len()).into_iter().map(UiChunk::from).collect();
        assert_eq!(deltas(stored), ["w1", " w2", " w3", "r1", " r2"], "checkpoints store the same deltas");
    }

    #[test]
    fn multibyte_text_is_sliced_on_character_boundaries() {
        let mut log = TurnLog::default();
        log.push_content(PartKind::Text, "café ");
        log.push_content(PartKind::Text, "🚀");
        assert_eq!(log.chunk(3), Some(UiChunk::TextDelta { id: "0".into(), delta: "🚀".into() }));
    }
}
