//! Reading UI message streams (SSE) in tests.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;
use shared::{MessageStatus, UiChunk};
use uuid::Uuid;

use crate::helpers::TestApp;

/// Longest a test waits for a whole stream.
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// One SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The `id:` line.
    pub id: Option<u64>,
    /// The `data:` payload.
    pub data: String,
}

impl SseEvent {
    /// The payload as a UI chunk (`None` for `[DONE]`).
    pub fn chunk(&self) -> Option<UiChunk> {
        serde_json::from_str(&self.data).ok()
    }
}

/// A whole streamed turn.
#[derive(Debug)]
pub struct Streamed {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Events in order (for non-2xx: none).
    pub events: Vec<SseEvent>,
    /// The raw body.
    pub raw: String,
}

impl Streamed {
    /// The parsed chunks.
    pub fn chunks(&self) -> Vec<UiChunk> {
        self.events.iter().filter_map(SseEvent::chunk).collect()
    }

    /// The chunks as JSON, as a client sees them.
    pub fn json_chunks(&self) -> Vec<Value> {
        self.events.iter().filter_map(|event| serde_json::from_str(&event.data).ok()).collect()
    }

    /// Concatenated text deltas.
    pub fn text(&self) -> String {
        text_of(&self.chunks())
    }

    /// The body as JSON (error responses).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.raw).unwrap_or(Value::Null)
    }

    /// The final status from the `finish` chunk.
    pub fn final_status(&self) -> Option<MessageStatus> {
        self.chunks().iter().find_map(|c| match c {
            UiChunk::Finish { message_metadata } => message_metadata.as_ref().and_then(|m| m.status),
            _ => None,
        })
    }

    /// The assistant message id from the `start` chunk.
    pub fn message_id(&self) -> Option<Uuid> {
        self.chunks().iter().find_map(|c| match c {
            UiChunk::Start { message_id, .. } => message_id.as_deref().and_then(|id| Uuid::parse_str(id).ok()),
            _ => None,
        })
    }

    /// The `errorText` of an `error` chunk.
    pub fn error_text(&self) -> Option<String> {
        self.chunks().iter().find_map(|c| match c {
            UiChunk::Error { error_text } => Some(error_text.clone()),
            _ => None,
        })
    }

    /// Event ids, in order.
    pub fn ids(&self) -> Vec<u64> {
        // An event without an `id:` line ([DONE]) repeats the last id, as SSE specifies; skip it.
        self.events.iter().filter(|e| e.chunk().is_some()).filter_map(|e| e.id).collect()
    }
}

/// Concatenated text deltas of chunks.
pub fn text_of(chunks: &[UiChunk]) -> String {
    chunks
        .iter()
        .filter_map(|c| match c {
            UiChunk::TextDelta { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect()
}

/// A stream being read event by event; dropping it disconnects.
pub struct OpenStream {
    /// Status code.
    pub status: StatusCode,
    events: std::pin::Pin<Box<dyn Stream<Item = SseEvent> + Send>>,
}

impl OpenStream {
    /// The next event, or `None` at the end.
    pub async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(STREAM_TIMEOUT, self.events.next()).await.expect("an event within the timeout")
    }

    /// Reads events until one carries a chunk matching `until`; returns all read.
    pub async fn read_until(&mut self, until: impl Fn(&UiChunk) -> bool) -> Vec<SseEvent> {
        let mut read = Vec::new();
        while let Some(event) = self.next().await {
            let done = event.chunk().is_some_and(|c| until(&c));
            read.push(event);
            if done {
                break;
            }
        }
        read
    }

    /// Reads until the first text delta containing `needle`.
    pub async fn read_until_text(&mut self, needle: &str) -> Vec<SseEvent> {
        self.read_until(|c| matches!(c, UiChunk::TextDelta { delta, .. } if delta.contains(needle))).await
    }

    /// Reads the rest.
    pub async fn rest(&mut self) -> Vec<SseEvent> {
        let mut read = Vec::new();
        while let Some(event) = self.next().await {
            read.push(event);
        }
        read
    }
}

/// Chunks of events.
pub fn chunks_of(events: &[SseEvent]) -> Vec<UiChunk> {
    events.iter().filter_map(SseEvent::chunk).collect()
}

impl TestApp {
    /// `POST /api/chat` and read the whole response.
    pub async fn post_chat(&self, user: &str, body: Value) -> Streamed {
        self.read_stream(self.request(Some(user), reqwest::Method::POST, "/api/chat").json(&body)).await
    }

    /// `GET /api/chat/{id}/stream` with an optional `Last-Event-ID`, read whole.
    pub async fn resume(&self, user: &str, chat_id: Uuid, last_event_id: Option<u64>) -> Streamed {
        let mut request = self.request(Some(user), reqwest::Method::GET, &format!("/api/chat/{chat_id}/stream"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        self.read_stream(request).await
    }

    /// Sends a request and reads its whole (SSE or other) body.
    pub async fn read_stream(&self, request: reqwest::RequestBuilder) -> Streamed {
        let response = request.send().await.expect("request is sent");
        let status = response.status();
        let headers = response.headers().clone();
        let raw =
            tokio::time::timeout(STREAM_TIMEOUT, response.text()).await.expect("stream ends in time").expect("body");
        let events = if headers
            .get("content-type")
            .is_some_and(|v| v.to_str().is_ok_and(|t| t.starts_with("text/event-stream")))
        {
            parse_sse(&raw).await
        } else {
            Vec::new()
        };
        Streamed { status, headers, events, raw }
    }

    /// `POST /api/chat`, returning the stream to read piecemeal.
    pub async fn open_chat(&self, user: &str, body: Value) -> OpenStream {
        self.open_stream(self.request(Some(user), reqwest::Method::POST, "/api/chat").json(&body)).await
    }

    /// Opens any streaming request.
    pub async fn open_stream(&self, request: reqwest::RequestBuilder) -> OpenStream {
        let response = request.send().await.expect("request is sent");
        let status = response.status();
        let events = response.bytes_stream().eventsource().filter_map(|event| async move {
            let event = event.ok()?;
            Some(SseEvent { id: event.id.parse().ok(), data: event.data })
        });
        OpenStream { status, events: Box::pin(events) }
    }
}

/// Parses a complete SSE body.
pub async fn parse_sse(raw: &str) -> Vec<SseEvent> {
    let bytes = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(raw.to_owned()))]);
    bytes
        .eventsource()
        .filter_map(|event| async move {
            let event = event.ok()?;
            Some(SseEvent { id: event.id.parse().ok(), data: event.data })
        })
        .collect()
        .await
}
