//! Answering an agent's approval request: `POST /api/chat/{id}/approvals/{approval_id}` allows or denies the tool
//! call the agent asked for, and streams the answer as it goes on in the same assistant message.

use axum::extract::State;
use axum::response::Response;
use shared::{ApprovalAnswer, MAX_APPROVAL_REASON_CHARS};
use uuid::Uuid;

use super::chat::model_user_token;
#[cfg(feature = "openapi")]
use super::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, RateLimited, StreamEvent, Unauthorized, Unavailable,
    UnsupportedMediaType,
};
use super::sse::ui_message_stream;
use crate::engine::ApprovalDecision;
use crate::error::{ApiError, ApiResult, AppJson, AppPath};
use crate::identity::CurrentUser;
use crate::state::AppState;

/// Longest approval id accepted (the agent's item ids are at most 64 characters; anything longer is unknown).
const MAX_APPROVAL_ID_CHARS: usize = 200;

/// Allows or denies an agent's tool call and continues its answer.
///
/// The request is a `data-approval` part of the chat's last answer (state `requested`). Both decisions reach the
/// agent. The response is the UI message stream of the continuation: a `start` chunk with the same message id,
/// then the events after the answer's stored ones (event ids go on from there).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/chat/{id}/approvals/{approval_id}", tag = "chat", request_body = ApprovalAnswer,
    params(("id" = Uuid, Path, description = "Chat id"),
        ("approval_id" = String, Path, description = "The request's `approvalId`")),
    responses(
        (status = 200, description = "The continuation's UI message stream (SSE)",
            content((StreamEvent = "text/event-stream")),
            headers(("X-Chat-Id" = Uuid, description = "The chat"),
                    ("X-Message-Id" = Uuid, description = "The answer that goes on"))),
        BadRequest, Unauthorized, Forbidden, NotFound,
        (status = 409, description = "Already answered, the chat went on, or an answer is being written",
            body = shared::ErrorBody),
        PayloadTooLarge, UnsupportedMediaType, RateLimited, Unavailable)))]
pub async fn answer_approval(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath((chat_id, approval_id)): AppPath<(Uuid, String)>,
    AppJson(body): AppJson<ApprovalAnswer>,
) -> ApiResult<Response> {
    let reason = body.reason.map(|reason| reason.trim().to_owned()).filter(|reason| !reason.is_empty());
    if let Some(reason) = &reason {
        if reason.chars().count() > MAX_APPROVAL_REASON_CHARS {
            return Err(ApiError::bad_request(format!(
                "the reason is longer than {MAX_APPROVAL_REASON_CHARS} characters"
            )));
        }
        if reason.contains('\0') {
            return Err(ApiError::bad_request("the reason must not contain NUL characters (\\u0000)"));
        }
    }
    if approval_id.is_empty() || approval_id.chars().count() > MAX_APPROVAL_ID_CHARS {
        return Err(ApiError::NotFound("approval"));
    }
    let user_token = model_user_token(&state, &user)?;
    let decision = ApprovalDecision { approve: body.approve, reason };
    let continued = state.engine.answer_approval(&user.id, chat_id, approval_id, decision, user_token).await?;
    let chunks = state.engine.follow(continued.answer_id, continued.after).await?;
    Ok(ui_message_stream(chunks, chat_id, continued.answer_id, state.config.engine.keepalive_interval))
}
