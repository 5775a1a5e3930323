//! Agents served by Databricks Apps, under `/apps/{app}/...`. The app's name says what it is:
//!
//! - `bricks-*`: an Agent Bricks app, `POST /api/invocations` only (`GET /agent/info` is 404).
//! - `durable-*`: a LongRunningAgentServer: an MLflow AgentServer whose `POST /responses` with
//!   `background: true` runs in the background, retrieved with `GET /responses/{id}` (see [`super::background`]).
//! - any other name: an MLflow AgentServer, `GET /agent/info`, `GET /health`, `POST /responses`,
//!   `POST /invocations`; `GET /responses/{id}` is FastAPI's plain 404 `{"detail":"Not Found"}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::StreamOutcome;
use super::answer::{Format, answer};
use super::frames::respond;
use super::request::{detail, record};
use crate::FakeState;

/// What an app is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppKind {
    AgentBricks,
    LongRunning,
    AgentServer,
}

impl AppKind {
    fn of(app: &str) -> Self {
        if app.starts_with("bricks-") {
            AppKind::AgentBricks
        } else if app.starts_with("durable-") {
            AppKind::LongRunning
        } else {
            AppKind::AgentServer
        }
    }
}

fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not Found")
}

/// A POST to a route this kind of app does not serve: recorded, and FastAPI's 404.
fn refuse(state: &FakeState, path: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    record(state, path, headers, serde_json::from_slice(body).unwrap_or(Value::Null));
    not_found()
}

/// `GET /apps/{app}/agent/info`.
pub async fn info(
    State(state): State<Arc<FakeState>>,
    Path(app): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    record(&state, uri.path(), &headers, Value::Null);
    match AppKind::of(&app) {
        AppKind::AgentBricks => not_found(),
        _ => Json(json!({"name": app, "use_case": "agent", "mlflow_version": "3.6.0", "agent_api": "responses"}))
            .into_response(),
    }
}

/// `GET /apps/{app}/health`.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "healthy"}))
}

/// `POST /apps/{app}/responses` and `POST /apps/{app}/invocations`: an AgentServer's Responses endpoint.
pub async fn responses(
    State(state): State<Arc<FakeState>>,
    Path(app): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match AppKind::of(&app) {
        AppKind::AgentBricks => refuse(&state, uri.path(), &headers, &body),
        kind => answer(state, uri.path(), &headers, &body, Format::Responses, kind == AppKind::LongRunning).await,
    }
}

/// `POST /apps/{app}/api/invocations`: Agent Bricks.
pub async fn api_invocations(
    State(state): State<Arc<FakeState>>,
    Path(app): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match AppKind::of(&app) {
        AppKind::AgentBricks => answer(state, uri.path(), &headers, &body, Format::Responses, false).await,
        _ => refuse(&state, uri.path(), &headers, &body),
    }
}

/// `GET /apps/{app}/responses/{id}[?stream=true[&starting_after=N]]`: a background run's status, or its frames
/// after the cursor as a stream (`starting_after=0` reads from 0 inclusive, as the real server does).
pub async fn retrieve(
    State(state): State<Arc<FakeState>>,
    Path((app, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    record(&state, &path, &headers, Value::Null);
    if AppKind::of(&app) != AppKind::LongRunning {
        return not_found();
    }
    let Some(run) = state.agents().runs().get(&id) else {
        return detail(StatusCode::NOT_FOUND, "Response not found");
    };
    let stream = query.get("stream").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let after = match query.get("starting_after").map(|v| v.parse::<u64>()) {
        None => None,
        Some(Ok(after)) => Some(after),
        Some(Err(_)) => return detail(StatusCode::BAD_REQUEST, "starting_after must be a sequence number"),
    };
    if !stream {
        if after.is_some() {
            return detail(StatusCode::BAD_REQUEST, "starting_after requires stream=true");
        }
        return Json(run.status()).into_response();
    }
    respond(move |sink| async move {
        let end = run.follow(&sink, after, None).await;
        state.agents().record_outcome(StreamOutcome { path, conversation_id: None, end });
    })
}
