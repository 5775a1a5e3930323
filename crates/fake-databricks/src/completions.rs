//! OpenAI-compatible chat completions, as Databricks Model Serving answers them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::scenario::{Directives, Scenario, Step};
use crate::{FakeState, RecordedRequest};

/// `POST .../chat/completions`.
pub async fn chat_completions(
    State(state): State<Arc<FakeState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_micros = TIMINGS_ON.load(Ordering::Relaxed).then(crate::clock::micros);
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error_response(StatusCode::BAD_REQUEST, "request body is not JSON");
    };
    state.record(RecordedRequest {
        path: uri.path().to_owned(),
        authorization: headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned),
        body: request.clone(),
        headers: crate::agents::request::recorded_headers(&headers),
    });
    if state.workspace().model_auth_required()
        && let Err(refused) = state.workspace().check_bearer(&headers)
    {
        return *refused;
    }
    // Databricks serving endpoints reject this field (PROTOCOLS.md §B.4); so does the fake, to keep the app honest.
    if request.get("stream_options").is_some() {
        return error_response(StatusCode::BAD_REQUEST, "json: unknown field \"stream_options\"");
    }
    let model = request["model"].as_str().unwrap_or("fake-model").to_owned();
    let user_text = last_user_text(&request);
    let scenario = summary_scenario(&request).or_else(|| state.next_scenario(&model)).unwrap_or_else(|| {
        let mut directives = Directives::parse(&user_text).unwrap_or_default();
        // `status_times=N`: the error is transient, so retries of the same message eventually get an answer.
        if let Some(times) = directives.status_times
            && directives.status.is_some()
            && state.count_attempt(&user_text) > times
        {
            directives.status = None;
        }
        directives
            .tool_scenario(&request, directives.delay_ms.map_or(state.token_delay(), Duration::from_millis))
            .unwrap_or_else(|| {
                directives.scenario(&user_text, state.token_delay()).with_prompt_tokens(prompt_tokens(&request))
            })
    });
    let scenario = match request["max_tokens"].as_u64() {
        Some(max_tokens) => scenario.limited_to(max_tokens as usize),
        None => scenario,
    };
    if scenario.status != 200 {
        let mut response = (
            StatusCode::from_u16(scenario.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            scenario.body.clone().unwrap_or_default(),
        )
            .into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        add_headers(&mut response, &scenario);
        return response;
    }
    if request["stream"].as_bool() != Some(true) {
        return complete_response(&scenario, &model).await;
    }
    let (outcomes, path) = (state.clone(), uri.path().to_owned());
    let stream = timed(sse_stream(scenario.clone(), model), received_micros.map(|at| (at, user_text)));
    let body = crate::agents::frames::watched(stream, move |end| {
        outcomes.agents().record_outcome(crate::agents::StreamOutcome { path, conversation_id: None, end });
    });
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    add_headers(&mut response, &scenario);
    response
}

/// When the fake received a streamed chat-completions request and when it sent the end of its answer, in
/// microseconds of [`crate::clock::micros`]. A benchmark running the fake in its own process pairs a tool round's
/// two model calls by their user text and measures the server's time between them (`loadtest tool-round`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTiming {
    /// Text of the request's last user message.
    pub user_text: String,
    /// When the handler got the whole request.
    pub received_micros: u64,
    /// When the stream's last piece (`[DONE]`) had been handed to the connection.
    pub ended_micros: u64,
}

/// Whether streamed answers are timed (off unless a benchmark asks: tests pay nothing).
static TIMINGS_ON: AtomicBool = AtomicBool::new(false);
/// Timings of the streams that ended since the last [`take_timings`]. Process-wide rather than in the fake's state,
/// so the timing needs no change to the state or the routes.
static TIMINGS: Mutex<Vec<RequestTiming>> = Mutex::new(Vec::new());

/// Starts or stops timing streamed answers ([`RequestTiming`]) in this process.
pub fn record_timings(on: bool) {
    TIMINGS_ON.store(on, Ordering::Relaxed);
}

/// The timings recorded since the last call, oldest end first; clears them.
pub fn take_timings() -> Vec<RequestTiming> {
    std::mem::take(&mut *TIMINGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// The body, recording a [`RequestTiming`] once it has yielded its last piece (when `timing` is given).
fn timed(
    body: impl futures::Stream<Item = Result<Bytes, std::io::Error>>,
    timing: Option<(u64, String)>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let end = futures::stream::once(async move {
        if let Some((received_micros, user_text)) = timing {
            let timing = RequestTiming { user_text, received_micros, ended_micros: crate::clock::micros() };
            TIMINGS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(timing);
        }
    });
    body.chain(end.filter_map(|()| futures::future::ready(None)))
}

fn add_headers(response: &mut Response, scenario: &Scenario) {
    for (name, value) in &scenario.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            response.headers_mut().insert(name, value);
        }
    }
}

fn error_response(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "type": "invalid_request_error"}}))).into_response()
}

/// How the chat app asks for a summary of a conversation (its instructions start so).
pub const SUMMARY_INSTRUCTIONS_START: &str = "You summarise conversations";

/// A model asked to summarise a conversation answers with a short summary naming how much it read, whatever
/// directives the conversation holds (they belong to its messages, not to this request).
fn summary_scenario(request: &Value) -> Option<crate::Scenario> {
    let messages = request["messages"].as_array()?;
    let instructions = messages.first().filter(|m| m["role"] == "system")?["content"].as_str()?;
    if !instructions.starts_with(SUMMARY_INSTRUCTIONS_START) {
        return None;
    }
    let read: usize = messages[1..].iter().filter_map(|m| m["content"].as_str()).map(|t| t.chars().count()).sum();
    let summary = format!("Summary of the earlier conversation ({read} characters read): facts kept.");
    Some(crate::Scenario::tokens(summary.split_inclusive(' ').map(str::to_owned).collect::<Vec<_>>()))
}

/// The prompt's size in tokens as a model would count it: about four characters a token, and a few for each
/// message's framing.
fn prompt_tokens(request: &Value) -> u64 {
    let Some(messages) = request["messages"].as_array() else { return 1 };
    messages
        .iter()
        .map(|m| {
            let chars = match &m["content"] {
                Value::String(text) => text.chars().count(),
                Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).map(|t| t.chars().count()).sum(),
                _ => 0,
            };
            chars.div_ceil(4) as u64 + 4
        })
        .sum::<u64>()
        .max(1)
}

/// Text of the last user message, whether `content` is a string or a list of parts.
fn last_user_text(request: &Value) -> String {
    let Some(messages) = request["messages"].as_array() else { return String::new() };
    let Some(last) = messages.iter().rev().find(|m| m["role"] == "user") else { return String::new() };
    match &last["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

fn chunk(model: &str, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_763_800_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    })
}

/// The SSE text for one step, or `None` for steps that are not data.
fn step_data(step: &Step, model: &str) -> Option<String> {
    let value = match step {
        Step::Text { text } => chunk(model, json!({"content": text}), None),
        Step::Stamp => chunk(model, json!({"content": format!(" {}", crate::clock::micros())}), None),
        Step::TextParts { text } => chunk(model, json!({"content": [{"type": "text", "text": text}]}), None),
        Step::Reasoning { text } => chunk(
            model,
            json!({"content": [{"type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}]}),
            None,
        ),
        Step::ReasoningContent { text } => chunk(model, json!({"reasoning_content": text}), None),
        Step::Finish { reason } => chunk(model, json!({}), Some(reason)),
        Step::Usage { prompt_tokens, completion_tokens } => json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_763_800_000, "model": model,
            "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }),
        Step::Error { message } => json!({"error": {"message": message, "type": "server_error", "code": 500}}),
        Step::DatabricksError { error_code, message } => json!({"error_code": error_code, "message": message}),
        Step::Raw { data } => return Some(format!("data: {data}\n\n")),
        Step::ToolCall { index, id, name, arguments } => {
            let mut call = json!({"index": index, "function": {"arguments": arguments}});
            if let Some(id) = id {
                call["id"] = json!(id);
                call["type"] = json!("function");
            }
            if let Some(name) = name {
                call["function"]["name"] = json!(name);
            }
            chunk(model, json!({"content": null, "tool_calls": [call]}), None)
        }
        Step::Done => return Some("data: [DONE]\n\n".to_owned()),
        Step::Comment => return Some(": ping\n\n".to_owned()),
        Step::Delay { .. } | Step::Abort | Step::Hang => return None,
    };
    Some(format!("data: {value}\n\n"))
}

/// The response body: a role chunk, then the scenario's steps.
fn sse_stream(scenario: Scenario, model: String) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let first = format!("data: {}\n\n", chunk(&model, json!({"role": "assistant", "content": ""}), None));
    let step_delay = Duration::from_millis(scenario.step_delay_ms);
    let steps = futures::stream::iter(scenario.steps);
    let body = steps.then(move |step| {
        let model = model.clone();
        async move {
            match &step {
                Step::Delay { ms } => {
                    tokio::time::sleep(Duration::from_millis(*ms)).await;
                    None
                }
                Step::Hang => {
                    std::future::pending::<()>().await;
                    None
                }
                Step::Abort => Some(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "fake abort"))),
                _ => {
                    if !step_delay.is_zero() {
                        tokio::time::sleep(step_delay).await;
                    }
                    step_data(&step, &model).map(|data| Ok(Bytes::from(data)))
                }
            }
        }
    });
    futures::stream::once(async move { Some(Ok(Bytes::from(first))) })
        .chain(body)
        .filter_map(|item| async move { item })
        // Stop at the first error so the connection is cut right there.
        .scan(false, |failed, item: Result<Bytes, std::io::Error>| {
            let out = if *failed { None } else { Some(item) };
            if let Some(Err(_)) = &out {
                *failed = true;
            }
            futures::future::ready(out)
        })
}

/// A non-streaming completion assembled from the scenario's text steps.
async fn complete_response(scenario: &Scenario, model: &str) -> Response {
    let mut text = String::new();
    for step in &scenario.steps {
        match step {
            Step::Text { text: t } | Step::TextParts { text: t } => text.push_str(t),
            Step::Error { message } => return error_response(StatusCode::INTERNAL_SERVER_ERROR, message),
            _ => {}
        }
    }
    axum::Json(json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_763_800_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }))
    .into_response()
}
