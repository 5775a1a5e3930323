//! Answering one agent request, whatever the route: read and record it, apply the directives that refuse it
//! (`status`), build its frames in the protocol's format, then stream them, answer them as one JSON body, or hand
//! them to a background run.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::background::Resumption;
use super::directives::AgentDirectives;
use super::frames::{Frame, payloads, play, respond};
use super::request::{AgentRequest, accept};
use super::{StreamOutcome, chat_agent, responses};
use crate::FakeState;

/// The wire format of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Responses API (§B).
    Responses,
    /// MLflow ChatAgent (§C).
    ChatAgent,
}

/// Answers an agent request. `durable`: the agent is a LongRunningAgentServer, which runs `background: true`
/// requests in the background.
pub async fn answer(
    state: Arc<FakeState>,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    format: Format,
    durable: bool,
) -> Response {
    let request = match accept(&state, path, headers, body) {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    let mut directives = AgentDirectives::parse(&request.user_text).unwrap_or_default();
    // `status_times=N`: the error is transient, so retries of the same message eventually get an answer.
    if let Some(times) = directives.base.status_times
        && directives.base.status.is_some()
        && state.count_attempt(&request.user_text) > times
    {
        directives.base.status = None;
    }
    if let Some(status) = directives.base.status {
        return refusal(status, directives.base.retry_after);
    }
    if directives.approval
        && let Some(decision) = &request.approval
    {
        state.agents().record_approval(decision.clone());
    }
    let serial = state.agents().next_serial();
    let frames = match format {
        Format::Responses => responses::frames(&directives, &request, serial, state.token_delay()),
        Format::ChatAgent => chat_agent::frames(&directives, &request, serial, state.token_delay()),
    };
    let streaming = request.body["stream"].as_bool() == Some(true);
    if durable && request.body["background"].as_bool() == Some(true) {
        return background(&state, &directives, &request, serial, frames, streaming, path);
    }
    if !streaming {
        return whole(format, &frames, &request);
    }
    let (path, conversation_id) = (path.to_owned(), request.conversation_id.clone());
    respond(move |sink| async move {
        let end = play(frames, &sink).await;
        state.agents().record_outcome(StreamOutcome { path, conversation_id, end });
    })
}

/// An HTTP error before any stream, in the Databricks shape (with `Retry-After` when asked).
fn refusal(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = if status == StatusCode::TOO_MANY_REQUESTS { "REQUEST_LIMIT_EXCEEDED" } else { "INTERNAL_ERROR" };
    let body = json!({"error_code": code, "message": format!("fake upstream error {}", status.as_u16())});
    let mut response = (status, Json(body)).into_response();
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

/// Starts a background run: its frames streamed from the first (cut after `cut_after` when asked), or, without
/// `stream`, the run's id to poll.
fn background(
    state: &Arc<FakeState>,
    directives: &AgentDirectives,
    request: &AgentRequest,
    serial: u64,
    frames: Vec<Frame>,
    streaming: bool,
    path: &str,
) -> Response {
    let resumption = directives.resumed.then(|| Resumption {
        at: directives.cut_after.unwrap_or(0),
        conversation_id: request.conversation_id.clone().unwrap_or_default(),
    });
    let run = state.agents().runs().start(responses::response_id(serial, 0), frames, resumption);
    if !streaming {
        return Json(
            json!({"id": run.id(), "object": "response", "status": "in_progress", "output": [], "metadata": {}}),
        )
        .into_response();
    }
    let (state, cut_after) = (state.clone(), directives.cut_after);
    let (path, conversation_id) = (path.to_owned(), request.conversation_id.clone());
    respond(move |sink| async move {
        let end = run.follow(&sink, None, cut_after).await;
        state.agents().record_outcome(StreamOutcome { path, conversation_id, end });
    })
}

/// A non-streaming answer assembled from the frames.
fn whole(format: Format, frames: &[Frame], request: &AgentRequest) -> Response {
    if let Some(error) = payloads(frames).find(|f| f.get("error").is_some() || f.get("error_code").is_some()) {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(error.clone())).into_response();
    }
    match format {
        Format::Responses => {
            let output: Vec<Value> = payloads(frames)
                .filter_map(|frame| match frame["type"].as_str() {
                    Some("response.output_item.done") => Some(frame["item"].clone()),
                    Some("function_call_output") => Some(frame.clone()),
                    _ => None,
                })
                .collect();
            let mut body = json!({"id": "resp_fake", "object": "response", "status": "completed", "output": output});
            if request.trace_header {
                body["metadata"] = json!({"trace_id": request.trace_id()});
            }
            Json(body).into_response()
        }
        Format::ChatAgent => {
            let text: String = payloads(frames)
                .filter(|frame| frame["delta"]["role"] == "assistant")
                .filter_map(|frame| frame["delta"]["content"].as_str())
                .collect();
            Json(json!({"messages": [{"role": "assistant", "content": text, "id": "msg_fake"}], "finish_reason": "stop"}))
                .into_response()
        }
    }
}
