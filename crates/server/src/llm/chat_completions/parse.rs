//! Turns the `data:` payloads of an OpenAI-compatible stream into [`ModelEvent`]s.

use shared::Usage;

use super::tool_calls::{CallAssembler, TextCalls};
use super::wire::{Chunk, Content, Delta};
use crate::llm::think::{Segment, ThinkSplitter};
use crate::llm::transport::{Parsed, StreamParser, classify_error};
use crate::llm::{ModelError, ModelEvent};

/// Stateful parser for one response stream.
#[derive(Debug, Default)]
pub struct ChunkParser {
    think: ThinkSplitter,
    calls: CallAssembler,
    printed: TextCalls,
}

impl StreamParser for ChunkParser {
    fn parse(&mut self, data: &str) -> Result<Parsed, ModelError> {
        self.parse_payload(data)
    }

    fn finish(&mut self) -> Vec<ModelEvent> {
        let mut events = Vec::new();
        for segment in self.think.finish() {
            self.segment(segment, &mut events);
        }
        self.end_calls(&mut events);
        events
    }
}

impl ChunkParser {
    /// A parser for an answer to a request that offered these tools (none: no calls printed as text are looked
    /// for).
    pub fn new(tools: Vec<String>) -> Self {
        Self { printed: TextCalls::new(tools), ..Self::default() }
    }

    /// The calls of the step are complete (its finish reason, or the end of the stream): their arguments, and the
    /// text held back as possible printed calls.
    fn end_calls(&mut self, events: &mut Vec<ModelEvent>) {
        match self.printed.finish() {
            Ok(calls) => events.extend(calls.into_iter().map(ModelEvent::Content)),
            Err(text) if !text.is_empty() => events.push(ModelEvent::text(text)),
            Err(_) => {}
        }
        if !self.calls.is_empty() {
            let mut out = Vec::new();
            self.calls.finish(&mut out);
            events.extend(out.into_iter().map(ModelEvent::Content));
        }
    }

    /// Parses one `data:` payload.
    fn parse_payload(&mut self, data: &str) -> Result<Parsed, ModelError> {
        let data = data.trim();
        if data.starts_with("[DONE]") {
            return Ok(Parsed::Done);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|_| ModelError::Protocol)?;
        if let Some(error) = chunk_error(&chunk) {
            return Err(error);
        }
        let mut events = Vec::new();
        for choice in chunk.choices {
            if let Some(delta) = choice.delta.or(choice.message) {
                self.delta_events(delta, &mut events);
            }
            if let Some(reason) = choice.finish_reason {
                for segment in self.think.finish() {
                    self.segment(segment, &mut events);
                }
                self.end_calls(&mut events);
                events.push(ModelEvent::Finished(Some(reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            events.push(ModelEvent::Usage(Usage {
                input_tokens: usage.prompt_tokens,
                output_tokens: usage.completion_tokens,
            }));
        }
        Ok(Parsed::Events(events))
    }

    fn delta_events(&mut self, delta: Delta, events: &mut Vec<ModelEvent>) {
        for reasoning in [delta.reasoning_content, delta.reasoning].into_iter().flatten() {
            if !reasoning.is_empty() {
                events.push(ModelEvent::reasoning(reasoning));
            }
        }
        match delta.content {
            Some(Content::Text(text)) => self.text(&text, events),
            Some(Content::Parts(parts)) => {
                for part in parts {
                    match part.kind.as_str() {
                        "text" => self.text(part.text.as_deref().unwrap_or_default(), events),
                        "reasoning" => {
                            for summary in part.summary.into_iter().flatten() {
                                if summary.kind == "summary_text"
                                    && let Some(text) = summary.text.filter(|t| !t.is_empty())
                                {
                                    events.push(ModelEvent::reasoning(text));
                                }
                            }
                        }
                        // Images, encrypted reasoning and future part types carry no displayable text.
                        _ => {}
                    }
                }
            }
            None => {}
        }
        if let Some(pieces) = delta.tool_calls.filter(|pieces| !pieces.is_empty()) {
            let mut out = Vec::new();
            self.calls.push(pieces, &mut out);
            events.extend(out.into_iter().map(ModelEvent::Content));
        }
    }

    fn text(&mut self, text: &str, events: &mut Vec<ModelEvent>) {
        if !text.is_empty() {
            for segment in self.think.push(text) {
                self.segment(segment, events);
            }
        }
    }

    fn segment(&mut self, segment: Segment, events: &mut Vec<ModelEvent>) {
        match segment {
            Segment::Text(text) => {
                if let Some(text) = self.printed.push(&text) {
                    events.push(ModelEvent::text(text));
                }
            }
            Segment::Reasoning(text) => events.push(ModelEvent::reasoning(text)),
        }
    }
}

/// An error sent inside the stream (OpenAI `{"error":...}` or Databricks `{"error_code":...}`).
fn chunk_error(chunk: &Chunk) -> Option<ModelError> {
    if let Some(code) = &chunk.error_code {
        return Some(classify_error(code, chunk.message.as_deref().unwrap_or(code)));
    }
    let error = chunk.error.as_ref()?;
    let message = error.get("message").and_then(|m| m.as_str()).or_else(|| error.as_str()).unwrap_or("error");
    let code = error.get("code").map(|c| c.to_string().trim_matches('"').to_owned()).unwrap_or_default();
    Some(classify_error(&code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(parser: &mut ChunkParser, data: &str) -> Vec<ModelEvent> {
        match parser.parse(data).expect("parses") {
            Parsed::Events(events) => events,
            Parsed::Done => panic!("unexpected done"),
        }
    }

    #[test]
    fn string_content_and_role_chunks() {
        let mut parser = ChunkParser::default();
        assert!(
            events(
                &mut parser,
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#
            )
            .is_empty()
        );
        assert_eq!(
            events(&mut parser, r#"{"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}"#),
            vec![ModelEvent::text("Hello")]
        );
        assert_eq!(parser.parse("[DONE]").expect("done"), Parsed::Done);
    }

    #[test]
    fn list_content_with_reasoning_summary_and_text() {
        let mut parser = ChunkParser::default();
        let data = r#"{"choices":[{"delta":{"content":[
            {"type":"reasoning","summary":[{"type":"summary_text","text":"think","signature":"s"},{"type":"summary_encrypted_text","data":"x"}]},
            {"type":"text","text":"Answer"},{"type":"image","image_url":"u"}]}}]}"#;
        assert_eq!(events(&mut parser, data), vec![ModelEvent::reasoning("think"), ModelEvent::text("Answer")]);
    }

    #[test]
    fn reasoning_content_fields() {
        let mut parser = ChunkParser::default();
        assert_eq!(
            events(&mut parser, r#"{"choices":[{"delta":{"reasoning_content":"a"}}]}"#),
            vec![ModelEvent::reasoning("a")]
        );
        assert_eq!(
            events(&mut parser, r#"{"choices":[{"delta":{"reasoning":"b"}}]}"#),
            vec![ModelEvent::reasoning("b")]
        );
    }

    #[test]
    fn usage_on_every_chunk_and_on_an_empty_choices_chunk() {
        let mut parser = ChunkParser::default();
        let llama = r#"{"choices":[{"index":0,"delta":{"content":"The ","role":null},"finish_reason":null,"logprobs":null}],
                        "usage":{"completion_tokens":2,"prompt_tokens":20,"total_tokens":22}}"#;
        assert_eq!(
            events(&mut parser, llama),
            vec![ModelEvent::text("The "), ModelEvent::Usage(Usage { input_tokens: Some(20), output_tokens: Some(2) })]
        );
        let usage_only = r#"{"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":57,"total_tokens":77}}"#;
        assert_eq!(
            events(&mut parser, usage_only),
            vec![ModelEvent::Usage(Usage { input_tokens: Some(20), output_tokens: Some(57) })]
        );
    }

    #[test]
    fn finish_reason_with_an_empty_delta() {
        let mut parser = ChunkParser::default();
        assert_eq!(
            events(&mut parser, r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#),
            vec![ModelEvent::Finished(Some("length".into()))]
        );
    }

    #[test]
    fn think_tags_become_reasoning() {
        let mut parser = ChunkParser::default();
        let mut all = events(&mut parser, r#"{"choices":[{"delta":{"content":"<thi"}}]}"#);
        all.extend(events(&mut parser, r#"{"choices":[{"delta":{"content":"nk>why</think>Because"}}]}"#));
        all.extend(parser.finish());
        assert_eq!(all, vec![ModelEvent::reasoning("why"), ModelEvent::text("Because")]);
    }

    #[test]
    fn errors_inside_the_stream() {
        let mut parser = ChunkParser::default();
        assert_eq!(
            parser.parse(r#"{"error":{"message":"overloaded","type":"server_error","code":500}}"#),
            Err(ModelError::Upstream("overloaded".into()))
        );
        assert_eq!(
            parser.parse(r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"REQUEST_LIMIT_EXCEEDED: Exceeded workspace rate limit"}"#),
            Err(ModelError::RateLimited { retry_after: None })
        );
        assert_eq!(parser.parse("{not json"), Err(ModelError::Protocol));
    }
}
