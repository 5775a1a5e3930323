//! An agent's answer as a list of [`Frame`]s, and playing them as a server-sent event stream.
//!
//! The stream is written by a task of its own into a small channel the response body reads, so the fake sees at
//! once when the client leaves (the channel closes, also in the middle of a pause) and can report how each stream
//! ended ([`StreamEnd`]): that is how a test checks that stopping an answer cancelled the request upstream.

use std::future::Future;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::mpsc;

use super::directives::{ErrorForm, Interruption};

/// One thing an agent does while answering.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `data: <json>`.
    Data(Value),
    /// `data: <text>`, verbatim (a malformed frame).
    Raw(String),
    /// `data: [DONE]`.
    Done,
    /// Nothing for a while.
    Pause(Duration),
    /// Cuts the connection.
    Abort,
    /// Says nothing more, ever (until the client gives up).
    Hang,
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// Every frame was sent.
    Completed,
    /// The client closed the connection first (a stopped answer, a timeout).
    ClientLeft,
    /// The agent cut the connection (`abort_after`, `cut_after`).
    Cut,
}

/// The writing end of a response body.
pub struct Sink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Sink {
    /// Sends raw SSE text; false when the client has left.
    pub async fn send(&self, text: String) -> bool {
        self.tx.send(Ok(Bytes::from(text))).await.is_ok()
    }

    /// Sends `data: <json>`; false when the client has left.
    pub async fn data(&self, value: &Value) -> bool {
        self.send(format!("data: {value}\n\n")).await
    }

    /// Waits; false when the client left meanwhile.
    pub async fn pause(&self, pause: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(pause) => true,
            () = self.tx.closed() => false,
        }
    }

    /// Cuts the connection (the body fails, so the server drops it without finishing the response).
    pub async fn abort(&self) {
        let _ = self.tx.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "fake agent cut"))).await;
    }

    /// Waits until the client leaves.
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}

/// A `text/event-stream` response whose body `produce` writes.
pub fn respond<F, Fut>(produce: F) -> Response
where
    F: FnOnce(Sink) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(produce(Sink { tx }));
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A text delta that stands for the moment it is sent (`stamp=1`): replaced, as it is played, by ` <µs>` of
/// [`crate::clock::micros`], so a benchmark can tell how long the server took to pass each token on.
pub const STAMP: &str = "\u{1}stamp";

/// Plays frames into a sink; returns how the stream ended.
pub async fn play(frames: Vec<Frame>, sink: &Sink) -> StreamEnd {
    for frame in frames {
        let sent = match frame {
            Frame::Data(mut value) => {
                if value.get("delta").and_then(Value::as_str) == Some(STAMP) {
                    value["delta"] = Value::String(format!(" {}", crate::clock::micros()));
                }
                sink.data(&value).await
            }
            Frame::Raw(text) => sink.send(format!("data: {text}\n\n")).await,
            Frame::Done => sink.send("data: [DONE]\n\n".to_owned()).await,
            Frame::Pause(pause) => sink.pause(pause).await,
            Frame::Abort => {
                sink.abort().await;
                return StreamEnd::Cut;
            }
            Frame::Hang => {
                sink.closed().await;
                return StreamEnd::ClientLeft;
            }
        };
        if !sent {
            return StreamEnd::ClientLeft;
        }
    }
    StreamEnd::Completed
}

/// Wraps a response body to learn how it ended: `on_end` is told once the body is dropped, `Completed` when it
/// ran to its end, `Cut` after it failed, `ClientLeft` when it was dropped before (for bodies that are not written
/// by [`respond`], such as chat completions).
pub fn watched<S, F>(body: S, on_end: F) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send
where
    S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    F: FnOnce(StreamEnd) + Send + 'static,
{
    use futures::StreamExt;

    /// Reports the end when dropped, with the body.
    struct Watch<F: FnOnce(StreamEnd)> {
        on_end: Option<F>,
        end: Option<StreamEnd>,
    }
    impl<F: FnOnce(StreamEnd)> Watch<F> {
        fn report(&mut self, end: StreamEnd) {
            if let Some(on_end) = self.on_end.take() {
                on_end(end);
            }
        }
    }
    impl<F: FnOnce(StreamEnd)> Drop for Watch<F> {
        fn drop(&mut self) {
            self.report(self.end.unwrap_or(StreamEnd::ClientLeft));
        }
    }

    let watch = Watch { on_end: Some(on_end), end: None };
    futures::stream::unfold((Box::pin(body), watch), |(mut body, mut watch)| async move {
        match body.next().await {
            Some(Ok(bytes)) => Some((Ok(bytes), (body, watch))),
            Some(Err(error)) => {
                watch.end = Some(StreamEnd::Cut);
                Some((Err(error), (body, watch)))
            }
            None => {
                watch.report(StreamEnd::Completed);
                None
            }
        }
    })
}

/// Appends what `interruptions` do to the stream; false when one of them ended it. `fail` writes a failure in
/// the protocol's own form.
pub fn interrupt(
    frames: &mut Vec<Frame>,
    interruptions: Vec<Interruption>,
    token_delay: Duration,
    mut fail: impl FnMut(&mut Vec<Frame>, ErrorForm),
) -> bool {
    for interruption in interruptions {
        match interruption {
            Interruption::Stall(ms) => frames.push(Frame::Pause(Duration::from_millis(ms))),
            Interruption::Malformed => {
                frames.push(Frame::Raw("{\"type\": \"response.output_text.delta\", this is not json".into()))
            }
            Interruption::Fail(form) => {
                fail(frames, form);
                return false;
            }
            Interruption::Abort => {
                // Let the frames already written reach the client before the connection drops.
                frames.push(Frame::Pause(token_delay.max(Duration::from_millis(10))));
                frames.push(Frame::Abort);
                return false;
            }
            Interruption::Hang => {
                frames.push(Frame::Hang);
                return false;
            }
        }
    }
    true
}

/// The JSON payloads of frames, in order (non-streaming answers and tests read them).
pub fn payloads(frames: &[Frame]) -> impl Iterator<Item = &Value> {
    frames.iter().filter_map(|frame| match frame {
        Frame::Data(value) => Some(value),
        _ => None,
    })
}
