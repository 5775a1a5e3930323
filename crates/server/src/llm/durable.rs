//! An agent app that runs answers in background mode (MLflow `LongRunningAgentServer`, AGENTS-PROTOCOL.md §H): the
//! run lives on the agent's side, independent of our connection, and its events are numbered.
//!
//! The answer is started with `background: true, stream: true`. When the connection drops (the Apps proxy cuts long
//! streams, a network blip, the agent's own restart), the stream is taken up again with
//! `GET {app}/responses/{id}?stream=true&starting_after=N` from the last event read, repeats dropped by their
//! `sequence_number`, instead of failing the answer. Every event says how far the run has reached
//! ([`ModelEvent::Upstream`]); the engine stores that with the answer, so after this server restarts the answer is
//! re-attached to the run ([`ModelRequest::resume`]) and completes instead of being marked interrupted.

use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::Eventsource;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::responses::{self, ResponsesParser};
use super::token::TokenSource;
use super::transport::{
    BoxedBytes, Parsed, StreamParser, bearer_for, next_payload, parse_retry_after, send, status_error,
};
use super::{ChatModel, ModelError, ModelRequest, ModelStream};
use crate::config::ClientSettings;

/// Times a dropped stream is taken up again before the answer fails; reset whenever events arrive.
const MAX_RECONNECTS: u32 = 8;
/// First pause before taking a dropped stream up again; doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// A background-mode agent app at `url`.
#[derive(Clone)]
pub struct DurableAgent {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    settings: ClientSettings,
}

/// How one connection to the run ended.
enum Ended {
    /// `[DONE]`: the run is complete.
    Done,
    /// The connection dropped, or the body ended without `[DONE]`.
    Cut,
}

impl DurableAgent {
    /// The agent app at `url` (no trailing slash).
    pub fn new(url: &str, http: reqwest::Client, tokens: Arc<dyn TokenSource>, settings: ClientSettings) -> Self {
        Self { inner: Arc::new(Inner { url: url.trim_end_matches('/').to_owned(), http, tokens, settings }) }
    }
}

impl ChatModel for DurableAgent {
    fn stream(&self, request: ModelRequest) -> ModelStream {
        let inner = self.inner.clone();
        Box::pin(async_stream::stream! {
            let mut parser = match &request.resume {
                // Re-attaching: the run is read from its start to rebuild what streamed; what the answer holds
                // produces nothing.
                Some(run) => ResponsesParser::replaying_through(run.seq),
                None => ResponsesParser::default(),
            };
            let mut resume_id = request.resume.as_ref().map(|run| run.response_id.clone());
            let (mut reconnects, mut pause) = (0u32, FIRST_PAUSE);
            loop {
                let opened = match &resume_id {
                    None => inner.start(&request).await,
                    // From the last event read; from the start (0 counts as "from 0 inclusive") when re-attaching.
                    Some(id) => inner.attach(&request, id, parser.run().map_or(0, |run| run.seq)).await,
                };
                let mut events = match opened {
                    Ok(events) => events,
                    // Before the run exists nothing was generated: the error is the answer's. Once it exists, a
                    // failed reconnect is retried like a cut.
                    Err(error) if resume_id.is_none() || !error.is_retryable() => {
                        yield Err(error);
                        return;
                    }
                    Err(error) => {
                        reconnects += 1;
                        if reconnects > MAX_RECONNECTS {
                            yield Err(error);
                            return;
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(MAX_PAUSE);
                        continue;
                    }
                };
                let ended = loop {
                    match next_payload(&mut events, inner.settings.idle_timeout).await {
                        Ok(Some(data)) => match parser.parse(&data) {
                            Ok(Parsed::Events(parsed)) => {
                                if !parsed.is_empty() {
                                    (reconnects, pause) = (0, FIRST_PAUSE);
                                }
                                for event in parsed {
                                    yield Ok(event);
                                }
                            }
                            Ok(Parsed::Done) => break Ended::Done,
                            Err(error) => {
                                yield Err(error);
                                return;
                            }
                        },
                        Ok(None) => break Ended::Cut,
                        Err(ModelError::Connect | ModelError::Timeout) => break Ended::Cut,
                        Err(error) => {
                            yield Err(error);
                            return;
                        }
                    }
                };
                if matches!(ended, Ended::Done) {
                    break;
                }
                let Some(run) = parser.run() else {
                    // Cut before the run said who it is: nothing was read, so it is started again (a bounded number
                    // of times), as a call that failed before its first token is.
                    reconnects += 1;
                    if reconnects > MAX_RECONNECTS {
                        yield Err(ModelError::Connect);
                        return;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                    continue;
                };
                // A body that ends without `[DONE]` may be a run that failed: ask before reconnecting.
                if let Some(RunStatus::Failed(message)) = inner.status(&request, &run.response_id).await {
                    yield Err(ModelError::Upstream(message));
                    return;
                }
                reconnects += 1;
                if reconnects > MAX_RECONNECTS {
                    yield Err(ModelError::Upstream("the agent's run could not be reached again".into()));
                    return;
                }
                tracing::info!(url = %inner.url, response.id = %run.response_id, after = run.seq, "agent stream dropped; taking it up again");
                resume_id = Some(run.response_id);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            for event in parser.finish() {
                yield Ok(event);
            }
        })
    }
}

/// Where a run stands, from `GET {app}/responses/{id}`.
enum RunStatus {
    /// Still running, or done with events left to read.
    Going,
    /// Failed, with a safe message.
    Failed(String),
}

impl Inner {
    /// Starts the run in background mode and opens its stream.
    async fn start(&self, request: &ModelRequest) -> Result<eventsource_stream::EventStream<BoxedBytes>, ModelError> {
        let mut body = responses::request_body(request);
        body["background"] = Value::Bool(true);
        let body = serde_json::to_vec(&body).map_err(|_| ModelError::Protocol)?;
        let url = format!("{}/responses", self.url);
        let mut attempt = 0;
        loop {
            let builder = self.http.post(&url).header("content-type", "application/json").body(body.clone());
            match self.open(builder, request).await {
                Err(error) if error.is_retryable() && attempt < self.settings.max_retries => {
                    attempt += 1;
                    let pause =
                        error.retry_after().unwrap_or(self.settings.retry_base_delay * 2u32.pow(attempt as u32));
                    tokio::time::sleep(pause.min(self.settings.max_retry_wait)).await;
                }
                result => return result,
            }
        }
    }

    /// Opens the run's stream after event `after` (from its start when `None`).
    async fn attach(
        &self,
        request: &ModelRequest,
        response_id: &str,
        after: u64,
    ) -> Result<eventsource_stream::EventStream<BoxedBytes>, ModelError> {
        let url = format!("{}/responses/{}", self.url, urlencode(response_id));
        let query = [("stream", "true".to_owned()), ("starting_after", after.to_string())];
        self.open(self.http.get(url).query(&query), request).await
    }

    /// Where the run stands; `None` when that cannot be told.
    async fn status(&self, request: &ModelRequest, response_id: &str) -> Option<RunStatus> {
        let url = format!("{}/responses/{}", self.url, urlencode(response_id));
        let builder = self.authorized(self.http.get(url), request).await.ok()?;
        let response = tokio::time::timeout(self.settings.idle_timeout, builder.send()).await.ok()?.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().await.ok()?;
        Some(match body.get("status").and_then(Value::as_str) {
            Some("failed" | "cancelled" | "incomplete") => {
                let message =
                    body.pointer("/error/message").and_then(Value::as_str).unwrap_or("the agent's run failed");
                RunStatus::Failed(super::transport::safe_message(message))
            }
            _ => RunStatus::Going,
        })
    }

    async fn authorized(
        &self,
        builder: reqwest::RequestBuilder,
        request: &ModelRequest,
    ) -> Result<reqwest::RequestBuilder, ModelError> {
        Ok(match bearer_for(self.tokens.as_ref(), request).await? {
            Some(token) => builder.bearer_auth(token.expose_secret()),
            None => builder,
        })
    }

    async fn open(
        &self,
        builder: reqwest::RequestBuilder,
        request: &ModelRequest,
    ) -> Result<eventsource_stream::EventStream<BoxedBytes>, ModelError> {
        let mut builder = builder.header("accept", "text/event-stream");
        for (name, value) in responses::HEADERS {
            builder = builder.header(name, value);
        }
        let builder = self.authorized(builder, request).await?;
        let response = send(builder, self.settings.idle_timeout).await?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = parse_retry_after(response.headers());
            // An error body that never ends must not hold the answer: the same limit as for silence.
            let body = tokio::time::timeout(self.settings.idle_timeout, response.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            if status == StatusCode::UNAUTHORIZED && request.user_token.is_none() {
                self.tokens.invalidate();
            }
            return Err(status_error(status, retry_after, &body));
        }
        let bytes: BoxedBytes = Box::pin(response.bytes_stream());
        Ok(bytes.eventsource())
    }
}

/// A response id as a path segment (they are `resp_<hex>`, but nothing from outside goes into a URL unescaped).
fn urlencode(id: &str) -> String {
    id.chars()
        .flat_map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' | '~' => vec![c.to_string()],
            other => other.to_string().bytes().map(|b| format!("%{b:02X}")).collect(),
        })
        .collect()
}

/// Whether the agent app at `url` runs answers in background mode: a `LongRunningAgentServer` answers an unknown
/// run with 404 "Response not found" (a plain AgentServer has no such route: 404 "Not Found"; without its
/// database it answers 501).
pub async fn offers_background(http: &reqwest::Client, url: &str, token: Option<&secrecy::SecretString>) -> bool {
    let probe = format!("{url}/responses/resp_{}", uuid::Uuid::new_v4().simple());
    let mut builder = http.get(probe).timeout(Duration::from_secs(10));
    if let Some(token) = token {
        builder = builder.bearer_auth(token.expose_secret());
    }
    let Ok(response) = builder.send().await else { return false };
    if response.status() != StatusCode::NOT_FOUND {
        return false;
    }
    response.text().await.is_ok_and(|body| body.contains("Response not found"))
}

#[cfg(test)]
mod tests {
    use super::urlencode;

    #[test]
    fn response_ids_are_escaped_in_paths() {
        assert_eq!(urlencode("resp_0a1B"), "resp_0a1B");
        assert_eq!(urlencode("a/b?c"), "a%2Fb%3Fc");
    }
}
