//! A local fake of the Databricks APIs the chat app calls, served over real HTTP.
//!
//! Tests start it in-process ([`FakeWorkspace::start`]) and script it directly; the browser tests and benchmarks
//! run the `fake-databricks` binary and script it over HTTP (`POST /__fake/scenarios`) or with directives in the
//! user's message (`[[fake tokens=500 delay_ms=20]]`, see [`scenario::Directives`]).
//!
//! Served routes:
//! - `POST /serving-endpoints/chat/completions` (also `/v1/chat/completions`, `/chat/completions`):
//!   OpenAI-compatible chat completions, streaming (`stream: true`) or not. Open by default; after
//!   [`FakeWorkspace::require_model_auth`] they demand a registered PAT or an unexpired OAuth token, as Databricks does.
//! - Agents ([`agents`]): Responses-API and ChatAgent serving endpoints, and agents served by Databricks Apps
//!   (`/apps/{app}/...`), scripted by the same directives plus agent ones.
//! - The workspace APIs of [`workspace`]: OAuth token endpoint, SCIM `Me`, serving-endpoint list/get, and both
//!   Lakebase credential APIs.
//! - Managed MCP servers ([`mcp`]): a real MCP server (Genie, Unity Catalog functions, vector search paths, and
//!   `/mcp/{name}`), with every tool call recorded and a switch that takes it down.
//! - `POST /__fake/scenarios` (queue scripted answers), `GET /__fake/requests` (what the app sent),
//!   `POST /__fake/reset`.

pub mod agents;
pub mod clock;
pub mod completions;
pub mod mcp;
pub mod mlflow;
pub mod scenario;
pub mod workspace;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

pub use scenario::{Directives, Scenario, Step};
pub use workspace::{FakeEndpoint, FakeIdentity, FakeWorkspaceState};

/// What the fake saw of one request to the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Request path.
    pub path: String,
    /// `Authorization` header, if any.
    pub authorization: Option<String>,
    /// Parsed JSON body.
    pub body: serde_json::Value,
    /// Request headers other than `Authorization` (e.g. `x-mlflow-return-trace-id`), lower-case names.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// Settings of the fake.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Pause between generated tokens when no directive says otherwise.
    pub token_delay: Duration,
    /// Record requests for `requests()` (off for benchmarks, where it would only grow).
    pub record_requests: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self { token_delay: Duration::ZERO, record_requests: true }
    }
}

/// Shared state of the fake.
#[derive(Default)]
pub struct FakeState {
    config: Mutex<FakeConfigInner>,
    scenarios: Mutex<VecDeque<Scenario>>,
    model_replies: Mutex<Vec<(String, Scenario)>>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Requests seen per message text, for directives that fail only the first attempts.
    attempts: Mutex<std::collections::HashMap<String, u32>>,
    workspace: Arc<FakeWorkspaceState>,
    mlflow: mlflow::FakeMlflow,
    agents: agents::AgentState,
    mcp: Arc<mcp::FakeMcp>,
}

#[derive(Default)]
struct FakeConfigInner {
    token_delay: Duration,
    record_requests: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these plain collections inconsistent.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeState {
    /// The scenario for a request to `model`: its fixed reply if it has one, else the next queued scenario.
    pub fn next_scenario(&self, model: &str) -> Option<Scenario> {
        if let Some((_, scenario)) = lock(&self.model_replies).iter().find(|(m, _)| m == model) {
            return Some(scenario.clone());
        }
        lock(&self.scenarios).pop_front()
    }

    /// Answers every request to `model` with this scenario (e.g. a title model), leaving the queue alone.
    pub fn set_model_reply(&self, model: &str, scenario: Scenario) {
        lock(&self.model_replies).push((model.to_owned(), scenario));
    }

    /// Queues scenarios, answered in order by the next requests.
    pub fn push(&self, scenarios: impl IntoIterator<Item = Scenario>) {
        lock(&self.scenarios).extend(scenarios);
    }

    /// Records a request.
    pub fn record(&self, request: RecordedRequest) {
        if lock(&self.config).record_requests {
            lock(&self.requests).push(request);
        }
    }

    /// All recorded requests.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// Counts a request carrying `message` and returns how many there have been, this one included.
    pub fn count_attempt(&self, message: &str) -> u32 {
        let mut attempts = lock(&self.attempts);
        let count = attempts.entry(message.to_owned()).or_insert(0);
        *count += 1;
        *count
    }

    /// Default pause between tokens.
    pub fn token_delay(&self) -> Duration {
        lock(&self.config).token_delay
    }

    /// The workspace side (credentials, endpoints, Lakebase).
    pub fn workspace(&self) -> &Arc<FakeWorkspaceState> {
        &self.workspace
    }

    /// The agents' side (background runs, approval decisions, how streams ended).
    pub fn agents(&self) -> &agents::AgentState {
        &self.agents
    }

    /// Clears scenarios and recorded requests.
    pub fn reset(&self) {
        self.agents.reset();
        self.mcp.reset();
        lock(&self.scenarios).clear();
        lock(&self.model_replies).clear();
        lock(&self.requests).clear();
        lock(&self.attempts).clear();
    }
}

/// The fake's routes.
pub fn router(state: Arc<FakeState>) -> Router {
    Router::new()
        .route("/serving-endpoints/chat/completions", post(completions::chat_completions))
        .route("/v1/chat/completions", post(completions::chat_completions))
        .route("/chat/completions", post(completions::chat_completions))
        .merge(agents::routes())
        .route("/__fake/scenarios", post(control::push_scenarios))
        .route("/__fake/requests", get(control::requests))
        .route("/__fake/reset", post(control::reset))
        .with_state(state.clone())
        .merge(workspace::router(state.workspace.clone()))
        .merge(mlflow::router(state.clone()))
        .merge(mcp::router(state.mcp.clone()))
}

/// A running fake on a random local port; stops when dropped.
pub struct FakeWorkspace {
    addr: SocketAddr,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeWorkspace {
    /// Starts a fake with default settings.
    pub async fn start() -> Self {
        Self::start_with(FakeConfig::default()).await
    }

    /// Starts a fake with the given settings on `127.0.0.1:0`.
    pub async fn start_with(config: FakeConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind fake: {e}"));
        Self::serve(listener, config)
    }

    /// Serves on an already bound listener.
    pub fn serve(listener: tokio::net::TcpListener, config: FakeConfig) -> Self {
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("fake address: {e}"));
        let state = Arc::new(FakeState::default());
        {
            let mut inner = lock(&state.config);
            inner.token_delay = config.token_delay;
            inner.record_requests = config.record_requests;
        }
        let app = router(state.clone());
        let task = tokio::spawn(serve_connections(listener, app));
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OpenAI-compatible base URL, as Databricks serves it: `http://127.0.0.1:<port>/serving-endpoints`.
    pub fn serving_base_url(&self) -> String {
        format!("{}/serving-endpoints", self.url())
    }

    /// Queues a scripted answer for the next request.
    pub fn push(&self, scenario: Scenario) {
        self.state.push([scenario]);
    }

    /// Answers every request to `model` with this scenario.
    pub fn set_model_reply(&self, model: &str, scenario: Scenario) {
        self.state.set_model_reply(model, scenario);
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// The requests received so far for one model.
    pub fn requests_for(&self, model: &str) -> Vec<RecordedRequest> {
        self.state.requests().into_iter().filter(|r| r.body["model"] == model).collect()
    }

    /// The workspace side: register PATs and OAuth clients, serving endpoints, Lakebase databases.
    pub fn workspace(&self) -> &Arc<FakeWorkspaceState> {
        &self.state.workspace
    }

    /// From now on, chat completions need a valid bearer token (a registered PAT or an unexpired OAuth token).
    pub fn require_model_auth(&self) {
        self.state.workspace.set_model_auth_required(true);
    }

    /// The shared state (for advanced scripting).
    pub fn state(&self) -> &Arc<FakeState> {
        &self.state
    }
}

/// Serves HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) with no cap on concurrent HTTP/2 streams, so one
/// multiplexed client connection can carry thousands of streaming answers, as a Databricks endpoint does.
async fn serve_connections(listener: tokio::net::TcpListener, app: Router) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder.http2().max_concurrent_streams(None);
    let builder = Arc::new(builder);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        tokio::spawn(async move {
            let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
        });
    }
}

impl Drop for FakeWorkspace {
    fn drop(&mut self) {
        self.task.abort();
    }
}

mod control {
    //! Scripting the fake over HTTP.

    use std::sync::Arc;

    use axum::Json;
    use axum::extract::State;
    use axum::http::StatusCode;

    use super::{FakeState, RecordedRequest, Scenario};

    /// `POST /__fake/scenarios` with a JSON array of scenarios.
    pub async fn push_scenarios(
        State(state): State<Arc<FakeState>>,
        Json(scenarios): Json<Vec<Scenario>>,
    ) -> StatusCode {
        state.push(scenarios);
        StatusCode::NO_CONTENT
    }

    /// `GET /__fake/requests`.
    pub async fn requests(State(state): State<Arc<FakeState>>) -> Json<Vec<RecordedRequest>> {
        Json(state.requests())
    }

    /// `POST /__fake/reset`.
    pub async fn reset(State(state): State<Arc<FakeState>>) -> StatusCode {
        state.reset();
        StatusCode::NO_CONTENT
    }
}

#[cfg(test)]
mod tests {
    use super::FakeState;

    #[test]
    fn attempts_are_counted_per_message() {
        let state = FakeState::default();
        assert_eq!(state.count_attempt("a"), 1);
        assert_eq!(state.count_attempt("a"), 2);
        assert_eq!(state.count_attempt("b"), 1);
        state.reset();
        assert_eq!(state.count_attempt("a"), 1);
    }
}
