//! A chat client that records exactly what it was told: whether its message was acknowledged, the answer's id,
//! the text it received (with arrival times), and how the stream ended. It can leave a stream early on purpose,
//! resume it by event id, send the same message again, or stop the answer, as real clients do.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::StatusCode;
use shared::{MessageStatus, UiChunk};
use uuid::Uuid;

/// What one turn's client does.
#[derive(Debug, Clone)]
pub struct TurnPlan {
    /// Who sends it (`x-forwarded-email`).
    pub user: String,
    /// Chat (created by the first turn).
    pub chat_id: Uuid,
    /// The message's client id: a second request with it must not store a second message.
    pub client_message_id: String,
    /// The message text (a unique word plus the fake model's directives).
    pub message: String,
    /// The answer the model would stream in full.
    pub full_text: String,
    /// When the client leaves the stream.
    pub leave: Leave,
    /// What it does after leaving on purpose.
    pub then: AfterLeaving,
    /// The owner presses stop after this many text tokens.
    pub stop_after: Option<usize>,
    /// When the stream breaks (its server went away), resume by event id, through another replica, as the web app
    /// does, until the answer's end.
    pub resume_on_break: bool,
    /// What the stored answer must look like once the scenario settles.
    pub expect: Expect,
}

/// When a client leaves its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// Reads to the end.
    Never,
    /// Drops the request this long after sending it, possibly before any response.
    AfterMillis(u64),
    /// Drops the stream after this many text tokens.
    AfterTokens(usize),
}

/// What a client does after leaving on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterLeaving {
    /// Nothing more.
    Nothing,
    /// Resumes with `GET /api/chat/{id}/stream` and the last event id it saw.
    Resume,
    /// Sends the same message (same client id) again, as a client retrying a failed request does.
    SendAgain,
}

/// The stored answer a scenario demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// Acceptable terminal statuses.
    pub statuses: Vec<MessageStatus>,
    /// The exact stored text, when the scenario determines it.
    pub text: Option<String>,
}

impl Expect {
    /// Any terminal status.
    pub fn terminal() -> Self {
        use MessageStatus::*;
        Self { statuses: vec![Complete, Stopped, Error, Interrupted], text: None }
    }

    /// Exactly this status and text.
    pub fn exactly(status: MessageStatus, text: &str) -> Self {
        Self { statuses: vec![status], text: Some(text.to_owned()) }
    }

    /// One of these statuses, any text.
    pub fn one_of(statuses: &[MessageStatus]) -> Self {
        Self { statuses: statuses.to_vec(), text: None }
    }
}

/// What the client observed.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    /// The plan it followed.
    pub plan: TurnPlan,
    /// The server confirmed the message (a stream with `X-Message-Id`, or 202).
    pub acknowledged: bool,
    /// The answer's id (`X-Message-Id`).
    pub answer_id: Option<Uuid>,
    /// Answer text received, in order (across a resume).
    pub text: String,
    /// Arrival time and text length after each text token (for bounds on what a crash may lose).
    pub arrivals: Vec<(Instant, usize)>,
    /// Status in the `finish` chunk, when the client read that far.
    pub finish: Option<MessageStatus>,
    /// When the `finish` chunk arrived.
    pub finished_at: Option<Instant>,
    /// The client left the stream on purpose.
    pub left: bool,
    /// The answer id returned by sending the same message again, and the text that replay streamed.
    pub resent: Option<(Option<Uuid>, Option<MessageStatus>, String)>,
    /// HTTP status or transport failure, when the turn was not acknowledged or the stream broke.
    pub failure: Option<String>,
    /// Whether the client saw a `data-status` retrying chunk.
    pub saw_retrying: bool,
    /// Last event id seen.
    last_event_id: u64,
}

impl TurnRecord {
    fn new(plan: TurnPlan) -> Self {
        Self {
            plan,
            acknowledged: false,
            answer_id: None,
            text: String::new(),
            arrivals: Vec::new(),
            finish: None,
            finished_at: None,
            left: false,
            resent: None,
            failure: None,
            saw_retrying: false,
            last_event_id: 0,
        }
    }

    /// Whether the client read the stream to its `finish` chunk (directly or after resuming).
    pub fn saw_end(&self) -> bool {
        self.finish.is_some()
    }
}

/// A client for one server, or for replicas behind the proxy.
#[derive(Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    /// `http://host:port` (behind the proxy: its HTTP/1.1 entrance).
    pub base_url: String,
    spread: Option<Spread>,
}

/// How a turn's requests are spread over replicas behind the proxy: by the chat's id, half the chats through the
/// entrance that speaks HTTP/2 cleartext to the replicas, and the start, the resume and the stop of one turn each on
/// a different replica.
#[derive(Clone)]
struct Spread {
    replicas: usize,
    h2c_url: String,
}

/// The requests of a turn that go to replicas of their own.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// `POST /api/chat` (and sending it again).
    Start = 0,
    /// `GET /api/chat/{id}/stream`.
    Resume = 1,
    /// `POST /api/chat/{id}/stop`.
    Stop = 2,
}

/// How a stream reading ended.
enum ReadEnd {
    Finished,
    Left,
    Broken(String),
}

impl ChatClient {
    /// A client with a connection pool large enough for the suite's concurrency.
    pub fn new(base_url: &str) -> anyhow::Result<Self> {
        let http =
            reqwest::Client::builder().pool_max_idle_per_host(1024).connect_timeout(Duration::from_secs(5)).build()?;
        Ok(Self { http, base_url: base_url.to_owned(), spread: None })
    }

    /// A client of `replicas` server processes behind `proxy`.
    pub fn through(proxy: &crate::proxy::Proxy, replicas: usize) -> anyhow::Result<Self> {
        use crate::proxy::Upstream;
        let mut client = Self::new(proxy.url(Upstream::Http1))?;
        client.spread = Some(Spread { replicas, h2c_url: proxy.url(Upstream::H2c).to_owned() });
        Ok(client)
    }

    /// The same HTTP client, pointed at another server (after a restart on a new port).
    pub fn at(&self, base_url: &str) -> Self {
        Self { http: self.http.clone(), base_url: base_url.to_owned(), spread: self.spread.clone() }
    }

    /// The replica that `step` of a turn in `chat_id` is sent to (`None`: one server, or the proxy's choice).
    pub fn replica_for(&self, chat_id: Uuid, step: Step) -> Option<usize> {
        let spread = self.spread.as_ref()?;
        Some(((chat_id.as_u128() >> 1) as usize + step as usize) % spread.replicas.max(1))
    }

    /// A JSON request as `user` sent to one replica (behind the proxy), with its status and body.
    pub async fn on_replica(
        &self,
        method: reqwest::Method,
        replica: usize,
        user: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, serde_json::Value), String> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header("x-forwarded-email", user)
            .header(crate::proxy::REPLICA_HEADER, replica.to_string());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| error_kind(&e).to_owned())?;
        let status = response.status();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        Ok((status, body))
    }

    /// A request for `step` of a turn in `chat_id`: through the chat's entrance, to the step's replica.
    fn turn_request(&self, method: reqwest::Method, chat_id: Uuid, step: Step, path: &str) -> reqwest::RequestBuilder {
        let base = match &self.spread {
            Some(spread) if chat_id.as_u128() & 1 == 1 => spread.h2c_url.as_str(),
            _ => self.base_url.as_str(),
        };
        let request = self.http.request(method, format!("{base}{path}"));
        match self.replica_for(chat_id, step) {
            Some(replica) => request.header(crate::proxy::REPLICA_HEADER, replica.to_string()),
            None => request,
        }
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Runs a turn as planned and records what happened. Never fails: failures are part of the record.
    pub async fn run_turn(&self, plan: TurnPlan) -> TurnRecord {
        let mut record = TurnRecord::new(plan);
        let leave_at = match record.plan.leave {
            Leave::AfterMillis(ms) => Some(tokio::time::Instant::now() + Duration::from_millis(ms)),
            _ => None,
        };
        let attempt = async {
            let response = self.post_turn(&record.plan).await;
            self.read_response(&mut record, response).await
        };
        let end = match leave_at {
            Some(at) => tokio::select! {
                end = attempt => end,
                () = tokio::time::sleep_until(at) => ReadEnd::Left,
            },
            None => attempt.await,
        };
        match end {
            ReadEnd::Finished => {}
            ReadEnd::Broken(reason) if record.plan.resume_on_break && record.acknowledged => {
                if let Err(resumed) = self.resume_until_end(&mut record).await {
                    record.failure = Some(format!("{reason}, then {resumed}"));
                }
            }
            ReadEnd::Broken(reason) => record.failure = Some(reason),
            ReadEnd::Left => {
                record.left = true;
                self.after_leaving(&mut record).await;
            }
        }
        record
    }

    async fn post_turn(&self, plan: &TurnPlan) -> reqwest::Result<reqwest::Response> {
        let body = serde_json::json!({
            "id": plan.chat_id,
            "message": {
                "id": plan.client_message_id,
                "role": "user",
                "parts": [{"type": "text", "text": plan.message}],
            },
        });
        self.turn_request(reqwest::Method::POST, plan.chat_id, Step::Start, "/api/chat")
            .header("x-forwarded-email", &plan.user)
            .json(&body)
            .send()
            .await
    }

    /// Reads a `POST /api/chat` response into the record.
    async fn read_response(&self, record: &mut TurnRecord, response: reqwest::Result<reqwest::Response>) -> ReadEnd {
        let response = match response {
            Ok(response) => response,
            Err(error) => return ReadEnd::Broken(format!("request failed: {}", error_kind(&error))),
        };
        let status = response.status();
        if status != StatusCode::OK {
            return ReadEnd::Broken(format!("HTTP {}", status.as_u16()));
        }
        record.acknowledged = true;
        record.answer_id = header_uuid(&response, "x-message-id");
        self.read_stream(record, response).await
    }

    /// Reads SSE events until `finish`, leaving early as planned.
    async fn read_stream(&self, record: &mut TurnRecord, response: reqwest::Response) -> ReadEnd {
        let mut events = response.bytes_stream().eventsource();
        let mut tokens = 0usize;
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => return ReadEnd::Broken(format!("stream broke: {error}")),
            };
            if let Ok(id) = event.id.parse::<u64>() {
                record.last_event_id = id;
            }
            if event.data == shared::DONE_SENTINEL {
                break;
            }
            match serde_json::from_str::<UiChunk>(&event.data) {
                Ok(UiChunk::TextDelta { delta, .. }) => {
                    record.text.push_str(&delta);
                    record.arrivals.push((Instant::now(), record.text.len()));
                    tokens += 1;
                    if record.plan.stop_after == Some(tokens) {
                        self.stop(&record.plan.user, record.plan.chat_id).await;
                    }
                    if record.plan.leave == Leave::AfterTokens(tokens) && !record.left {
                        return ReadEnd::Left;
                    }
                }
                Ok(UiChunk::Start { message_id: Some(id), .. }) if record.answer_id.is_none() => {
                    record.answer_id = Uuid::parse_str(&id).ok();
                }
                Ok(UiChunk::DataStatus { data: shared::TurnState::Retrying { .. }, .. }) => record.saw_retrying = true,
                Ok(UiChunk::Finish { message_metadata }) => {
                    record.finish = Some(message_metadata.and_then(|m| m.status).unwrap_or(MessageStatus::Error));
                    record.finished_at = Some(Instant::now());
                }
                _ => {}
            }
        }
        if record.finish.is_some() { ReadEnd::Finished } else { ReadEnd::Broken("stream ended without finish".into()) }
    }

    async fn after_leaving(&self, record: &mut TurnRecord) {
        // A short pause, as a page reload or a reconnect takes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        match record.plan.then {
            AfterLeaving::Nothing => {}
            AfterLeaving::Resume => {
                if let Err(reason) = self.resume(record).await {
                    record.failure = Some(reason);
                }
            }
            AfterLeaving::SendAgain => self.send_again(record).await,
        }
    }

    /// Sends the record's message again with the same client id, as a client retrying a failed request does,
    /// and reads the answer the server gives to the end.
    pub async fn send_again(&self, record: &mut TurnRecord) {
        let response = self.post_turn(&record.plan).await;
        let mut replay = TurnRecord::new(record.plan.clone());
        replay.plan.leave = Leave::Never;
        replay.plan.stop_after = None;
        let end = self.read_response(&mut replay, response).await;
        if replay.acknowledged && !record.acknowledged {
            // The first request never got its answer; the second did: that is the acknowledged one.
            record.acknowledged = true;
            record.answer_id = replay.answer_id;
        }
        if let ReadEnd::Broken(reason) = end {
            record.failure = Some(format!("sending again: {reason}"));
        }
        record.resent = Some((replay.answer_id, replay.finish, replay.text));
    }

    /// Resumes a stream the client left (through the turn's resume replica) until the answer's `finish` is read.
    pub async fn resume_to_end(&self, record: &mut TurnRecord) {
        if let Err(reason) = self.resume_until_end(record).await {
            record.failure = Some(format!("resuming after the outage: {reason}"));
        }
    }

    /// Resumes after a broken stream until the answer's `finish` is read: a replica that is going away answers 503
    /// or cuts the stream again, until the proxy has taken it out.
    async fn resume_until_end(&self, record: &mut TurnRecord) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..40u32 {
            tokio::time::sleep(Duration::from_millis(100 + 50 * u64::from(attempt.min(8)))).await;
            match self.resume(record).await {
                Ok(()) if record.saw_end() => return Ok(()),
                Ok(()) => last = "the resumed stream ended without finish".into(),
                Err(reason) => last = reason,
            }
        }
        Err(last)
    }

    /// Resumes the stream after the last event seen (the answer may have finished meanwhile).
    async fn resume(&self, record: &mut TurnRecord) -> Result<(), String> {
        if !record.acknowledged {
            return Ok(());
        }
        let mut path = format!("/api/chat/{}/stream", record.plan.chat_id);
        if let Some(answer) = record.answer_id {
            path.push_str(&format!("?generation={answer}"));
        }
        let response = self
            .turn_request(reqwest::Method::GET, record.plan.chat_id, Step::Resume, &path)
            .header("x-forwarded-email", &record.plan.user)
            .header("last-event-id", record.last_event_id.to_string())
            .send()
            .await
            .map_err(|e| format!("resume failed: {}", error_kind(&e)))?;
        match response.status() {
            StatusCode::OK => {}
            // Nothing more to read: only possible before the first event was seen (cursor 0).
            StatusCode::NO_CONTENT => return Ok(()),
            other => return Err(format!("resume answered HTTP {}", other.as_u16())),
        }
        record.left = false;
        record.plan.leave = Leave::Never;
        match self.read_stream(record, response).await {
            ReadEnd::Broken(reason) => Err(format!("resumed {reason}")),
            _ => Ok(()),
        }
    }

    /// `POST /api/chat/{id}/stop` as `user`; the answer is only interesting to the isolation probes.
    pub async fn stop(&self, user: &str, chat_id: Uuid) -> Option<StatusCode> {
        self.turn_request(reqwest::Method::POST, chat_id, Step::Stop, &format!("/api/chat/{chat_id}/stop"))
            .header("x-forwarded-email", user)
            .send()
            .await
            .ok()
            .map(|r| r.status())
    }
}

fn header_uuid(response: &reqwest::Response, name: &str) -> Option<Uuid> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| Uuid::parse_str(v).ok())
}

/// A short description of a transport error (its full chain is noise in a report).
fn error_kind(error: &reqwest::Error) -> &'static str {
    if error.is_connect() {
        "connection refused"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_body() || error.is_decode() {
        "body cut"
    } else {
        "connection lost"
    }
}
