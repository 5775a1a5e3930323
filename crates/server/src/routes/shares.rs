//! Read-only links to a branch of a chat. The owner makes one (`POST /api/chats/{id}/shares`: the branch the chat
//! shows, up to its last message), lists and revokes them; any signed-in user of the app opens one
//! (`GET /api/shares/{id}`) and may copy it into their own chats (`POST /api/shares/{id}/copy`). A link never lets
//! anyone write to the chat, shows nothing later than its last message and no other version, and lists nowhere.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use shared::{ChatSummary, MAX_IMPORT_MESSAGES, Share, ShareList, SharedChat, UiMessage};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use super::openapi::{BadRequest, Forbidden, NotFound, Timeout, Unauthorized, Unavailable};
use crate::db::thread::{self, PageStart};
use crate::db::{answers, chats, shares};
use crate::error::{ApiError, ApiResult, AppJson, AppPath};
use crate::export::plan_copy;
use crate::identity::CurrentUser;
use crate::state::AppState;

/// Longest owner name kept with a link.
const MAX_OWNER_NAME_CHARS: usize = 200;

/// Shares the branch the chat shows, up to its last message. 409 while an answer is being written (the link would
/// show half of it).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/chats/{id}/shares", tag = "shares",
    params(("id" = Uuid, Path, description = "Chat id")),
    responses(
        (status = 201, body = Share, headers(("Location" = String, description = "The link's API URL"))),
        BadRequest, Unauthorized, Forbidden, NotFound,
        (status = 409, description = "An answer is being written (`generation_in_progress`)", body = shared::ErrorBody),
        Unavailable, Timeout)))]
pub async fn create_share(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let mut tx = state.db.begin().await?;
    chats::lock_chat(&mut tx, id).await?.filter(|chat| chat.owner_id == user.id).ok_or(ApiError::NotFound("chat"))?;
    if let Some(running) = answers::running_answer(&mut *tx, id).await? {
        return Err(ApiError::GenerationInProgress(running));
    }
    let leaf = thread::active_leaf(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::bad_request("the chat has no messages to share"))?;
    let owner_name: String = user
        .display_name
        .as_deref()
        .or(user.email.as_deref())
        .unwrap_or(&user.id)
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_OWNER_NAME_CHARS)
        .collect();
    let owner_name = if owner_name.trim().is_empty() { "A colleague".to_owned() } else { owner_name };
    let row = shares::insert(&mut *tx, Uuid::new_v4(), id, leaf.message_id, &owner_name).await?;
    tx.commit().await?;
    tracing::info!(chat.id = %id, share.id = %row.share_id, "shared a chat");
    let location = format!("/api/shares/{}", row.share_id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], AppJson(Share::from(row))))
}

/// The links of one of the caller's chats, newest first.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/chats/{id}/shares", tag = "shares",
    params(("id" = Uuid, Path, description = "Chat id")),
    responses((status = 200, body = ShareList), BadRequest, Unauthorized, NotFound, Unavailable, Timeout)))]
pub async fn list_shares(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<AppJson<ShareList>> {
    chats::fetch_chat(&state.db, &user.id, id).await?.ok_or(ApiError::NotFound("chat"))?;
    let rows = shares::list(&state.db, &user.id, id).await?;
    Ok(AppJson(ShareList { shares: rows.into_iter().map(Share::from).collect() }))
}

/// What a link shows, to anyone signed in: the chat's title, who shared it, and its branch up to the shared point.
/// 404 when the link is unknown or was revoked.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/shares/{id}", tag = "shares",
    params(("id" = Uuid, Path, description = "The link's id")),
    responses((status = 200, body = SharedChat), BadRequest, Unauthorized, NotFound, Unavailable, Timeout)))]
pub async fn get_share(
    State(state): State<AppState>,
    _viewer: CurrentUser,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<AppJson<SharedChat>> {
    let share = shares::open(&state.db, id).await?.ok_or(ApiError::NotFound("share"))?;
    let messages = shared_messages(&state, share.chat_id, share.leaf_id).await?;
    Ok(AppJson(SharedChat {
        id,
        title: share.title,
        owner_name: share.owner_name,
        shared_at: share.created_at,
        messages,
    }))
}

/// Revokes one of the caller's links: from now on it is 404 for everyone.
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/api/shares/{id}", tag = "shares",
    params(("id" = Uuid, Path, description = "The link's id")),
    responses((status = 204, description = "Revoked"), BadRequest, Unauthorized, Forbidden, NotFound, Unavailable,
        Timeout)))]
pub async fn delete_share(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<StatusCode> {
    if !shares::delete(&state.db, &user.id, id).await? {
        return Err(ApiError::NotFound("share"));
    }
    tracing::info!(share.id = %id, "revoked a share");
    Ok(StatusCode::NO_CONTENT)
}

/// Copies what a link shows into a new chat of the caller ("Continue in my chats"), which they can go on with.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/shares/{id}/copy", tag = "shares",
    params(("id" = Uuid, Path, description = "The link's id")),
    responses(
        (status = 201, body = ChatSummary, headers(("Location" = String, description = "The new chat's URL"))),
        BadRequest, Unauthorized, Forbidden, NotFound, Unavailable, Timeout)))]
pub async fn copy_share(
    State(state): State<AppState>,
    viewer: CurrentUser,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let share = shares::open(&state.db, id).await?.ok_or(ApiError::NotFound("share"))?;
    let messages = shared_messages(&state, share.chat_id, share.leaf_id).await?;
    let plan = plan_copy(&messages, None).map_err(|error| ApiError::Internal(anyhow::anyhow!(error)))?;
    let chat_id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    let row = chats::insert_chat(&mut *tx, chat_id, &viewer.id, &share.title, None, None)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("freshly generated chat id {chat_id} already taken")))?;
    thread::insert_copy(&mut tx, chat_id, &plan.messages, plan.leaf).await?;
    tx.commit().await?;
    tracing::info!(chat.id = %chat_id, share.id = %id, "copied a shared chat");
    let location = format!("/api/chats/{chat_id}");
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], AppJson(ChatSummary::from(row))))
}

/// The branch a link shows, first to last, without what belongs to the owner alone: their votes, the other
/// versions, the trace ids.
async fn shared_messages(state: &AppState, chat_id: Uuid, leaf: Uuid) -> ApiResult<Vec<UiMessage>> {
    let rows = thread::page(&state.db, chat_id, PageStart::Leaf(Some(leaf)), MAX_IMPORT_MESSAGES as i64).await?;
    Ok(rows
        .into_iter()
        .rev()
        .map(|row| {
            let mut message = UiMessage::from(row);
            message.metadata.feedback = None;
            message.metadata.branch = None;
            message.metadata.trace_id = None;
            message.metadata.resume_cursor = None;
            message
        })
        .collect())
}
