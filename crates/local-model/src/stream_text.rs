//! Token ids to text, one token at a time, without splitting characters.
//!
//! A byte-level BPE token can hold part of a UTF-8 character (emoji and CJK often span two or three tokens), and
//! some tokens only make sense with their neighbours. So each new token is decoded together with the tokens since
//! the last emitted text, and text is emitted once it no longer ends in an incomplete character. Decoding only
//! that short tail keeps the cost per token constant, whatever the length of the answer.

use crate::Result;
use crate::tokenizer::ChatTokenizer;

/// Incremental decoder of one answer.
#[derive(Default)]
pub(crate) struct TextStream {
    ids: Vec<u32>,
    /// Start of the tokens whose text has not been emitted in full.
    pending_from: usize,
    /// Bytes of text of `ids[pending_from..]` already emitted.
    emitted: usize,
}

impl TextStream {
    /// Adds a token; returns the text it completes, if any.
    pub(crate) fn push(&mut self, tokenizer: &ChatTokenizer, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let text = tokenizer.decode(&self.ids[self.pending_from..])?;
        if text.ends_with(char::REPLACEMENT_CHARACTER) || text.len() <= self.emitted {
            return Ok(None);
        }
        let new = text.get(self.emitted..).map(str::to_owned);
        // Keep the last token as context: a following token may change how it reads (e.g. a leading space).
        self.pending_from = self.ids.len() - 1;
        self.emitted = tokenizer.decode(&self.ids[self.pending_from..])?.len();
        Ok(new.filter(|s| !s.is_empty()))
    }

    /// Whatever is still held back at the end of the answer.
    pub(crate) fn finish(&mut self, tokenizer: &ChatTokenizer) -> Result<Option<String>> {
        let text = tokenizer.decode(&self.ids[self.pending_from..])?;
        let rest = text.get(self.emitted..).unwrap_or_default().to_owned();
        self.pending_from = self.ids.len();
        self.emitted = 0;
        Ok((!rest.is_empty()).then_some(rest))
    }
}
