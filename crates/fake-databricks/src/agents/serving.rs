//! Agents on Model Serving: `POST /serving-endpoints/responses` (the agent is `body.model`) and
//! `POST /serving-endpoints/{name}/invocations` (ChatAgent `{messages}`, or a Responses body with `input`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::answer::{Format, answer};
use crate::FakeState;

/// `POST /serving-endpoints/responses`.
pub async fn responses(
    State(state): State<Arc<FakeState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(state, uri.path(), &headers, &body, Format::Responses, false).await
}

/// `POST /serving-endpoints/{name}/invocations`: a Responses request when the body has `input`, else ChatAgent.
pub async fn invocations(
    State(state): State<Arc<FakeState>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let format = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(parsed) if parsed.get("input").is_some() => Format::Responses,
        _ => Format::ChatAgent,
    };
    answer(state, uri.path(), &headers, &body, format, false).await
}
