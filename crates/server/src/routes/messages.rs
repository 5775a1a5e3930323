//! `GET /api/chats/{id}/messages`: a chat's history, newest page first, each page in chat order.

use axum::extract::State;
use serde::Deserialize;
use shared::{MessagePage, UiMessage};
use utoipa::IntoParams;
use uuid::Uuid;

use super::openapi::{BadRequest, NotFound, Timeout, Unauthorized, Unavailable};
use crate::db::cursor::decode_message_cursor;
use crate::db::{chats, thread};
use crate::error::{ApiError, ApiResult, AppJson, AppPath, AppQuery};
use crate::identity::CurrentUser;
use crate::state::AppState;
use crate::validate;

/// Query of `GET /api/chats/{id}/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListMessagesQuery {
    /// Page size, 1 to 100 (default 30).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_before` of the previous page: returns the messages just older than it.
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub before: Option<String>,
}

/// The chat's messages, newest page first; within a page, oldest first.
#[utoipa::path(get, path = "/api/chats/{id}/messages", tag = "messages",
    params(("id" = Uuid, Path, description = "Chat id"), ListMessagesQuery),
    responses((status = 200, body = MessagePage), BadRequest, Unauthorized, NotFound, Unavailable, Timeout))]
pub async fn list_messages(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(query): AppQuery<ListMessagesQuery>,
) -> ApiResult<AppJson<MessagePage>> {
    let limit = validate::page_limit(query.limit)?;
    let before = query.before.as_deref().map(decode_message_cursor).transpose().map_err(super::bad_cursor)?;
    chats::fetch_chat(&state.db, &user.id, id).await?.ok_or(ApiError::NotFound("chat"))?;
    let mut rows = thread::page(&state.db, id, before, i64::from(limit) + 1).await?;
    let next_before = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|oldest| oldest.seq.to_string())
    } else {
        None
    };
    rows.reverse();
    Ok(AppJson(MessagePage { messages: rows.into_iter().map(UiMessage::from).collect(), next_before }))
}
