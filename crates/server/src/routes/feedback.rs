//! `PUT`/`DELETE /api/chats/{chat_id}/messages/{message_id}/feedback`: the caller's vote on an answer (up or down,
//! with an optional comment), stored in the database and, when MLflow feedback sync is on and the answer has a
//! trace, sent to MLflow ([`crate::feedback_sync`]). A vote that MLflow could not take yet is still stored, as
//! `pending`.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use shared::{Feedback, FeedbackRequest, FeedbackSync, MAX_FEEDBACK_COMMENT_CHARS, MessageStatus, Role};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use super::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Timeout, Unauthorized, Unavailable,
    UnsupportedMediaType,
};
use crate::db::chats;
use crate::db::feedback::{self, NewVote, VoteTarget};
use crate::error::{ApiError, ApiResult, AppJson, AppPath};
use crate::feedback_sync::MlflowSync;
use crate::identity::CurrentUser;
use crate::state::AppState;

/// Stores or replaces the caller's vote on an answer.
#[cfg_attr(feature = "openapi", utoipa::path(put, path = "/api/chats/{chat_id}/messages/{message_id}/feedback", tag = "messages",
    params(("chat_id" = Uuid, Path, description = "Chat id"), ("message_id" = Uuid, Path, description = "Answer id")),
    request_body = FeedbackRequest,
    responses(
        (status = 200, body = Feedback, description = "The stored vote; `sync` says whether MLflow has it"),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType, Unavailable,
        Timeout)))]
pub async fn put_feedback(
    State(state): State<AppState>,
    Extension(mlflow): Extension<MlflowSync>,
    user: CurrentUser,
    AppPath((chat_id, message_id)): AppPath<(Uuid, Uuid)>,
    AppJson(request): AppJson<FeedbackRequest>,
) -> ApiResult<AppJson<Feedback>> {
    let comment = comment(request.comment)?;
    let mut tx = state.db.begin().await?;
    chats::fetch_chat(&mut *tx, &user.id, chat_id).await?.ok_or(ApiError::NotFound("chat"))?;
    let target = feedback::lock_target(&mut tx, chat_id, message_id).await?.ok_or(ApiError::NotFound("message"))?;
    check_answer(&target)?;
    if MessageStatus::parse(&target.status) == Some(MessageStatus::Streaming) {
        return Err(ApiError::Conflict("the answer is still being written; rate it once it has finished".to_owned()));
    }
    let sync = if mlflow.is_on() && target.trace_id.is_some() { FeedbackSync::Pending } else { FeedbackSync::Off };
    let vote = NewVote { message_id, user_id: &user.id, rating: request.rating, comment: comment.as_deref(), sync };
    let mut stored = feedback::upsert(&mut tx, vote).await?;
    tx.commit().await?;
    if stored.is_pending() {
        mlflow.send_now(message_id, &user.id).await;
        // Removed meanwhile by another request of the same user: what this one stored is still its answer.
        stored =
            feedback::vote(&state.db, message_id, &user.id).await?.filter(|row| row.rating.is_some()).unwrap_or(stored);
    }
    tracing::info!(chat.id = %chat_id, message.id = %message_id, sync = %stored.sync, "stored feedback");
    let feedback = stored
        .to_wire()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the stored vote on {message_id} has no rating")))?;
    Ok(AppJson(feedback))
}

/// Removes the caller's vote on an answer (and its MLflow assessment); removing none is not an error.
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/api/chats/{chat_id}/messages/{message_id}/feedback", tag = "messages",
    params(("chat_id" = Uuid, Path, description = "Chat id"), ("message_id" = Uuid, Path, description = "Answer id")),
    responses(
        (status = 204, description = "Removed, or there was no vote"),
        BadRequest, Unauthorized, Forbidden, NotFound, Unavailable, Timeout)))]
pub async fn delete_feedback(
    State(state): State<AppState>,
    Extension(mlflow): Extension<MlflowSync>,
    user: CurrentUser,
    AppPath((chat_id, message_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    chats::fetch_chat(&state.db, &user.id, chat_id).await?.ok_or(ApiError::NotFound("chat"))?;
    let target = feedback::target(&state.db, chat_id, message_id).await?.ok_or(ApiError::NotFound("message"))?;
    check_answer(&target)?;
    if feedback::remove(&state.db, message_id, &user.id).await? {
        mlflow.send_now(message_id, &user.id).await;
    }
    tracing::info!(chat.id = %chat_id, message.id = %message_id, "removed feedback");
    Ok(StatusCode::NO_CONTENT)
}

/// Feedback is about answers; the other messages of a chat are refused.
fn check_answer(target: &VoteTarget) -> Result<(), ApiError> {
    match Role::parse(&target.role) {
        Some(Role::Assistant) => Ok(()),
        Some(Role::User) => Err(ApiError::bad_request("feedback is for answers; this message is the user's own")),
        _ => Err(ApiError::bad_request("feedback is for answers; this message is not one")),
    }
}

/// The comment: trimmed, blank is none, at most 2,000 characters; line breaks and tabs are kept, other control
/// characters refused (PostgreSQL cannot store a NUL, and the others are never typed).
fn comment(raw: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.chars().count() > MAX_FEEDBACK_COMMENT_CHARS {
        return Err(ApiError::bad_request(format!("comment must be at most {MAX_FEEDBACK_COMMENT_CHARS} characters")));
    }
    if raw.chars().any(|c| c.is_ascii_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(ApiError::bad_request(
            "comment must not contain control characters other than line breaks and tabs",
        ));
    }
    let trimmed = raw.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_trimmed_bounded_and_printable() {
        assert_eq!(comment(None).expect("none"), None);
        assert_eq!(comment(Some("  \n ".into())).expect("blank"), None);
        assert_eq!(comment(Some(" wrong\tyear\r\n ".into())).expect("valid"), Some("wrong\tyear".into()));
        assert!(comment(Some("é".repeat(MAX_FEEDBACK_COMMENT_CHARS))).is_ok(), "the limit counts characters");
        assert!(comment(Some("x".repeat(MAX_FEEDBACK_COMMENT_CHARS + 1))).is_err());
        assert!(comment(Some("nul\0".into())).is_err());
        assert!(comment(Some("bell\u{7}".into())).is_err());
    }

    #[test]
    fn only_answers_take_feedback() {
        let target = |role: &str| VoteTarget { role: role.into(), status: "complete".into(), trace_id: None };
        assert!(check_answer(&target("assistant")).is_ok());
        assert!(check_answer(&target("user")).is_err());
        assert!(check_answer(&target("system")).is_err());
    }
}
