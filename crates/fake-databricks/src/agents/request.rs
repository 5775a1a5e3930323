//! What an agent reads of a request (AGENTS-PROTOCOL.md §B.1, §C): the last user text (where the directives are),
//! the call context, whether a trace id is wanted, an MCP approval decision; plus recording the request and the
//! deterministic trace id of an answer.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{FakeState, RecordedRequest};

/// The request header that asks an MLflow AgentServer for a `{"trace_id"}` frame.
pub const TRACE_HEADER: &str = "x-mlflow-return-trace-id";

/// The user's decision on an MCP tool call, as sent back in `input` (AGENTS-PROTOCOL.md §G).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalResponse {
    /// `approval_request_id`: the `id` of the `mcp_approval_request` it answers.
    pub approval_request_id: String,
    /// `approve`.
    pub approve: bool,
    /// `reason`, when given.
    pub reason: Option<String>,
}

/// An agent request, read.
#[derive(Debug, Clone)]
pub struct AgentRequest {
    /// The JSON body.
    pub body: Value,
    /// Text of the last user message (Responses `input` or ChatAgent `messages`).
    pub user_text: String,
    /// `context.conversation_id`.
    pub conversation_id: Option<String>,
    /// Header `x-mlflow-return-trace-id: true`.
    pub trace_header: bool,
    /// `databricks_options.return_trace: true`.
    pub return_trace: bool,
    /// The `mcp_approval_response` item that answers this turn: the last one after the last user message (an
    /// earlier turn's decision does not answer a new request).
    pub approval: Option<ApprovalResponse>,
}

impl AgentRequest {
    /// Reads a parsed body and its headers.
    pub fn read(body: Value, headers: &HeaderMap) -> Self {
        let trace_header = headers
            .get(TRACE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let approval = body["input"]
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .rev()
                    .take_while(|item| item["role"] != "user")
                    .find(|item| item["type"] == "mcp_approval_response")
            })
            .map(|item| ApprovalResponse {
                approval_request_id: item["approval_request_id"].as_str().unwrap_or_default().to_owned(),
                approve: item["approve"].as_bool().unwrap_or(false),
                reason: item["reason"].as_str().filter(|r| !r.trim().is_empty()).map(str::to_owned),
            });
        Self {
            user_text: last_user_text(&body),
            conversation_id: body.pointer("/context/conversation_id").and_then(Value::as_str).map(str::to_owned),
            trace_header,
            return_trace: body.pointer("/databricks_options/return_trace").and_then(Value::as_bool) == Some(true),
            approval,
            body,
        }
    }

    /// The MLflow trace id of the answer to this request.
    pub fn trace_id(&self) -> String {
        trace_id_of(&self.body)
    }
}

/// The trace id the fake gives the answer to a request body: `tr-` and 32 hex digits, derived from the
/// conversation id and the last user text, so a test can compute it from the recorded request.
pub fn trace_id_of(body: &Value) -> String {
    let conversation = body.pointer("/context/conversation_id").and_then(Value::as_str).unwrap_or_default();
    let seed = format!("{conversation}\n{}", last_user_text(body));
    format!("tr-{:016x}{:016x}", fnv1a(0xcbf2_9ce4_8422_2325, &seed), fnv1a(0x8422_2325_cbf2_9ce4, &seed))
}

fn fnv1a(offset: u64, text: &str) -> u64 {
    text.bytes().fold(offset, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Text of the last user message: Responses `input` items or ChatAgent `messages`, with `content` a string or a
/// list of text parts.
pub fn last_user_text(body: &Value) -> String {
    let items = body["input"].as_array().or_else(|| body["messages"].as_array());
    let Some(last) = items.and_then(|items| items.iter().rev().find(|item| item["role"] == "user")) else {
        return body["input"].as_str().unwrap_or_default().to_owned();
    };
    match &last["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts.iter().filter_map(|part| part["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// Parses and records a request (with its headers); the error is the answer to send.
pub fn accept(state: &FakeState, path: &str, headers: &HeaderMap, body: &Bytes) -> Result<AgentRequest, Box<Response>> {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        record(state, path, headers, Value::Null);
        return Err(Box::new(detail(StatusCode::BAD_REQUEST, "request body is not JSON")));
    };
    record(state, path, headers, parsed.clone());
    if state.workspace().model_auth_required() {
        state.workspace().check_bearer(headers)?;
    }
    Ok(AgentRequest::read(parsed, headers))
}

/// Records a request (a body that is not JSON as `null`).
pub fn record(state: &FakeState, path: &str, headers: &HeaderMap, body: Value) {
    state.record(RecordedRequest {
        path: path.to_owned(),
        authorization: headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned),
        body,
        headers: recorded_headers(headers),
    });
}

/// The headers worth recording: all but the credentials (recorded apart) and the transport's own.
pub fn recorded_headers(headers: &HeaderMap) -> std::collections::BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "authorization" | "content-length" | "host" | "connection"))
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect()
}

/// A FastAPI-style error, as MLflow's AgentServer answers: `{"detail": ...}`.
pub fn detail(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "detail": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_text_the_context_and_an_approval_are_read_from_input_items() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACE_HEADER, "true".parse().expect("header"));
        let body = json!({
            "input": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
                {"role": "user", "content": [{"type": "input_text", "text": "second "}, {"type": "input_text", "text": "part"}]},
                {"type": "mcp_approval_response", "id": "apr-1", "approval_request_id": "apr-1", "approve": false}
            ],
            "context": {"conversation_id": "c1", "user_id": "u"},
            "databricks_options": {"return_trace": true}
        });
        let request = AgentRequest::read(body.clone(), &headers);
        assert_eq!(request.user_text, "second part");
        assert_eq!(request.conversation_id.as_deref(), Some("c1"));
        assert!(request.trace_header && request.return_trace);
        assert_eq!(
            request.approval,
            Some(ApprovalResponse { approval_request_id: "apr-1".into(), approve: false, reason: None })
        );
        let trace = request.trace_id();
        assert!(trace.starts_with("tr-") && trace.len() == 35, "{trace}");
        // A decision of an earlier turn does not answer the next one.
        let mut later = body.clone();
        later["input"].as_array_mut().expect("items").push(json!({"role": "user", "content": "again"}));
        assert_eq!(AgentRequest::read(later, &headers).approval, None);
        assert_eq!(trace, trace_id_of(&body), "deterministic");
        assert_ne!(trace, trace_id_of(&json!({"input": "other"})));
        assert_eq!(last_user_text(&json!({"messages": [{"role": "user", "content": "hi"}]})), "hi");
    }
}
