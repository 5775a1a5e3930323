//! The in-memory event log of one turn: the one place where what a model said ([`Content`]) becomes numbered
//! stream chunks ([`UiChunk`]) and the answer's parts ([`MessagePart`]).
//!
//! Every event has a sequence number (1, 2, 3, ...). Content is stored once, as the growing text of each part
//! (answer text, reasoning, or a tool call's arguments as JSON text), and a delta event is just a byte range into
//! it, so a turn of N tokens costs N small entries rather than N strings. Events are turned into chunks only when a
//! client or a checkpoint reads them.

use shared::{Content, DataPart, MessagePart, Source, ToolEvent, ToolPart, ToolState, UiChunk};

use crate::db::events::{StoredEvent, StoredKind};
use crate::llm::UpstreamRun;

/// What a part holds besides its streamed text.
#[derive(Debug)]
enum Body {
    /// Answer text (the text is the part).
    Text,
    /// Reasoning (the text is the part).
    Reasoning,
    /// A tool call; the text is its arguments' JSON as it streamed.
    Tool(Box<ToolPart>),
    /// A cited source.
    Source(Source),
    /// A data part (`data-approval`, `data-agent`).
    Data(DataPart),
    /// The start of a step after the first.
    Step,
}

#[derive(Debug)]
struct Part {
    body: Body,
    text: String,
    /// Bytes of `text` stored before this log began (a part of the answer this log continues).
    stored: u32,
}

/// One event: 8 bytes. A delta stores where it ends; it starts where the part's previous delta (or its start)
/// left off, because a part's deltas are contiguous in its text, whatever other entries come between them.
#[derive(Debug, Clone, Copy)]
enum Entry {
    /// A chunk stored as is, in `controls`.
    Control(u32),
    /// A part begins (`text-start`, `reasoning-start`, `tool-input-start`, `source-url`, `data-*`).
    Start(u16),
    /// More of a part's text (`text-delta`, `reasoning-delta`, `tool-input-delta`).
    Delta { part: u16, end: u32 },
    /// A part is complete (`text-end`, `reasoning-end`, `tool-input-available`).
    End(u16),
}

/// Append-only log of a turn's events.
///
/// A turn that continues a stored answer (after the user answered an approval) starts after that answer's events:
/// its log holds the stored parts, without their events, and numbers its own events from `base + 1`.
#[derive(Debug, Default)]
pub struct TurnLog {
    /// Events before this log's first one (stored by the turn this one continues).
    base: u64,
    parts: Vec<Part>,
    entries: Vec<Entry>,
    controls: Vec<UiChunk>,
    /// The text or reasoning part that more of the same kind joins.
    open: Option<u16>,
    sealed: bool,
    finished: bool,
    /// How far the agent's background run has reached, in the events logged so far (stored with them).
    upstream: Option<UpstreamRun>,
    /// A step was started and not yet finished (its `finish-step` is still to come).
    step_open: bool,
    /// Token usage of the model calls the answer made before this log continued it (an approval's continuation).
    prior_usage: Option<shared::Usage>,
}

impl TurnLog {
    /// A log that replays a stored answer (its own event log expired): its parts as content, in steps.
    pub fn replay(parts: &[MessagePart]) -> Self {
        let mut log = Self::default();
        log.start_step();
        for part in parts {
            log.close_part();
            match Content::of_part(part) {
                Some(content) => content.into_iter().for_each(|c| log.push(c)),
                None => {
                    log.finish_step();
                    log.start_step();
                }
            }
        }
        log.close_part();
        log
    }

    /// A log that continues a stored answer: its parts, whose events (`1..=base`) are already stored.
    pub fn continuing(parts: &[MessagePart], base: u64) -> Self {
        let parts = parts
            .iter()
            .filter_map(|part| {
                let (body, text) = match part {
                    MessagePart::Text { text } => (Body::Text, text.clone()),
                    MessagePart::Reasoning { text } => (Body::Reasoning, text.clone()),
                    MessagePart::Tool(tool) => (Body::Tool(Box::new(tool.clone())), String::new()),
                    MessagePart::SourceUrl(source) => (Body::Source(source.clone()), String::new()),
                    MessagePart::Data(data) => (Body::Data(data.clone()), String::new()),
                    MessagePart::StepStart => (Body::Step, String::new()),
                    MessagePart::Other(_) => return None,
                };
                Some(Part { body, stored: text.len() as u32, text })
            })
            .collect();
        Self { base, parts, ..Self::default() }
    }

    /// A log that takes up a stored answer whose stream was cut (its agent's run goes on): like
    /// [`TurnLog::continuing`], and a text or reasoning part it ended in stays open, so the rest of it joins it.
    pub fn resuming(parts: &[MessagePart], base: u64) -> Self {
        let mut log = Self::continuing(parts, base);
        // The agent's step goes on: its `finish-step` is still to come.
        log.step_open = true;
        if let Some(last) = log.parts.len().checked_sub(1)
            && matches!(log.parts[last].body, Body::Text | Body::Reasoning)
        {
            log.open = Some(last as u16);
        }
        log
    }

    /// Records how far the agent's background run has reached: all of it up to there is logged.
    pub fn set_upstream(&mut self, run: UpstreamRun) {
        self.upstream = Some(run);
    }

    /// How far the agent's background run has reached in what is logged, for an answer from one.
    pub fn upstream(&self) -> Option<&UpstreamRun> {
        self.upstream.as_ref()
    }

    /// The last sequence number of the answer this log continues (0 for a new answer).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Number of events (= the last sequence number).
    pub fn len(&self) -> u64 {
        self.base + self.entries.len() as u64
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
        let open_end = self.open.and_then(|part| self.end_chunk(part));
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

    /// Appends a chunk that is not content (`start`, `data-*`, `finish`, ...).
    pub fn push_control(&mut self, chunk: UiChunk) {
        if chunk.is_finish() {
            self.finished = true;
        }
        self.entries.push(Entry::Control(self.controls.len() as u32));
        self.controls.push(chunk);
    }

    /// Starts a model step: a `start-step` chunk, and for every step after the first a step boundary part.
    pub fn start_step(&mut self) {
        self.close_part();
        if !self.parts.is_empty() {
            self.parts.push(Part { body: Body::Step, text: String::new(), stored: 0 });
        }
        self.push_control(UiChunk::StartStep);
        self.step_open = true;
    }

    /// Records the usage of the model calls made before this log continued the answer.
    pub fn set_prior_usage(&mut self, usage: Option<shared::Usage>) {
        self.prior_usage = usage;
    }

    /// The usage of the model calls made before this log continued the answer.
    pub fn prior_usage(&self) -> Option<shared::Usage> {
        self.prior_usage
    }

    /// Whether a step was started and not finished.
    pub fn step_open(&self) -> bool {
        self.step_open
    }

    /// Ends a model step: closes the open part and appends `finish-step`.
    pub fn finish_step(&mut self) {
        self.close_part();
        self.step_open = false;
        self.push_control(UiChunk::FinishStep);
    }

    /// Appends what a model said.
    pub fn push(&mut self, content: Content) {
        match content {
            Content::Text(text) => self.push_streamed(false, &text),
            Content::Reasoning(text) => self.push_streamed(true, &text),
            Content::Tool(event) => self.push_tool(*event),
            Content::PartEnd => self.close_part(),
            Content::Source(source) => {
                // A citation does not interrupt the text it belongs to: the open part stays open.
                let index = self.add_part(Body::Source(*source));
                self.entries.push(Entry::Start(index));
            }
            Content::Data(data) => {
                let same = |part: &Part| matches!(&part.body, Body::Data(old) if data.id.is_some() && old.kind == data.kind && old.id == data.id);
                // A newer version of a data part replaces the older one in place, as clients do with its chunk.
                let index = match self.parts.iter().position(same) {
                    Some(index) => {
                        self.parts[index].body = Body::Data(*data);
                        index as u16
                    }
                    None => {
                        self.close_part();
                        self.add_part(Body::Data(*data))
                    }
                };
                self.entries.push(Entry::Start(index));
            }
        }
    }

    /// Closes the open text or reasoning part, if any (before a step ends or the turn finishes).
    pub fn close_part(&mut self) {
        if let Some(part) = self.open.take() {
            self.entries.push(Entry::End(part));
        }
    }

    fn push_tool(&mut self, event: ToolEvent) {
        match event {
            ToolEvent::InputStart { tool_call_id, tool_name, provider_executed } => {
                self.close_part();
                let tool = tool_part(tool_call_id, tool_name, provider_executed, ToolState::InputStreaming);
                let index = self.add_part(Body::Tool(Box::new(tool)));
                self.entries.push(Entry::Start(index));
            }
            ToolEvent::InputDelta { tool_call_id, delta } => {
                let Some(index) = self.tool_index(&tool_call_id, |t| t.state == ToolState::InputStreaming) else {
                    return;
                };
                if !delta.is_empty() {
                    self.append(index, &delta);
                }
            }
            ToolEvent::Input { tool_call_id, tool_name, input, provider_executed, provider_metadata } => {
                let index = match self.tool_index(&tool_call_id, |t| t.state == ToolState::InputStreaming) {
                    Some(index) => index,
                    None => {
                        self.close_part();
                        let tool = tool_part(tool_call_id, tool_name, provider_executed, ToolState::InputAvailable);
                        self.add_part(Body::Tool(Box::new(tool)))
                    }
                };
                if let Body::Tool(tool) = &mut self.parts[index as usize].body {
                    tool.state = ToolState::InputAvailable;
                    tool.input = Some(input);
                    if provider_metadata.is_some() {
                        tool.call_provider_metadata = provider_metadata;
                    }
                }
                self.entries.push(Entry::End(index));
            }
            ToolEvent::Output { tool_call_id, output } => {
                let Some(index) = self.tool_index(&tool_call_id, |_| true) else { return };
                let Body::Tool(tool) = &mut self.parts[index as usize].body else { return };
                tool.state = ToolState::OutputAvailable;
                tool.output = Some(output.clone());
                let chunk = UiChunk::ToolOutputAvailable {
                    tool_call_id,
                    output,
                    provider_executed: tool.provider_executed,
                    dynamic: Some(true),
                };
                self.push_control(chunk);
            }
            ToolEvent::Error { tool_call_id, error_text } => {
                let Some(index) = self.tool_index(&tool_call_id, |_| true) else { return };
                let Body::Tool(tool) = &mut self.parts[index as usize].body else { return };
                tool.state = ToolState::OutputError;
                tool.error_text = Some(error_text.clone());
                let chunk = UiChunk::ToolOutputError {
                    tool_call_id,
                    error_text,
                    provider_executed: tool.provider_executed,
                    dynamic: Some(true),
                };
                self.push_control(chunk);
            }
        }
    }

    /// Appends answer text, or reasoning, to the open part of that kind, opening one when needed.
    fn push_streamed(&mut self, reasoning: bool, text: &str) {
        if text.is_empty() {
            return;
        }
        let same_kind = |part: &Part| match part.body {
            Body::Text => !reasoning,
            Body::Reasoning => reasoning,
            _ => false,
        };
        let index = match self.open {
            Some(open) if same_kind(&self.parts[open as usize]) => open,
            _ => {
                self.close_part();
                let index = self.add_part(if reasoning { Body::Reasoning } else { Body::Text });
                self.entries.push(Entry::Start(index));
                self.open = Some(index);
                index
            }
        };
        self.append(index, text);
    }

    fn add_part(&mut self, body: Body) -> u16 {
        self.parts.push(Part { body, text: String::new(), stored: 0 });
        (self.parts.len() - 1) as u16
    }

    fn append(&mut self, index: u16, text: &str) {
        let part = &mut self.parts[index as usize];
        part.text.push_str(text);
        self.entries.push(Entry::Delta { part: index, end: part.text.len() as u32 });
    }

    /// The newest tool part of a call that satisfies `filter`.
    fn tool_index(&self, tool_call_id: &str, filter: impl Fn(&ToolPart) -> bool) -> Option<u16> {
        self.parts
            .iter()
            .rposition(|part| matches!(&part.body, Body::Tool(t) if t.tool_call_id == tool_call_id && filter(t)))
            .map(|index| index as u16)
    }

    /// The entry with sequence number `seq` (1-based, after the base) and its index.
    fn entry(&self, seq: u64) -> Option<(usize, Entry)> {
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?.checked_sub(1)?;
        Some((index, *self.entries.get(index)?))
    }

    /// The text of the delta at `index`: from where the part's previous delta ended (or from the part's start) to
    /// its own end. Other entries (a title, a status, another part's delta) may sit between two deltas of one
    /// part; they are skipped, never taken for the part's start, or the delta after them would repeat the part's
    /// whole text. The walk back is one step for a plain stream and a few when something came in between.
    fn delta_text(&self, index: usize, part: u16, end: u32) -> &str {
        let start_after = |entry: &Entry| match *entry {
            Entry::Delta { part: previous, end: previous_end } if previous == part => Some(previous_end),
            Entry::Start(previous) if previous == part => Some(0),
            _ => None,
        };
        // Nearly always the entry just before; the walk is for what came in between.
        let start = match index.checked_sub(1).and_then(|previous| start_after(&self.entries[previous])) {
            Some(start) => start,
            // A part this log took up from storage starts where its stored text ends.
            None => {
                self.entries[..index].iter().rev().find_map(start_after).unwrap_or(self.parts[part as usize].stored)
            }
        };
        &self.parts[part as usize].text[start as usize..end as usize]
    }

    /// The chunk with sequence number `seq` (1-based).
    pub fn chunk(&self, seq: u64) -> Option<UiChunk> {
        let (index, entry) = self.entry(seq)?;
        let id = |part: u16| part.to_string();
        match entry {
            Entry::Control(control) => Some(self.controls[control as usize].clone()),
            Entry::Start(part) => Some(match &self.parts[part as usize].body {
                Body::Text => UiChunk::TextStart { id: id(part) },
                Body::Reasoning => UiChunk::ReasoningStart { id: id(part) },
                Body::Tool(tool) => UiChunk::ToolInputStart {
                    tool_call_id: tool.tool_call_id.clone(),
                    tool_name: tool.tool_name.clone(),
                    provider_executed: tool.provider_executed,
                    dynamic: Some(true),
                },
                Body::Source(source) => UiChunk::SourceUrl(source.clone()),
                Body::Data(data) => UiChunk::Data(Box::new(data.clone())),
                Body::Step => return None,
            }),
            Entry::Delta { part, end } => {
                let delta = self.delta_text(index, part, end).to_owned();
                Some(match &self.parts[part as usize].body {
                    Body::Reasoning => UiChunk::ReasoningDelta { id: id(part), delta },
                    Body::Tool(tool) => {
                        UiChunk::ToolInputDelta { tool_call_id: tool.tool_call_id.clone(), input_text_delta: delta }
                    }
                    _ => UiChunk::TextDelta { id: id(part), delta },
                })
            }
            Entry::End(part) => self.end_chunk(part),
        }
    }

    fn end_chunk(&self, part: u16) -> Option<UiChunk> {
        Some(match &self.parts[part as usize].body {
            Body::Text => UiChunk::TextEnd { id: part.to_string() },
            Body::Reasoning => UiChunk::ReasoningEnd { id: part.to_string() },
            Body::Tool(tool) => UiChunk::ToolInputAvailable {
                tool_call_id: tool.tool_call_id.clone(),
                tool_name: tool.tool_name.clone(),
                input: tool.input.clone().unwrap_or_default(),
                provider_executed: tool.provider_executed,
                dynamic: Some(true),
                provider_metadata: tool.call_provider_metadata.clone().map(Box::new),
            },
            Body::Source(_) | Body::Data(_) | Body::Step => return None,
        })
    }

    /// Chunks with sequence numbers in `first..=last`, each with its number.
    pub fn numbered_chunks(&self, first: u64, last: u64) -> Vec<(u64, UiChunk)> {
        (first.max(self.base + 1)..=last.min(self.len())).filter_map(|seq| Some((seq, self.chunk(seq)?))).collect()
    }

    /// Chunks with sequence numbers in `first..=last`.
    pub fn chunks(&self, first: u64, last: u64) -> Vec<UiChunk> {
        self.numbered_chunks(first, last).into_iter().map(|(_, chunk)| chunk).collect()
    }

    /// Events `first..=last` as stored (`db::events`): text and reasoning deltas straight from the part's text, in
    /// their compact form, anything else as its chunk. What checkpoints write, once per event.
    pub fn stored_events(&self, first: u64, last: u64) -> Vec<StoredEvent> {
        (first.max(self.base + 1)..=last.min(self.len()))
            .filter_map(|seq| {
                let (index, entry) = self.entry(seq)?;
                let stored = match entry {
                    Entry::Delta { part, end } => {
                        let kind = match self.parts[part as usize].body {
                            Body::Text => Some(StoredKind::Text),
                            Body::Reasoning => Some(StoredKind::Reasoning),
                            _ => None,
                        };
                        kind.map(|kind| StoredEvent::Delta(kind, part, self.delta_text(index, part, end).to_owned()))
                    }
                    _ => None,
                };
                stored.or_else(|| self.chunk(seq).map(StoredEvent::Chunk))
            })
            .collect()
    }

    /// The content so far, as stored message parts.
    pub fn parts(&self) -> Vec<MessagePart> {
        self.parts
            .iter()
            .map(|part| match &part.body {
                Body::Text => MessagePart::Text { text: part.text.clone() },
                Body::Reasoning => MessagePart::Reasoning { text: part.text.clone() },
                Body::Tool(tool) => MessagePart::Tool((**tool).clone()),
                Body::Source(source) => MessagePart::SourceUrl(source.clone()),
                Body::Data(data) => MessagePart::Data(data.clone()),
                Body::Step => MessagePart::StepStart,
            })
            .collect()
    }

    /// All answer text so far.
    pub fn text(&self) -> String {
        self.parts.iter().filter(|p| matches!(p.body, Body::Text)).map(|p| p.text.as_str()).collect()
    }

    /// The tool calls of the current step that this server must run (complete, not run by the model's side, no
    /// result yet), in order.
    pub fn pending_tool_calls(&self) -> Vec<ToolPart> {
        let step_start = self.parts.iter().rposition(|p| matches!(p.body, Body::Step)).map_or(0, |i| i + 1);
        self.parts[step_start..]
            .iter()
            .filter_map(|part| match &part.body {
                Body::Tool(tool) if tool.state == ToolState::InputAvailable && tool.provider_executed != Some(true) => {
                    Some((**tool).clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Whether the current step called tools this server handles (running, or already failed, e.g. with arguments
    /// that were not JSON): the model must then hear back about them.
    pub fn step_called_tools(&self) -> bool {
        let step_start = self.parts.iter().rposition(|p| matches!(p.body, Body::Step)).map_or(0, |i| i + 1);
        self.parts[step_start..]
            .iter()
            .any(|part| matches!(&part.body, Body::Tool(tool) if tool.provider_executed != Some(true)))
    }

    /// Approximate heap bytes held (for memory accounting in benchmarks and logs).
    pub fn heap_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.text.capacity()).sum::<usize>()
            + self.parts.capacity() * std::mem::size_of::<Part>()
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.controls.capacity() * std::mem::size_of::<UiChunk>()
    }
}

fn tool_part(tool_call_id: String, tool_name: String, provider_executed: bool, state: ToolState) -> ToolPart {
    ToolPart {
        tool_call_id,
        tool_name,
        state,
        input: None,
        output: None,
        error_text: None,
        provider_executed: provider_executed.then_some(true),
        call_provider_metadata: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::Answer;

    use super::*;

    fn text(t: &str) -> Content {
        Content::Text(t.to_owned())
    }

    #[test]
    fn content_becomes_start_delta_end_chunks_with_sequence_numbers() {
        let mut log = TurnLog::default();
        log.start_step();
        log.push(Content::Reasoning("hmm".into()));
        log.push(text("Hel"));
        log.push(text("lo"));
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
            log.push(Content::Reasoning("a".into()));
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
    fn an_entry_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 8);
    }

    #[test]
    fn closing_twice_or_without_a_part_adds_nothing() {
        let mut log = TurnLog::default();
        log.close_part();
        log.push(text("x"));
        log.close_part();
        log.close_part();
        log.push(text(""));
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn multibyte_text_is_sliced_on_character_boundaries() {
        let mut log = TurnLog::default();
        log.push(text("café "));
        log.push(text("🚀"));
        assert_eq!(log.chunk(3), Some(UiChunk::TextDelta { id: "0".into(), delta: "🚀".into() }));
    }

    #[test]
    fn a_control_chunk_between_two_deltas_does_not_repeat_the_text_before_it() {
        let mut log = TurnLog::default();
        log.push(text("w1"));
        log.push(text(" w2"));
        log.push_control(UiChunk::chat(uuid::Uuid::nil(), "A title mid-answer"));
        log.push_control(UiChunk::status(shared::TurnState::Running));
        log.push(text(" w3"));
        log.push(Content::Reasoning("r1".into()));
        log.push_control(UiChunk::chat(uuid::Uuid::nil(), "Another"));
        log.push(Content::Reasoning(" r2".into()));
        let deltas: Vec<String> = log
            .chunks(1, log.len())
            .into_iter()
            .filter_map(|chunk| match chunk {
                UiChunk::TextDelta { delta, .. } | UiChunk::ReasoningDelta { delta, .. } => Some(delta),
                _ => None,
            })
            .collect();
        assert_eq!(deltas, ["w1", " w2", " w3", "r1", " r2"]);
    }

    /// A two-step answer with a tool call whose arguments of two calls interleave, and a citation mid-text.
    fn tool_turn() -> TurnLog {
        let mut log = TurnLog::default();
        log.start_step();
        log.push(text("Let me look."));
        for (id, name) in [("c1", "lookup"), ("c2", "search")] {
            log.push(Content::tool_input_start(id, name, false));
        }
        for (id, delta) in [("c1", "{\"q\":"), ("c2", "{\"w\":"), ("c1", "1}"), ("c2", "2}")] {
            log.push(Content::tool_input_delta(id, delta));
        }
        for (id, name, input) in [("c1", "lookup", json!({"q": 1})), ("c2", "search", json!({"w": 2}))] {
            log.push(Content::tool_input(id, name, input, false));
        }
        log.finish_step();
        log.push(Content::tool_output("c1", json!(42)));
        log.push(Content::tool_error("c2", "no such word"));
        log.start_step();
        log.push(text("It is "));
        log.push(Content::Source(Box::new(Source { source_id: "s1".into(), url: "https://docs".into(), title: None })));
        log.push(text("42."));
        log.finish_step();
        log
    }

    #[test]
    fn interleaved_tool_arguments_stream_without_repeats() {
        let log = tool_turn();
        let deltas: Vec<(String, String)> = log
            .chunks(1, log.len())
            .into_iter()
            .filter_map(|chunk| match chunk {
                UiChunk::ToolInputDelta { tool_call_id, input_text_delta } => Some((tool_call_id, input_text_delta)),
                _ => None,
            })
            .collect();
        let of = |id: &str| deltas.iter().filter(|(c, _)| c == id).map(|(_, d)| d.as_str()).collect::<String>();
        assert_eq!((of("c1"), of("c2")), ("{\"q\":1}".to_owned(), "{\"w\":2}".to_owned()));
    }

    #[test]
    fn a_client_assembles_exactly_the_parts_the_log_stores() {
        let log = tool_turn();
        let mut answer = Answer::default();
        for chunk in log.chunks(1, log.len()) {
            answer.apply(&chunk);
        }
        assert_eq!(answer.parts, log.parts());
        assert_eq!(answer.text(), "Let me look.It is 42.");
    }

    #[test]
    fn pending_tool_calls_are_the_current_steps_complete_calls_without_a_result() {
        let mut log = TurnLog::default();
        log.start_step();
        log.push(Content::tool_input("a", "t", json!({}), false));
        log.push(Content::tool_input("b", "t", json!({}), true));
        log.push(Content::tool_input_start("c", "t", false));
        let pending: Vec<String> = log.pending_tool_calls().into_iter().map(|t| t.tool_call_id).collect();
        assert_eq!(pending, ["a"], "not the model's own, not one still streaming");
        log.push(Content::tool_output("a", json!(1)));
        assert!(log.pending_tool_calls().is_empty());
    }

    #[test]
    fn stored_events_read_back_as_the_same_chunks() {
        let log = tool_turn();
        let stored = log.stored_events(1, log.len());
        let json = serde_json::to_string(&stored).expect("serializes");
        assert!(json.contains(r#"["t",0,"Let me look."]"#), "{json}");
        let back: Vec<StoredEvent> = serde_json::from_str(&json).expect("parses");
        let chunks: Vec<UiChunk> = back.into_iter().map(UiChunk::from).collect();
        assert_eq!(chunks, log.chunks(1, log.len()));
    }

    #[test]
    fn a_replay_of_the_stored_parts_gives_the_same_parts() {
        let log = tool_turn();
        let replayed = TurnLog::replay(&log.parts());
        assert_eq!(replayed.parts(), log.parts());
        let mut answer = Answer::default();
        for chunk in replayed.chunks(1, replayed.len()) {
            answer.apply(&chunk);
        }
        assert_eq!(answer.parts, log.parts());
    }
}
