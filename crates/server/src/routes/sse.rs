//! Encoding a turn's chunk stream for the wire: the AI SDK UI message stream over SSE, or plain text.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use shared::{DONE_SENTINEL, UI_STREAM_HEADER, UiChunk};
use uuid::Uuid;

use crate::engine::ChunkStream;

/// Response header with the chat id.
pub const CHAT_ID_HEADER: &str = "x-chat-id";
/// Response header with the assistant message (generation) id.
pub const MESSAGE_ID_HEADER: &str = "x-message-id";

/// The UI message stream: `id: <seq>` + `data: <chunk>` per event, keep-alive comments while silent,
/// `data: [DONE]` at the end.
pub fn ui_message_stream(chunks: ChunkStream, chat_id: Uuid, message_id: Uuid, keepalive: Duration) -> Response {
    let events = chunks
        .map(|(seq, chunk)| {
            let event = Event::default().id(seq.to_string());
            Ok::<Event, Infallible>(event.json_data(&chunk).unwrap_or_else(|_| Event::default().comment("skipped")))
        })
        .chain(futures::stream::once(async { Ok(Event::default().data(DONE_SENTINEL)) }));
    let mut response = Sse::new(events).keep_alive(KeepAlive::new().interval(keepalive).text("ping")).into_response();
    let headers = response.headers_mut();
    headers.insert(HeaderName::from_static(UI_STREAM_HEADER), HeaderValue::from_static("v1"));
    stream_headers(headers, chat_id, message_id);
    response
}

/// The same turn as plain UTF-8 text (AI SDK `TextStreamChatTransport`): answer text only.
pub fn text_stream(chunks: ChunkStream, chat_id: Uuid, message_id: Uuid) -> Response {
    let body = chunks.filter_map(|(_, chunk)| async move {
        match chunk {
            UiChunk::TextDelta { delta, .. } => Some(Ok::<_, Infallible>(delta)),
            _ => None,
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    stream_headers(headers, chat_id, message_id);
    response
}

fn stream_headers(headers: &mut HeaderMap, chat_id: Uuid, message_id: Uuid) {
    // no-transform and x-accel-buffering keep proxies from buffering or compressing the stream.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    headers.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    for (name, value) in [(CHAT_ID_HEADER, chat_id), (MESSAGE_ID_HEADER, message_id)] {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// Whether the client asked for plain text (`Accept: text/plain` without `text/event-stream`).
pub fn wants_plain_text(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    accept.contains("text/plain") && !accept.contains("text/event-stream")
}

/// Whether the client asked not to wait (`Prefer: respond-async`).
pub fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("respond-async"))
}
