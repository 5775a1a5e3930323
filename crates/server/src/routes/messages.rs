//! A chat's messages: `GET /api/chats/{id}/messages` reads a branch (the active one, or another with `?leaf=`),
//! newest page first, each page in chat order; `POST /api/chats/{id}/branch` switches the branch the chat shows and
//! continues, and answers with its first page.

use axum::extract::State;
use serde::Deserialize;
use shared::{MessagePage, SwitchBranch, UiMessage, UpdateMessageRequest};
#[cfg(feature = "openapi")]
use utoipa::IntoParams;
use uuid::Uuid;

#[cfg(feature = "openapi")]
use super::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, Timeout, Unauthorized, Unavailable, UnsupportedMediaType,
};
use crate::db::cursor::decode_message_cursor;
use crate::db::thread::{MessageRow, PageStart};
use crate::db::{answers, chats, thread};
use crate::error::{ApiError, ApiResult, AppJson, AppPath, AppQuery};
use crate::identity::CurrentUser;
use crate::state::AppState;
use crate::validate;

/// Query of `GET /api/chats/{id}/messages`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListMessagesQuery {
    /// Page size, 1 to 100 (default 30).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// `next_before` of the previous page: returns the messages just older than it.
    #[cfg_attr(feature = "openapi", param(pattern = "^[1-9][0-9]{0,17}$"))]
    pub before: Option<String>,
    /// Read the branch through this message (down to the newest version at every step below it) instead of the
    /// active one, without switching to it. Ignored with `before`, which continues the branch of its page.
    pub leaf: Option<Uuid>,
}

/// Query of `POST /api/chats/{id}/branch`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct SwitchBranchQuery {
    /// Size of the page returned, 1 to 100 (default 30).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
}

/// The messages of a branch of the chat (the active one unless `leaf` names another), newest page first; within
/// a page, oldest first. Each message has its `parent_id` and, when it has other versions, `branch` (their ids and
/// its position among them).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/chats/{id}/messages", tag = "messages",
    params(("id" = Uuid, Path, description = "Chat id"), ListMessagesQuery),
    responses((status = 200, body = MessagePage), BadRequest, Unauthorized, NotFound, Unavailable, Timeout)))]
pub async fn list_messages(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(query): AppQuery<ListMessagesQuery>,
) -> ApiResult<AppJson<MessagePage>> {
    let limit = validate::page_limit(query.limit)?;
    let before = query.before.as_deref().map(decode_message_cursor).transpose().map_err(super::bad_cursor)?;
    chats::fetch_chat(&state.db, &user.id, id).await?.ok_or(ApiError::NotFound("chat"))?;
    let start = match (before, query.leaf) {
        (Some(seq), _) => PageStart::Above(seq),
        (None, Some(through)) => PageStart::Leaf(Some(
            thread::leaf_through(&state.db, id, through).await?.ok_or(ApiError::NotFound("message"))?,
        )),
        (None, None) => PageStart::Leaf(None),
    };
    let rows = thread::page(&state.db, id, start, i64::from(limit)).await?;
    Ok(AppJson(to_page(rows, matches!(start, PageStart::Leaf(_)))))
}

/// Shows and continues the branch through `message_id` from now on (down to the newest version at every step below
/// it), for every client of the chat; answers with the branch's first page. 409 while an answer is being written.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/chats/{id}/branch", tag = "messages", request_body = SwitchBranch,
    params(("id" = Uuid, Path, description = "Chat id"), SwitchBranchQuery),
    responses((status = 200, body = MessagePage), BadRequest, Unauthorized, Forbidden, NotFound, PayloadTooLarge,
        UnsupportedMediaType,
        (status = 409, description = "An answer is being written in this chat (`generation_in_progress`)",
            body = shared::ErrorBody),
        Unavailable, Timeout)))]
pub async fn switch_branch(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(query): AppQuery<SwitchBranchQuery>,
    AppJson(body): AppJson<SwitchBranch>,
) -> ApiResult<AppJson<MessagePage>> {
    let limit = validate::page_limit(query.limit)?;
    let mut tx = state.db.begin().await?;
    // The chat's lock orders the switch with turn starts: none can begin on the branch being left meanwhile.
    chats::lock_chat(&mut tx, id).await?.filter(|chat| chat.owner_id == user.id).ok_or(ApiError::NotFound("chat"))?;
    if let Some(running) = answers::running_answer(&mut *tx, id).await? {
        return Err(ApiError::GenerationInProgress(running));
    }
    let leaf = thread::leaf_through(&mut *tx, id, body.message_id).await?.ok_or(ApiError::NotFound("message"))?;
    thread::set_active_leaf(&mut *tx, id, leaf).await?;
    tx.commit().await?;
    let rows = thread::page(&state.db, id, PageStart::Leaf(Some(leaf)), i64::from(limit)).await?;
    Ok(AppJson(to_page(rows, true)))
}

/// Pins a message (it is then sent to the model as it is however long the chat grows: never summarised) or unpins
/// it. Answers with the message's id and new state.
#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/api/chats/{chat_id}/messages/{message_id}", tag = "messages",
    request_body = UpdateMessageRequest,
    params(("chat_id" = Uuid, Path, description = "Chat id"), ("message_id" = Uuid, Path, description = "Message id")),
    responses((status = 200, body = UpdateMessageRequest), BadRequest, Unauthorized, Forbidden, NotFound,
        PayloadTooLarge, UnsupportedMediaType, Unavailable, Timeout)))]
pub async fn update_message(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath((chat_id, message_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<UpdateMessageRequest>,
) -> ApiResult<AppJson<UpdateMessageRequest>> {
    let mut tx = state.db.begin().await?;
    chats::fetch_chat(&mut *tx, &user.id, chat_id).await?.ok_or(ApiError::NotFound("chat"))?;
    let pinned =
        thread::set_pinned(&mut tx, chat_id, message_id, body.pinned).await?.ok_or(ApiError::NotFound("message"))?;
    tx.commit().await?;
    Ok(AppJson(UpdateMessageRequest { pinned }))
}

/// A page from its rows, newest first: the cursor is the oldest message's seq while it has a parent.
fn to_page(mut rows: Vec<MessageRow>, from_leaf: bool) -> MessagePage {
    let leaf_id = from_leaf.then(|| rows.first().map(|newest| newest.message_id)).flatten();
    let next_before = rows.last().filter(|oldest| oldest.parent_id.is_some()).map(|oldest| oldest.seq.to_string());
    rows.reverse();
    MessagePage { messages: rows.into_iter().map(UiMessage::from).collect(), next_before, leaf_id }
}
