//! The streaming chat API, compatible with the Vercel AI SDK: start a turn (`POST /api/chat`), resume it
//! (`GET /api/chat/{id}/stream`), stop it (`POST /api/chat/{id}/stop`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
#[cfg(feature = "openapi")]
use shared::ErrorBody;
use shared::{
    ChatTurnRequest, IdentityMode, IncomingContent, IncomingMessage, MAX_CLIENT_ID_CHARS, MAX_MESSAGE_CHARS,
    StopResponse, Trigger, TurnAccepted,
};
#[cfg(feature = "openapi")]
use utoipa::IntoParams;
use uuid::Uuid;

#[cfg(feature = "openapi")]
use super::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, RateLimited, StreamEvent, Timeout, Unauthorized, Unavailable,
    UnsupportedMediaType,
};
use super::sse::{prefers_async, text_stream, ui_message_stream, wants_plain_text};
use crate::config::ModelAuth;
use crate::engine::TurnInput;
use crate::error::{ApiError, ApiResult, AppJson, AppPath, AppQuery};
use crate::identity::CurrentUser;
use crate::state::AppState;

/// Starts a turn and streams the answer.
///
/// Body: the AI SDK `DefaultChatTransport` body (`{id, messages, trigger, messageId?}` plus `model`) or
/// `{id, message, model?}`. Only the last user message is read; the history comes from the database. A user
/// message id the server has seen in this chat returns that turn again instead of creating a new one.
/// Response: the UI message stream (SSE); `Accept: text/plain` streams text only; `Prefer: respond-async`
/// answers 202 at once with the generation id to poll.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/chat", tag = "chat", request_body = ChatTurnRequest,
    params(("Prefer" = Option<String>, Header, pattern = "^respond-async$",
        description = "`respond-async`: answer 202 at once instead of streaming")),
    responses(
        (status = 200, description = "The UI message stream (SSE), or with `Accept: text/plain` the text alone",
            content((StreamEvent = "text/event-stream"), (String = "text/plain")),
            headers(("X-Chat-Id" = Uuid, description = "The chat"),
                    ("X-Message-Id" = Uuid, description = "The answer (generation) being written"))),
        (status = 202, description = "Started (`Prefer: respond-async`)", body = TurnAccepted,
            headers(("Location" = String, description = "The generation to poll"))),
        BadRequest, Unauthorized, Forbidden, NotFound,
        (status = 409, description = "A turn is already running in this chat (`generation_in_progress`, with its \
            `generation_id`), or a message id whose answer was deleted", body = ErrorBody),
        PayloadTooLarge, UnsupportedMediaType, RateLimited, Unavailable)))]
pub async fn post_chat(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    AppJson(body): AppJson<ChatTurnRequest>,
) -> ApiResult<Response> {
    let target = body.message_id.as_deref().map(validate_client_id).transpose()?;
    let (text, client_id, after) = match body.trigger.unwrap_or(Trigger::SubmitMessage) {
        Trigger::SubmitMessage => {
            let message = new_user_message(&body)?;
            let after = shown_before_new_message(&body).and_then(|id| validate_client_id(&id).ok());
            (Some(validate_text(&message.text())?), message.id.map(|id| validate_client_id(&id)).transpose()?, after)
        }
        Trigger::RegenerateMessage => (None, None, None),
    };
    let user_token = model_user_token(&state, &user)?;
    let tools = body.tools.map(|names| state.engine.check_tool_sources(names)).transpose()?;
    let input = TurnInput { text, target, after, client_id, model: body.model, user_token, tools };
    let started = state.engine.start_turn(&user.id, body.id, input).await?;
    if prefers_async(&headers) {
        let accepted = TurnAccepted {
            generation_id: started.answer_id,
            chat_id: started.chat_id,
            user_message_id: started.user_message_id,
        };
        let location = format!("/api/generations/{}", started.answer_id);
        return Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], AppJson(accepted)).into_response());
    }
    let chunks = state.engine.follow(started.answer_id, 0).await?;
    Ok(if wants_plain_text(&headers) {
        text_stream(chunks, started.chat_id, started.answer_id)
    } else {
        ui_message_stream(chunks, started.chat_id, started.answer_id, state.config.engine.keepalive_interval)
    })
}

/// The token model calls run with: the user's own under `MODEL_AUTH=user`, else none (the app's identity).
///
/// Locally there is no proxy to forward a token, and the app's identity is the developer's own profile anyway.
pub(super) fn model_user_token(state: &AppState, user: &CurrentUser) -> ApiResult<Option<secrecy::SecretString>> {
    match (state.config.models.auth, &user.access_token, user.mode) {
        (ModelAuth::App, _, _) => Ok(None),
        (ModelAuth::User, Some(token), _) => Ok(Some(token.clone())),
        (ModelAuth::User, None, IdentityMode::LocalUser) => Ok(None),
        (ModelAuth::User, None, _) => Err(ApiError::UserTokenMissing),
    }
}

/// The message to answer: the lean body's `message`, else the last user message of `messages`.
fn new_user_message(body: &ChatTurnRequest) -> ApiResult<IncomingMessage> {
    if let Some(content) = &body.message {
        return Ok(match content {
            IncomingContent::Text(text) => IncomingMessage::user_text(None, text),
            IncomingContent::Message(message) if message.role == "user" => message.clone(),
            IncomingContent::Message(_) => return Err(ApiError::bad_request("`message` must have the role `user`")),
        });
    }
    body.messages
        .as_deref()
        .and_then(|messages| messages.iter().rev().find(|m| m.role == "user"))
        .cloned()
        .ok_or_else(|| ApiError::bad_request("the body needs `message`, or `messages` ending with a user message"))
}

/// The id of the message an AI SDK client shows just before the new user message (the branch it continues).
fn shown_before_new_message(body: &ChatTurnRequest) -> Option<String> {
    let messages = body.messages.as_deref()?;
    let last_user = messages.iter().rposition(|m| m.role == "user")?;
    messages[..last_user].last()?.id.clone()
}

fn validate_text(text: &str) -> ApiResult<String> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("the message has no text"));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::bad_request(format!("the message is longer than {MAX_MESSAGE_CHARS} characters")));
    }
    // PostgreSQL stores no NUL in text or JSON; refused here rather than failing the insert.
    if text.contains('\0') {
        return Err(ApiError::bad_request("the message must not contain NUL characters (\\u0000)"));
    }
    Ok(text.to_owned())
}

fn validate_client_id(id: &str) -> ApiResult<String> {
    if id.is_empty() || id.chars().count() > MAX_CLIENT_ID_CHARS || id.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "message id must be 1 to {MAX_CLIENT_ID_CHARS} printable characters"
        )));
    }
    Ok(id.to_owned())
}

/// Query of `GET /api/chat/{id}/stream`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ResumeQuery {
    /// Last event id the client saw (same as the `Last-Event-ID` header, which wins), 0 to 2^63 - 1.
    #[cfg_attr(feature = "openapi", param(pattern = "^[0-9]{1,18}$"))]
    pub cursor: Option<String>,
    /// The generation the cursor belongs to; replays it even if it just finished.
    pub generation: Option<Uuid>,
}

/// Resumes the chat's running turn: replays the events after the last one the client saw, then streams live.
/// 204 when there is nothing to resume: nothing runs, or the chat is not one of the caller's (unknown, or another
/// user's: the two cannot be told apart, and `useChat({ resume: true })` on a new chat id starts cleanly).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/chat/{id}/stream", tag = "chat",
    params(("id" = Uuid, Path, description = "Chat id"),
        ("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]{1,18}$",
            description = "Last event id the client saw (wins over `cursor`)"),
        ResumeQuery),
    responses(
        (status = 200, description = "The UI message stream (SSE)", content((StreamEvent = "text/event-stream")),
            headers(("X-Chat-Id" = Uuid, description = "The chat"),
                    ("X-Message-Id" = Uuid, description = "The answer (generation) being followed"))),
        (status = 204, description = "Nothing to resume: no turn runs, or the caller has no such chat"),
        BadRequest, Unauthorized, NotFound, Unavailable)))]
pub async fn resume_chat(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    AppPath(chat_id): AppPath<Uuid>,
    AppQuery(query): AppQuery<ResumeQuery>,
) -> ApiResult<Response> {
    let raw_cursor = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned).or(query.cursor);
    let after = match raw_cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => 0,
        Some(raw) => parse_event_id(raw)?,
    };
    let running = match state.engine.running_in_chat(&user.id, chat_id).await {
        Ok(running) => running,
        Err(ApiError::NotFound(_)) => return Ok(StatusCode::NO_CONTENT.into_response()),
        Err(error) => return Err(error),
    };
    let generation_id = match (running, query.generation) {
        (Some(running), pinned) if pinned.is_none_or(|p| p == running) => running,
        // The turn the client followed ended meanwhile: replay what it missed of it.
        (_, Some(pinned)) if after > 0 => pinned_generation(&state, chat_id, pinned).await?,
        (None, None) if after > 0 => match state.engine.latest_in_chat(chat_id).await? {
            Some((latest, false)) => latest,
            _ => return Ok(StatusCode::NO_CONTENT.into_response()),
        },
        _ => return Ok(StatusCode::NO_CONTENT.into_response()),
    };
    let chunks = state.engine.follow(generation_id, after).await?;
    Ok(ui_message_stream(chunks, chat_id, generation_id, state.config.engine.keepalive_interval))
}

/// An event id from a client: 0 to `i64::MAX`, the range the stored log numbers events in (`bigint`). Larger
/// ones would turn negative when compared with the stored sequence numbers, and the next id after `u64::MAX`
/// does not exist.
fn parse_event_id(raw: &str) -> ApiResult<u64> {
    raw.parse::<i64>()
        .ok()
        .and_then(|id| u64::try_from(id).ok())
        .ok_or_else(|| ApiError::bad_request(format!("the event id must be a whole number from 0 to {}", i64::MAX)))
}

/// The pinned generation, if it is an answer in this (already ownership-checked) chat.
async fn pinned_generation(state: &AppState, chat_id: Uuid, generation_id: Uuid) -> ApiResult<Uuid> {
    if crate::db::thread::is_answer_in_chat(&state.db, chat_id, generation_id).await? {
        Ok(generation_id)
    } else {
        Err(ApiError::NotFound("generation"))
    }
}

/// Stops the chat's running turn; the text so far is kept with status `stopped`.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/api/chat/{id}/stop", tag = "chat", params(("id" = Uuid, Path, description = "Chat id")),
    responses((status = 200, body = StopResponse), BadRequest, Unauthorized, Forbidden, NotFound, Unavailable, Timeout)))]
pub async fn stop_chat(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(chat_id): AppPath<Uuid>,
) -> ApiResult<AppJson<StopResponse>> {
    Ok(AppJson(state.engine.stop(&user.id, chat_id).await?))
}
