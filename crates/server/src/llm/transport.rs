//! The HTTP transport every remote protocol shares: one POST that answers with a server-sent event stream.
//!
//! Before the first content a failed attempt (connection error, 5xx, 429, an error event, a malformed chunk,
//! silence) is retried with exponential backoff, honouring `Retry-After`; the caller sees a
//! [`ModelEvent::Retrying`] for each pause. A 401 on the app's token fetches a fresh token once. After the first
//! content nothing is retried: the text already shown must not be generated twice, so a failure ends the stream
//! with an error. A protocol ([`WireProtocol`]) only says where to send what, and how to read what comes back.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use eventsource_stream::{EventStream, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::ExposeSecret;

use super::token::TokenSource;
use super::{ChatModel, ModelError, ModelEvent, ModelRequest, ModelStream};
use crate::config::ClientSettings;

/// Longest upstream error message passed on to users.
const MAX_UPSTREAM_MESSAGE: usize = 300;

/// What one `data:` payload of a response stream meant.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Content or metadata (possibly nothing, e.g. a role-only chunk).
    Events(Vec<ModelEvent>),
    /// The stream is complete (`[DONE]`, or the protocol's own end).
    Done,
}

/// Reads one response stream of a protocol.
pub trait StreamParser: Send + 'static {
    /// Parses one `data:` payload; an error ends the stream.
    fn parse(&mut self, data: &str) -> Result<Parsed, ModelError>;

    /// Releases anything held back (call at the end of the stream).
    fn finish(&mut self) -> Vec<ModelEvent>;
}

/// A protocol spoken over the shared transport: its URL, its request body and its stream parser.
pub trait WireProtocol: Send + Sync + 'static {
    /// The parser of one response.
    type Parser: StreamParser;

    /// Where to send the request.
    fn url(&self, request: &ModelRequest) -> String;

    /// The request body (JSON).
    fn body(&self, request: &ModelRequest) -> Result<Vec<u8>, ModelError>;

    /// Headers beyond the content type and the bearer token.
    fn headers(&self, _request: &ModelRequest) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    /// A parser for one response.
    fn parser(&self, request: &ModelRequest) -> Self::Parser;
}

/// A model reached over HTTP with protocol `P`. Cheap to clone.
pub struct HttpModel<P: WireProtocol> {
    inner: Arc<Inner<P>>,
}

impl<P: WireProtocol> Clone for HttpModel<P> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

struct Inner<P> {
    protocol: P,
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    settings: ClientSettings,
}

/// A response that produced its first content (or ended cleanly before any).
struct Opened<Parser> {
    /// Events read while looking for the first content, in order.
    head: Vec<ModelEvent>,
    /// The rest of the response, `None` when it already ended.
    rest: Option<(EventStream<BoxedBytes>, Parser)>,
}

pub(super) type BoxedBytes = std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The HTTP client settings every model client should use.
pub fn http_client(settings: &ClientSettings) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(30))
        .tcp_nodelay(true);
    let builder = if settings.http2_prior_knowledge { builder.http2_prior_knowledge() } else { builder };
    builder.build()
}

impl<P: WireProtocol> HttpModel<P> {
    /// A client speaking `protocol`.
    pub fn new(protocol: P, http: reqwest::Client, tokens: Arc<dyn TokenSource>, settings: ClientSettings) -> Self {
        Self { inner: Arc::new(Inner { protocol, http, tokens, settings }) }
    }
}

impl<P: WireProtocol> ChatModel for HttpModel<P> {
    fn stream(&self, request: ModelRequest) -> ModelStream {
        let inner = self.inner.clone();
        Box::pin(async_stream::stream! {
            let body = match inner.protocol.body(&request) {
                Ok(body) => Bytes::from(body),
                Err(error) => {
                    yield Err(error);
                    return;
                }
            };
            let url = inner.protocol.url(&request);
            let (retry_tx, mut retry_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
            let settings = &inner.settings;
            let backoff = ExponentialBuilder::default()
                .with_min_delay(settings.retry_base_delay)
                .with_max_delay(Duration::from_secs(8))
                .with_max_times(settings.max_retries)
                .with_jitter();
            let opened = {
                let opening = (|| inner.open(&url, &body, &request))
                    .retry(backoff)
                    .when(|error: &ModelError| {
                        error.is_retryable() && error.retry_after().is_none_or(|wait| wait <= settings.max_retry_wait)
                    })
                    .adjust(|error: &ModelError, pause| pause.map(|pause| error.retry_after().unwrap_or(pause)))
                    .notify(|error: &ModelError, pause| {
                        tracing::warn!(error = %error, retry_in_ms = pause.as_millis() as u64, "model call failed before the first token; retrying");
                        let _ = retry_tx.send(pause);
                    });
                tokio::pin!(opening);
                loop {
                    tokio::select! {
                        biased;
                        Some(pause) = retry_rx.recv() => yield Ok(ModelEvent::Retrying { after: pause }),
                        result = &mut opening => break result,
                    }
                }
            };
            let Opened { head, rest } = match opened {
                Ok(opened) => opened,
                Err(error) => {
                    yield Err(error);
                    return;
                }
            };
            // No more retries: the prompt (the whole history, up to the token budget) need not stay in memory
            // for the rest of the answer.
            drop((request, body, url));
            for event in head {
                yield Ok(event);
            }
            let Some((mut events, mut parser)) = rest else { return };
            loop {
                match next_payload(&mut events, settings.idle_timeout).await {
                    Ok(Some(data)) => match parser.parse(&data) {
                        Ok(Parsed::Events(parsed)) => {
                            for event in parsed {
                                yield Ok(event);
                            }
                        }
                        Ok(Parsed::Done) => break,
                        Err(error) => {
                            yield Err(error);
                            return;
                        }
                    },
                    // A body that ends without [DONE] is accepted as complete (several servers omit it).
                    Ok(None) => break,
                    Err(error) => {
                        yield Err(error);
                        return;
                    }
                }
            }
            for event in parser.finish() {
                yield Ok(event);
            }
        })
    }
}

impl<P: WireProtocol> Inner<P> {
    /// One attempt: send the request and read until the first content event.
    async fn open(&self, url: &str, body: &Bytes, request: &ModelRequest) -> Result<Opened<P::Parser>, ModelError> {
        let mut refreshed = false;
        let response = loop {
            let mut builder = self
                .http
                .post(url)
                .header("accept", "text/event-stream")
                .header("content-type", "application/json")
                .body(body.clone());
            for (name, value) in self.protocol.headers(request) {
                builder = builder.header(name, value);
            }
            if let Some(token) = bearer_for(self.tokens.as_ref(), request).await? {
                builder = builder.bearer_auth(token.expose_secret());
            }
            let response = send(builder, self.settings.idle_timeout).await?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && request.user_token.is_none() && !refreshed {
                // A cached app token may have been revoked early: get a fresh one and try once more.
                self.tokens.invalidate();
                refreshed = true;
                continue;
            }
            if !status.is_success() {
                let retry_after = parse_retry_after(response.headers());
                let body = tokio::time::timeout(self.settings.idle_timeout, response.text())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                let error = status_error(status, retry_after, &body);
                return Err(match error {
                    ModelError::Unauthorized(message) if request.user_token.is_some() => {
                        ModelError::UserTokenRejected(message)
                    }
                    other => other,
                });
            }
            break response;
        };
        let bytes: BoxedBytes = Box::pin(response.bytes_stream());
        let mut events = bytes.eventsource();
        let mut parser = self.protocol.parser(request);
        let mut head = Vec::new();
        loop {
            let Some(data) = next_payload(&mut events, self.settings.idle_timeout).await? else {
                head.extend(parser.finish());
                return Ok(Opened { head, rest: None });
            };
            match parser.parse(&data)? {
                Parsed::Done => {
                    head.extend(parser.finish());
                    return Ok(Opened { head, rest: None });
                }
                Parsed::Events(parsed) => {
                    let has_content = parsed.iter().any(ModelEvent::is_content);
                    head.extend(parsed);
                    if has_content {
                        return Ok(Opened { head, rest: Some((events, parser)) });
                    }
                }
            }
        }
    }
}

/// The token a model call carries: the user's own under `MODEL_AUTH=user`, else the app's (none for a local
/// endpoint).
pub(super) async fn bearer_for(
    tokens: &dyn TokenSource,
    request: &ModelRequest,
) -> Result<Option<secrecy::SecretString>, ModelError> {
    match &request.user_token {
        Some(token) => Ok(Some(token.clone())),
        None => tokens.bearer().await,
    }
}

/// Sends a request, waiting at most `idle` for the response's headers.
pub(super) async fn send(builder: reqwest::RequestBuilder, idle: Duration) -> Result<reqwest::Response, ModelError> {
    match tokio::time::timeout(idle, builder.send()).await {
        Err(_) => Err(ModelError::Timeout),
        Ok(Err(error)) if error.is_timeout() => Err(ModelError::Timeout),
        Ok(Err(_)) => Err(ModelError::Connect),
        Ok(Ok(response)) => Ok(response),
    }
}

/// The next `data:` payload, skipping comments and named non-data events; `None` at the end of the body.
pub(super) async fn next_payload(
    events: &mut EventStream<BoxedBytes>,
    idle: Duration,
) -> Result<Option<String>, ModelError> {
    loop {
        match tokio::time::timeout(idle, events.next()).await {
            Err(_) => return Err(ModelError::Timeout),
            Ok(None) => return Ok(None),
            Ok(Some(Err(eventsource_stream::EventStreamError::Transport(_)))) => return Err(ModelError::Connect),
            Ok(Some(Err(_))) => return Err(ModelError::Protocol),
            Ok(Some(Ok(event))) => {
                if event.event == "error" {
                    return Err(ModelError::Upstream(error_body_message(&event.data)));
                }
                if !(event.event.is_empty() || event.event == "message") || event.data.trim().is_empty() {
                    continue;
                }
                return Ok(Some(event.data));
            }
        }
    }
}

pub(super) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

pub(super) fn status_error(status: StatusCode, retry_after: Option<Duration>, body: &str) -> ModelError {
    let message = error_body_message(body);
    match status {
        StatusCode::TOO_MANY_REQUESTS => ModelError::RateLimited { retry_after },
        StatusCode::SERVICE_UNAVAILABLE if retry_after.is_some() => ModelError::RateLimited { retry_after },
        _ if is_rate_limit_body(body) => ModelError::RateLimited { retry_after },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ModelError::Unauthorized(message),
        StatusCode::NOT_FOUND => ModelError::NotFound(message),
        StatusCode::REQUEST_TIMEOUT => ModelError::Timeout,
        s if s.is_server_error() => ModelError::Upstream(if message.is_empty() { s.to_string() } else { message }),
        _ => ModelError::Rejected(message),
    }
}

/// An error that arrived inside a stream, by its code (`429`, Databricks `REQUEST_LIMIT_EXCEEDED`, ...).
pub fn classify_error(code: &str, message: &str) -> ModelError {
    if code == "429"
        || code.eq_ignore_ascii_case("REQUEST_LIMIT_EXCEEDED")
        || code.eq_ignore_ascii_case("rate_limit_exceeded")
    {
        ModelError::RateLimited { retry_after: None }
    } else {
        ModelError::Upstream(safe_message(message))
    }
}

/// Shortens an upstream message to something fit to show a user.
pub fn safe_message(message: &str) -> String {
    let message = message.trim();
    if message.chars().count() <= MAX_UPSTREAM_MESSAGE {
        return message.to_owned();
    }
    let mut short: String = message.chars().take(MAX_UPSTREAM_MESSAGE).collect();
    short.push('…');
    short
}

/// Best-effort message from a non-2xx body: OpenAI, Databricks and legacy shapes, or plain text.
pub fn error_body_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|value| {
        value
            .pointer("/error/message")
            .or_else(|| value.get("message"))
            .or_else(|| value.get("error"))
            .or_else(|| value.get("detail"))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
    });
    safe_message(&from_json.unwrap_or_else(|| body.to_owned()))
}

/// Whether a non-2xx body is a Databricks rate-limit error (some gateways send it with status 400).
fn is_rate_limit_body(body: &str) -> bool {
    body.contains("REQUEST_LIMIT_EXCEEDED")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "3".parse().expect("header"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(3)));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        headers.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().expect("header"));
        let parsed = parse_retry_after(&headers).expect("date");
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120), "{parsed:?}");
        headers.insert(RETRY_AFTER, "soon".parse().expect("header"));
        assert_eq!(parse_retry_after(&headers), None);
    }

    #[test]
    fn statuses_map_to_errors() {
        assert_eq!(
            status_error(StatusCode::TOO_MANY_REQUESTS, None, ""),
            ModelError::RateLimited { retry_after: None }
        );
        assert_eq!(
            status_error(StatusCode::BAD_REQUEST, None, r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"x"}"#),
            ModelError::RateLimited { retry_after: None }
        );
        assert!(matches!(status_error(StatusCode::FORBIDDEN, None, "{}"), ModelError::Unauthorized(_)));
        assert!(matches!(status_error(StatusCode::BAD_GATEWAY, None, ""), ModelError::Upstream(_)));
        assert_eq!(
            status_error(StatusCode::BAD_REQUEST, None, r#"{"error":{"message":"prompt too long"}}"#),
            ModelError::Rejected("prompt too long".into())
        );
    }

    #[test]
    fn error_bodies_of_every_shape() {
        assert_eq!(error_body_message(r#"{"error":{"message":"bad model"}}"#), "bad model");
        assert_eq!(error_body_message(r#"{"error_code":"NOT_FOUND","message":"no endpoint"}"#), "no endpoint");
        assert_eq!(error_body_message(r#"{"error":"legacy"}"#), "legacy");
        assert_eq!(error_body_message("plain text"), "plain text");
        assert_eq!(error_body_message(&"x".repeat(1000)).chars().count(), 301);
    }
}
