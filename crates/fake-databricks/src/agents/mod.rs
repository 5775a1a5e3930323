//! Fake Databricks agents (AGENTS-PROTOCOL.md §A–C, G, H), answering in the wire formats real agents use.
//!
//! Routes:
//! - `POST /serving-endpoints/responses`: a Responses-API agent on Model Serving (`agent/v1/responses`,
//!   `agent/v2/responses`); the agent is `body.model`.
//! - `POST /serving-endpoints/{name}/invocations`: a ChatAgent (`agent/v2/chat`), or a Responses agent when the body
//!   has `input`. (`agent/v1/chat` endpoints speak chat completions, served by [`crate::completions`].)
//! - `/apps/{app}/...`: agents served by Databricks Apps; the app's name decides its kind ([`apps`]): `bricks-*`
//!   (Agent Bricks, `POST /api/invocations`), `durable-*` (LongRunningAgentServer, background mode), any other
//!   (MLflow AgentServer, `GET /agent/info`, `POST /responses`).
//!
//! Every request is recorded ([`crate::RecordedRequest`], with its headers); how each stream ended is kept too
//! ([`AgentState::stream_outcomes`], chat completions included: a test sees that a stopped answer closed its
//! upstream request).
//!
//! What an agent answers is scripted by `[[fake ...]]` directives in the last user message, like chat
//! completions (the same `tokens`, `markdown`, `html`, `delay_ms`, `reasoning`, `status`, `retry_after`,
//! `status_times`, `stall_after` + `stall_ms`, `malformed_after`), plus:
//!
//! | key | effect |
//! |---|---|
//! | (none) | one iteration answering `You said: <text>`, one delta per word, as chat completions do |
//! | `iterations=N` | N `response.created`/`completed` pairs in the stream; all but the last write `Step k of N. ` |
//! | `tool=1` | after the first iteration's text, a `search_docs` call (arguments in three deltas, then its done item), the end of that iteration, then the tool's bare `function_call_output`, then the next iteration (so at least two) |
//! | `tool_pause_ms=D` | a pause of D ms after the tool call is complete, before its output (a test reads the chat meanwhile) |
//! | `cite=N` | N `url_citation` annotations on the answer (`response.output_text.annotation.added`, and in its done item) |
//! | `footnote=1` | the answer's done item ends with `[^1]`, which its deltas lacked (Knowledge Assistant) |
//! | `done_only=1` | text and reasoning only in `output_item.done`, never as deltas (Multi-Agent Supervisor) |
//! | `agent_name=X` | a done-only item `<name>X</name>` before the answer (Multi-Agent Supervisor) |
//! | `error=FORM` | the stream fails after the answer's text (or after `fail_after=N` of its words), in one of the forms `type` (`{type:"error",code,message}`), `nested` (`{type:"error",error:{message,type,code}}`), `string` (`{error:"..."}` then `[DONE]`), `databricks` (`{error_code,message}`), `failed` (`response.failed`), `incomplete` (`response.incomplete`); `fail_after=N` alone is `type` |
//! | `abort_after=N` / `hang_after=N` | after N words of the answer the connection is cut / nothing more is ever sent |
//! | `trace=frame\|output\|none` | where the trace id goes: a `{"trace_id":"tr-..."}` frame before `[DONE]` when the request has `x-mlflow-return-trace-id: true` (default); `databricks_output.trace.info.trace_id` on the last done item when the body asks `databricks_options.return_trace`; nowhere |
//! | `approval=1` | without an `mcp_approval_response` in `input`: a sentence, then an `mcp_approval_request` item (`apr-<n>`, `send_email` on `mail-server`) that ends the answer; with one: the answer `Approved: sent.` or `Denied: <reason, or "no reason">.` (the decision is kept, [`AgentState::approvals`]) |
//! | `cut_after=N` | background mode: the first connection (the POST) is cut after N frames; the run goes on |
//! | `resumed=1` | background mode: the run records `{"type":"response.resumed","attempt":2,"from_seq":K,"conversation_id":"<id>::attempt-2"}` at sequence number K = `cut_after` |
//!
//! The answer's text without footnotes is [`AgentDirectives::answer_text`]; the tool's arguments and output,
//! citations and approval texts are in [`content`]; the trace id of an answer is [`trace_id_of`] its request body.
//! Ids are deterministic (numbered per request), so is everything else.

mod answer;
pub mod apps;
pub mod background;
pub mod chat_agent;
pub mod content;
pub mod directives;
pub mod frames;
pub mod request;
pub mod responses;
pub mod serving;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::{get, post};

pub use directives::{AgentDirectives, ErrorForm, TraceForm};
pub use frames::StreamEnd;
pub use request::{ApprovalResponse, TRACE_HEADER, trace_id_of};

use crate::FakeState;

/// Stream outcomes kept at most (a benchmark's fake must not grow without end).
const MAX_OUTCOMES: usize = 10_000;

/// The agent routes, to merge into the fake's router.
pub fn routes() -> Router<Arc<FakeState>> {
    Router::new()
        .route("/serving-endpoints/responses", post(serving::responses))
        .route("/serving-endpoints/{name}/invocations", post(serving::invocations))
        .route("/apps/{app}/agent/info", get(apps::info))
        .route("/apps/{app}/health", get(apps::health))
        .route("/apps/{app}/responses", post(apps::responses))
        .route("/apps/{app}/invocations", post(apps::responses))
        .route("/apps/{app}/responses/{id}", get(apps::retrieve))
        .route("/apps/{app}/api/invocations", post(apps::api_invocations))
}

/// How one agent stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOutcome {
    /// The request path.
    pub path: String,
    /// `context.conversation_id` of the request (none for a background stream followed by id).
    pub conversation_id: Option<String>,
    /// How it ended.
    pub end: StreamEnd,
}

/// What the fake agents keep between requests.
#[derive(Default)]
pub struct AgentState {
    /// Numbers the requests, for deterministic ids.
    serial: AtomicU64,
    runs: background::Runs,
    approvals: Mutex<Vec<ApprovalResponse>>,
    outcomes: Mutex<Vec<StreamOutcome>>,
}

impl AgentState {
    /// The approval decisions agents received, oldest first.
    pub fn approvals(&self) -> Vec<ApprovalResponse> {
        crate::lock(&self.approvals).clone()
    }

    /// How the agent streams ended, in the order they ended.
    pub fn stream_outcomes(&self) -> Vec<StreamOutcome> {
        crate::lock(&self.outcomes).clone()
    }

    /// The background runs.
    pub fn runs(&self) -> &background::Runs {
        &self.runs
    }

    /// Forgets runs, decisions and outcomes, and numbers requests from 1 again.
    pub fn reset(&self) {
        self.serial.store(0, Ordering::Relaxed);
        self.runs.clear();
        crate::lock(&self.approvals).clear();
        crate::lock(&self.outcomes).clear();
    }

    fn next_serial(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn record_approval(&self, approval: ApprovalResponse) {
        crate::lock(&self.approvals).push(approval);
    }

    pub(crate) fn record_outcome(&self, outcome: StreamOutcome) {
        let mut outcomes = crate::lock(&self.outcomes);
        if outcomes.len() >= MAX_OUTCOMES {
            outcomes.remove(0);
        }
        outcomes.push(outcome);
    }
}

#[cfg(test)]
mod tests {
    //! The routes over real HTTP: which app kind answers what, and a background run resumed from a cursor.

    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::FakeWorkspace;

    /// Status and body of one HTTP/1.1 request (the body as far as it goes: a cut connection ends it).
    async fn call(fake: &FakeWorkspace, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let address = fake.url().trim_start_matches("http://").to_owned();
        let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect to the fake");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\ncontent-type: application/json\r\n\
             x-mlflow-return-trace-id: true\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut raw = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(read) = stream.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            raw.extend_from_slice(&buffer[..read]);
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, text)
    }

    fn frames(body: &str) -> Vec<Value> {
        body.lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    }

    fn ask(text: &str, extra: Value) -> Value {
        let mut body = json!({"input": [{"role": "user", "content": text}], "stream": true,
                              "context": {"conversation_id": "chat-1", "user_id": "ada@example.com"}});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    }

    #[tokio::test]
    async fn each_kind_of_app_answers_only_its_own_routes() {
        let fake = FakeWorkspace::start().await;

        let (bricks_info, _) = call(&fake, "GET", "/apps/bricks-sales/agent/info", None).await;
        let (server_info, info) = call(&fake, "GET", "/apps/assistant/agent/info", None).await;
        let (bricks_responses, _) =
            call(&fake, "POST", "/apps/bricks-sales/responses", Some(ask("hi", json!({})))).await;
        let (bricks_invocations, bricks) =
            call(&fake, "POST", "/apps/bricks-sales/api/invocations", Some(ask("hi", json!({})))).await;
        let (plain_retrieve, plain) = call(&fake, "GET", "/apps/assistant/responses/resp_1", None).await;
        let (durable_retrieve, durable) = call(&fake, "GET", "/apps/durable-x/responses/resp_nope", None).await;
        let (chat_agent, chat) = call(
            &fake,
            "POST",
            "/serving-endpoints/my-chat-agent/invocations",
            Some(json!({"messages": [{"role": "user", "content": "hi"}], "stream": true})),
        )
        .await;

        assert_eq!((bricks_info, server_info), (404, 200));
        assert!(info.contains("\"agent_api\":\"responses\""), "{info}");
        assert_eq!((bricks_responses, bricks_invocations), (404, 200));
        assert!(bricks.contains("data: [DONE]"));
        assert_eq!((plain_retrieve, durable_retrieve), (404, 404));
        assert!(plain.contains("{\"detail\":\"Not Found\"}"), "{plain}");
        assert!(durable.contains("Response not found"), "{durable}");
        assert_eq!(chat_agent, 200);
        let text: String =
            frames(&chat).iter().filter_map(|f| f["delta"]["content"].as_str().map(str::to_owned)).collect();
        assert_eq!(text, "You said: hi");
        let recorded = fake.requests();
        assert_eq!(recorded.len(), 7, "every agent call is recorded, refused ones too: {recorded:?}");
        let invocation = recorded.iter().find(|r| r.path == "/apps/bricks-sales/api/invocations").expect("recorded");
        assert_eq!(invocation.headers.get("x-mlflow-return-trace-id").map(String::as_str), Some("true"));
        assert_eq!(invocation.body["context"]["user_id"], "ada@example.com");
    }

    #[tokio::test]
    async fn a_background_run_goes_on_after_its_connection_is_cut_and_is_read_from_a_cursor() {
        let fake = FakeWorkspace::start().await;
        let body = ask("[[fake tokens=6 delay_ms=5 cut_after=4]]", json!({"background": true}));

        let (status, cut) = call(&fake, "POST", "/apps/durable-ops/responses", Some(body)).await;
        let first = frames(&cut);
        let id = first[0]["response_id"].as_str().expect("a response id").to_owned();
        let (refused, _) =
            call(&fake, "GET", &format!("/apps/durable-ops/responses/{id}?starting_after=3"), None).await;
        let path = format!("/apps/durable-ops/responses/{id}?stream=true&starting_after=3");
        let (resumed_status, resumed) = call(&fake, "GET", &path, None).await;

        assert_eq!(status, 200);
        let seqs = |frames: &[Value]| frames.iter().filter_map(|f| f["sequence_number"].as_u64()).collect::<Vec<_>>();
        assert_eq!(seqs(&first), [0, 1, 2, 3], "cut after four frames");
        assert!(id.starts_with("resp_") && id.len() == 29, "{id}");
        assert!(!cut.contains("[DONE]"));
        assert_eq!(refused, 400, "starting_after needs stream=true");
        assert_eq!(resumed_status, 200);
        let rest = frames(&resumed);
        assert_eq!(seqs(&rest).first(), Some(&4), "continues right after the cursor");
        let all: Vec<Value> = first.into_iter().chain(rest).collect();
        let text: String = all
            .iter()
            .filter(|f| f["type"] == "response.output_text.delta")
            .filter_map(|f| f["delta"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(text, crate::scenario::numbered_text(6), "nothing lost, nothing twice");
        assert!(all.iter().any(|f| f.get("trace_id").is_some()), "the trace id was asked for");
        assert!(resumed.contains("data: [DONE]"));
        let (_, status) = call(&fake, "GET", &format!("/apps/durable-ops/responses/{id}"), None).await;
        assert!(status.contains("\"status\":\"completed\""), "{status}");
    }
}
