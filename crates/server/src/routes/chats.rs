//! `/api/chats`: create, list (keyset pages, search, scope), get, rename, delete.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use shared::{ChatPage, ChatSummary, CreateChatRequest, UpdateChatRequest};
#[cfg(feature = "openapi")]
use utoipa::IntoParams;
use uuid::Uuid;

#[cfg(feature = "openapi")]
use super::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, Timeout, Unauthorized, Unavailable, UnsupportedMediaType,
};
use crate::db::chats::{self, ChatFilter, Section};
use crate::db::cursor::ChatCursor;
use crate::engine::title::DEFAULT_TITLE;
use crate::error::{ApiError, ApiResult, AppJson, AppPath, AppQuery};
use crate::identity::CurrentUser;
use crate::state::AppState;
use crate::validate;

/// Query of `GET /api/chats`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListChatsQuery {
    /// Page size, 1 to 100 (default 30).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Search: chats whose title or messages contain words starting with each word given (at most 200
    /// characters; control characters count as spaces).
    #[cfg_attr(feature = "openapi", param(max_length = 200))]
    pub q: Option<String>,
    /// Only chats with this scope key (1 to 200 characters, no control characters).
    #[cfg_attr(feature = "openapi", param(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"))]
    pub scope: Option<String>,
    /// `true`: only pinned chats; `false`: only chats not pinned (the sidebar lists the two apart). Absent: both.
    pub pinned: Option<bool>,
    /// `true`: only archived chats (which every other listing and search leave out).
    pub archived: Option<bool>,
}

/// Lists the caller's chats, most recently active first; archived chats only with `archived=true`.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/chats", tag = "chats", params(ListChatsQuery),
    responses((status = 200, body = ChatPage), BadRequest, Unauthorized, Unavailable, Timeout)))]
pub async fn list_chats(
    State(state): State<AppState>,
    user: CurrentUser,
    AppQuery(query): AppQuery<ListChatsQuery>,
) -> ApiResult<AppJson<ChatPage>> {
    let limit = validate::page_limit(query.limit)?;
    let after = query.cursor.as_deref().map(ChatCursor::decode).transpose().map_err(super::bad_cursor)?;
    let section = match (query.archived.unwrap_or(false), query.pinned) {
        (true, None) => Section::Archived,
        (true, Some(_)) => return Err(ApiError::bad_request("`pinned` does not combine with `archived=true`")),
        (false, Some(true)) => Section::Pinned,
        (false, Some(false)) => Section::Unpinned,
        (false, None) => Section::Listed,
    };
    let filter = ChatFilter {
        search: validate::search_text(query.q)?,
        scope: query.scope.map(|s| validate::scope(&s)).transpose()?,
        section,
    };
    if section != Section::Listed && (filter.search.is_some() || filter.scope.is_some()) {
        return Err(ApiError::bad_request("`pinned` and `archived` do not combine with `q` or `scope`"));
    }
    let mut rows = chats::list_chats(&state.db, &user.id, &filter, after, i64::from(limit) + 1).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|last| ChatCursor { updated_at: last.updated_at, chat_id: last.chat_id }.encode())
    } else {
        None
    };
    Ok(AppJson(ChatPage { chats: rows.into_iter().map(ChatSummary::from).collect(), next_cursor }))
}

/// Creates a chat for the caller.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/chats", tag = "chats", request_body = CreateChatRequest,
    responses(
        (status = 201, body = ChatSummary, headers(("Location" = String, description = "The new chat's URL"))),
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, Unavailable, Timeout)))]
pub async fn create_chat(
    State(state): State<AppState>,
    user: CurrentUser,
    AppJson(request): AppJson<CreateChatRequest>,
) -> ApiResult<impl IntoResponse> {
    let title = match request.title {
        Some(title) => validate::title(&title)?,
        None => DEFAULT_TITLE.to_owned(),
    };
    let model = request.model.map(|m| validate::model_name(&m)).transpose()?;
    let scope = request.scope.map(|s| validate::scope(&s)).transpose()?;
    let chat_id = Uuid::now_v7();
    let row = chats::insert_chat(&state.db, chat_id, &user.id, &title, model.as_deref(), scope.as_deref())
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("freshly generated chat id {chat_id} already taken")))?;
    tracing::info!(chat.id = %chat_id, "created chat");
    let location = format!("/api/chats/{chat_id}");
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], AppJson(ChatSummary::from(row))))
}

/// One of the caller's chats.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/chats/{id}", tag = "chats", params(("id" = Uuid, Path, description = "Chat id")),
    responses((status = 200, body = ChatSummary), BadRequest, Unauthorized, NotFound, Unavailable, Timeout)))]
pub async fn get_chat(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<AppJson<ChatSummary>> {
    let row = chats::fetch_chat(&state.db, &user.id, id).await?.ok_or(ApiError::NotFound("chat"))?;
    Ok(AppJson(row.into()))
}

/// Renames one of the caller's chats, chooses the sources of tools its model may use, pins or archives it.
#[cfg_attr(feature = "openapi", utoipa::path(patch, path = "/api/chats/{id}", tag = "chats", params(("id" = Uuid, Path, description = "Chat id")),
    request_body = UpdateChatRequest,
    responses(
        (status = 200, body = ChatSummary),
        BadRequest, Unauthorized, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType, Unavailable, Timeout)))]
pub async fn update_chat(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(request): AppJson<UpdateChatRequest>,
) -> ApiResult<AppJson<ChatSummary>> {
    if request.title.is_none() && request.tools.is_none() && request.pinned.is_none() && request.archived.is_none() {
        return Err(ApiError::bad_request("nothing to change: send `title`, `tools`, `pinned` or `archived`"));
    }
    let title = request.title.as_deref().map(validate::title).transpose()?;
    let tools = request.tools.map(|names| state.engine.check_tool_sources(names)).transpose()?;
    // One transaction: a request that changes several things changes all or none.
    let mut tx = state.db.begin().await?;
    let mut row = None;
    if let Some(title) = &title {
        row = Some(chats::rename_chat(&mut *tx, &user.id, id, title).await?.ok_or(ApiError::NotFound("chat"))?);
        tracing::info!(chat.id = %id, "renamed chat");
    }
    if let Some(tools) = &tools {
        row = Some(
            chats::set_tool_sources(&mut *tx, &user.id, id, Some(tools)).await?.ok_or(ApiError::NotFound("chat"))?,
        );
        tracing::info!(chat.id = %id, sources = ?tools, "chose the chat's tool sources");
    }
    if request.pinned.is_some() || request.archived.is_some() {
        row = Some(
            chats::set_place(&mut *tx, &user.id, id, request.pinned, request.archived)
                .await?
                .ok_or(ApiError::NotFound("chat"))?,
        );
    }
    tx.commit().await?;
    Ok(AppJson(row.ok_or(ApiError::NotFound("chat"))?.into()))
}

/// Deletes one of the caller's chats with all its messages.
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/api/chats/{id}", tag = "chats", params(("id" = Uuid, Path, description = "Chat id")),
    responses(
        (status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound, Unavailable, Timeout)))]
pub async fn delete_chat(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<StatusCode> {
    if !chats::delete_chat(&state.db, &user.id, id).await? {
        return Err(ApiError::NotFound("chat"));
    }
    tracing::info!(chat.id = %id, "deleted chat");
    Ok(StatusCode::NO_CONTENT)
}
