//! Taking a chat out (`GET /api/chats/{id}/export`: Markdown or JSON, the shown branch or every branch) and
//! bringing one in as a new chat of the caller (`POST /api/chats/import`, the JSON export).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::{ChatExport, ChatSummary, EXPORT_VERSION, ExportScope, MAX_IMPORT_MESSAGES, UiMessage};
#[cfg(feature = "openapi")]
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[cfg(feature = "openapi")]
use super::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, Timeout, Unauthorized, Unavailable, UnsupportedMediaType,
};
use crate::db::chats;
use crate::db::thread::{self, PageStart};
use crate::error::{ApiError, ApiResult, AppJson, AppPath, AppQuery};
use crate::export::{markdown, plan_copy};
use crate::identity::CurrentUser;
use crate::state::AppState;
use crate::validate;

/// The form of an export.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// `ChatExport` JSON (UI messages with their tree links), which `POST /api/chats/import` reads back.
    #[default]
    Json,
    /// Markdown for people.
    Markdown,
}

/// Query of `GET /api/chats/{id}/export`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ExportQuery {
    /// `json` (default) or `markdown`.
    pub format: Option<ExportFormat>,
    /// `active` (default): the branch the chat shows; `all`: every version of every message.
    pub scope: Option<ExportScope>,
}

/// The chat as a file to download (`Content-Disposition: attachment`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/chats/{id}/export", tag = "chats",
    params(("id" = Uuid, Path, description = "Chat id"), ExportQuery),
    responses(
        (status = 200, description = "The chat as `ChatExport` JSON or as Markdown",
            content((ChatExport = "application/json"), (String = "text/markdown"))),
        BadRequest, Unauthorized, NotFound, Unavailable, Timeout)))]
pub async fn export_chat(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(query): AppQuery<ExportQuery>,
) -> ApiResult<Response> {
    let chat = chats::fetch_chat(&state.db, &user.id, id).await?.ok_or(ApiError::NotFound("chat"))?;
    let scope = query.scope.unwrap_or_default();
    let limit = MAX_IMPORT_MESSAGES as i64;
    let (rows, leaf_id) = match scope {
        ExportScope::Active => {
            let mut rows = thread::page(&state.db, id, PageStart::Leaf(None), limit).await?;
            let leaf = rows.first().map(|newest| newest.message_id);
            rows.reverse();
            (rows, leaf)
        }
        ExportScope::All => {
            let leaf = thread::page(&state.db, id, PageStart::Leaf(None), 1).await?.first().map(|m| m.message_id);
            (thread::every_message(&state.db, id, limit).await?, leaf)
        }
    };
    let messages: Vec<UiMessage> = rows.into_iter().map(UiMessage::from).collect();
    let name = file_name(&chat.title);
    Ok(match query.format.unwrap_or_default() {
        ExportFormat::Markdown => {
            let body = markdown(&chat.title, &messages, scope == ExportScope::All);
            let disposition = format!("attachment; filename=\"{name}.md\"");
            (
                [
                    (header::CONTENT_TYPE, "text/markdown; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                body,
            )
                .into_response()
        }
        ExportFormat::Json => {
            let export = ChatExport {
                version: EXPORT_VERSION,
                title: chat.title,
                model: chat.model,
                created_at: chat.created_at,
                scope,
                leaf_id,
                messages,
            };
            let disposition = format!("attachment; filename=\"{name}.json\"");
            ([(header::CONTENT_DISPOSITION, disposition)], AppJson(export)).into_response()
        }
    })
}

/// A file name from a title: ASCII letters, digits and dashes only (no quoting or path tricks), never empty.
fn file_name(title: &str) -> String {
    let mut name = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('-') && !name.is_empty() {
            name.push('-');
        }
        if name.len() >= 60 {
            break;
        }
    }
    let name = name.trim_end_matches('-').to_owned();
    if name.is_empty() { "chat".to_owned() } else { name }
}

/// Brings a chat exported as JSON in as a new chat of the caller, with new ids and the same branches, showing the
/// same branch.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/chats/import", tag = "chats", request_body = ChatExport,
    responses(
        (status = 201, body = ChatSummary, headers(("Location" = String, description = "The new chat's URL"))),
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, Unavailable, Timeout)))]
pub async fn import_chat(
    State(state): State<AppState>,
    user: CurrentUser,
    AppJson(export): AppJson<ChatExport>,
) -> ApiResult<impl IntoResponse> {
    if export.version != EXPORT_VERSION {
        return Err(ApiError::bad_request(format!("this server reads exports of version {EXPORT_VERSION}")));
    }
    let title = validate::title(&export.title)?;
    let model = export.model.as_deref().map(validate::model_name).transpose()?;
    let plan = plan_copy(&export.messages, export.leaf_id).map_err(ApiError::bad_request)?;
    let chat_id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    let row = chats::insert_chat(&mut *tx, chat_id, &user.id, &title, model.as_deref(), None)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("freshly generated chat id {chat_id} already taken")))?;
    thread::insert_copy(&mut tx, chat_id, &plan.messages, plan.leaf).await?;
    tx.commit().await?;
    tracing::info!(chat.id = %chat_id, messages = plan.messages.len(), "imported a chat");
    let location = format!("/api/chats/{chat_id}");
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], AppJson(ChatSummary::from(row))))
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn file_names_are_tame() {
        assert_eq!(file_name("Quarterly revenue: Q3 / EMEA"), "quarterly-revenue-q3-emea");
        assert_eq!(file_name("\"; rm -rf /"), "rm-rf");
        assert_eq!(file_name("日本語"), "chat");
        assert_eq!(file_name("  "), "chat");
    }
}
