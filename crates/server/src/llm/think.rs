//! Splits `<think>...</think>` out of streamed text into reasoning, for models that inline their reasoning in
//! the answer (DeepSeek-R1 and Qwen style). Tags may be cut anywhere between chunks.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// A piece of streamed text, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Answer text.
    Text(String),
    /// Reasoning text.
    Reasoning(String),
}

/// Stateful splitter; feed chunks in order with [`ThinkSplitter::push`], then call [`ThinkSplitter::finish`].
#[derive(Debug, Default)]
pub struct ThinkSplitter {
    inside: bool,
    /// Text held back because it might be the start of a tag.
    pending: String,
    /// Drop newlines that directly follow a closing tag.
    after_close: bool,
}

impl ThinkSplitter {
    /// Classifies a chunk; text that might be part of a tag is held until the next chunk decides.
    pub fn push(&mut self, chunk: &str) -> Vec<Segment> {
        self.pending.push_str(chunk);
        let mut out = Vec::new();
        loop {
            let tag = if self.inside { CLOSE } else { OPEN };
            if let Some(at) = self.pending.find(tag) {
                let before: String = self.pending.drain(..at).collect();
                self.pending.drain(..tag.len());
                self.emit(&mut out, before);
                self.inside = !self.inside;
                self.after_close = !self.inside;
                continue;
            }
            // Keep the longest suffix that is a proper prefix of the tag; emit the rest.
            let keep = (1..tag.len()).rev().find(|&n| self.pending.ends_with(&tag[..n])).unwrap_or(0);
            let split = self.pending.len() - keep;
            let ready: String = self.pending.drain(..split).collect();
            self.emit(&mut out, ready);
            return out;
        }
    }

    /// Emits whatever is held back (an unfinished tag is just text).
    pub fn finish(&mut self) -> Vec<Segment> {
        let rest = std::mem::take(&mut self.pending);
        let mut out = Vec::new();
        self.emit(&mut out, rest);
        out
    }

    fn emit(&mut self, out: &mut Vec<Segment>, mut text: String) {
        if self.after_close && !self.inside {
            let trimmed = text.trim_start_matches(['\n', '\r']);
            if trimmed.is_empty() {
                return;
            }
            text = trimmed.to_owned();
            self.after_close = false;
        }
        if text.is_empty() {
            return;
        }
        out.push(if self.inside { Segment::Reasoning(text) } else { Segment::Text(text) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&str]) -> (String, String) {
        let mut splitter = ThinkSplitter::default();
        let mut segments: Vec<Segment> = chunks.iter().flat_map(|c| splitter.push(c)).collect();
        segments.extend(splitter.finish());
        let mut text = String::new();
        let mut reasoning = String::new();
        for segment in segments {
            match segment {
                Segment::Text(t) => text.push_str(&t),
                Segment::Reasoning(r) => reasoning.push_str(&r),
            }
        }
        (text, reasoning)
    }

    #[test]
    fn splits_reasoning_from_text() {
        assert_eq!(run(&["<think>hmm</think>\n\nHello"]), ("Hello".into(), "hmm".into()));
    }

    #[test]
    fn handles_tags_cut_between_chunks_at_every_position() {
        let whole = "<think>let me see</think>\n\nThe answer is 4.";
        for cut_a in 0..whole.len() {
            for cut_b in cut_a..whole.len() {
                let chunks = [&whole[..cut_a], &whole[cut_a..cut_b], &whole[cut_b..]];
                assert_eq!(run(&chunks), ("The answer is 4.".into(), "let me see".into()), "cuts {cut_a} {cut_b}");
            }
        }
    }

    #[test]
    fn text_without_tags_passes_through_even_with_angle_brackets() {
        assert_eq!(run(&["a < b and <th", "ink about it"]), ("a < b and <think about it".into(), String::new()));
        assert_eq!(run(&["ends with <thi"]), ("ends with <thi".into(), String::new()));
    }

    #[test]
    fn unclosed_reasoning_stays_reasoning() {
        assert_eq!(run(&["<think>still thinking"]), (String::new(), "still thinking".into()));
    }
}
