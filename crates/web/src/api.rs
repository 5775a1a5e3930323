//! The server's API as typed functions: one per endpoint, sending and receiving the `shared` types. No other module
//! builds a URL or a JSON body. Streaming turns come back as decoded server-sent events (fetch + a readable stream
//! of the body, decoded into the shared `UiChunk` type).

use std::pin::Pin;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::{
    AppConfig, ApprovalAnswer, ChatPage, ChatSummary, ChatTurnRequest, ErrorBody, FeedbackRequest, IncomingContent,
    IncomingMessage, Me, MessagePage, ModelList, Trigger, UiChunk, UpdateChatRequest,
};
use uuid::Uuid;
use wasm_bindgen::JsCast;

/// Chats per page of the sidebar.
const CHAT_PAGE: u32 = 30;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The server could not be reached (or the connection dropped).
    Network(String),
    /// The server answered with an error.
    Api {
        /// HTTP status.
        status: u16,
        /// The error envelope.
        body: ErrorBody,
    },
}

impl ApiError {
    /// A message to show the user.
    pub fn message(&self) -> String {
        match self {
            ApiError::Network(_) => "The server cannot be reached. Check your connection and try again.".to_owned(),
            ApiError::Api { body, .. } => body.error.message.clone(),
        }
    }

    /// The error code, for the API kind.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Api { body, .. } => Some(&body.error.code),
            ApiError::Network(_) => None,
        }
    }
}

/// `Result` of a call.
pub type ApiResult<T> = Result<T, ApiError>;

/// One decoded stream event: its id (sequence number) and chunk.
pub type StreamItem = (Option<u64>, UiChunk);

/// A turn's events, ending with the stream (or an error if the connection dropped).
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<StreamItem, String>>>>;

/// `GET /api/me`: who is signed in.
pub async fn me() -> ApiResult<Me> {
    get("/api/me").await
}

/// `GET /api/config`: the greeting and suggestions.
pub async fn config() -> ApiResult<AppConfig> {
    get("/api/config").await
}

/// `GET /api/models`: the models offered.
pub async fn models() -> ApiResult<ModelList> {
    get("/api/models").await
}

/// `GET /api/chats`: a page of the caller's chats, matching `query` when it is not blank.
pub async fn chats(query: &str, cursor: Option<&str>) -> ApiResult<ChatPage> {
    let mut url = format!("/api/chats?limit={CHAT_PAGE}");
    if !query.trim().is_empty() {
        url.push_str("&q=");
        url.push_str(&String::from(js_sys::encode_uri_component(query.trim())));
    }
    if let Some(cursor) = cursor {
        url.push_str("&cursor=");
        url.push_str(&String::from(js_sys::encode_uri_component(cursor)));
    }
    get(&url).await
}

/// `GET /api/chats/{id}`.
pub async fn chat(id: Uuid) -> ApiResult<ChatSummary> {
    get(&format!("/api/chats/{id}")).await
}

/// `PATCH /api/chats/{id}`: renames a chat.
pub async fn rename_chat(id: Uuid, title: String) -> ApiResult<ChatSummary> {
    send_json(Request::patch(&format!("/api/chats/{id}")), &UpdateChatRequest { title: Some(title), tools: None }).await
}

/// `PATCH /api/chats/{id}`: chooses the sources of tools the chat's model may use.
pub async fn set_chat_tools(id: Uuid, tools: Vec<String>) -> ApiResult<ChatSummary> {
    send_json(Request::patch(&format!("/api/chats/{id}")), &UpdateChatRequest { title: None, tools: Some(tools) }).await
}

/// `DELETE /api/chats/{id}`.
pub async fn delete_chat(id: Uuid) -> ApiResult<()> {
    send(Request::delete(&format!("/api/chats/{id}")).build()).await.map(|_| ())
}

/// `GET /api/chats/{id}/messages`: the newest `limit` messages, or those before the cursor `before`.
pub async fn messages(id: Uuid, before: Option<&str>, limit: u32) -> ApiResult<MessagePage> {
    let mut url = format!("/api/chats/{id}/messages?limit={limit}");
    if let Some(before) = before {
        url.push_str("&before=");
        url.push_str(&String::from(js_sys::encode_uri_component(before)));
    }
    get(&url).await
}

/// `POST /api/chat` with a new user message (and, for a new chat, its tool sources): the answer's stream.
pub async fn send_message(
    chat: Uuid,
    client_id: String,
    text: &str,
    model: Option<String>,
    tools: Option<Vec<String>>,
) -> ApiResult<ChatStream> {
    let body = ChatTurnRequest {
        id: chat,
        messages: None,
        message: Some(IncomingContent::Message(IncomingMessage::user_text(Some(client_id), text))),
        trigger: None,
        message_id: None,
        model,
        tools,
    };
    open_stream(Request::post("/api/chat").json(&body)).await
}

/// `POST /api/chat` answering the last user message again: the new answer's stream.
pub async fn regenerate(chat: Uuid, model: Option<String>) -> ApiResult<ChatStream> {
    let body = ChatTurnRequest {
        id: chat,
        messages: Some(Vec::new()),
        message: None,
        trigger: Some(Trigger::RegenerateMessage),
        message_id: None,
        model,
        tools: None,
    };
    open_stream(Request::post("/api/chat").json(&body)).await
}

/// `GET /api/chat/{id}/stream`: the events of the answer after `last_event` (pinned to `answer` when known).
pub async fn resume(chat: Uuid, answer: Option<&str>, last_event: u64) -> ApiResult<ChatStream> {
    let mut url = format!("/api/chat/{chat}/stream");
    if let Some(answer) = answer {
        url.push_str("?generation=");
        url.push_str(&String::from(js_sys::encode_uri_component(answer)));
    }
    let mut request = Request::get(&url);
    if last_event > 0 {
        request = request.header("Last-Event-ID", &last_event.to_string());
    }
    open_stream(request.build()).await
}

/// `POST /api/chat/{id}/stop`: stops the answer streaming in a chat.
pub async fn stop(chat: Uuid) -> ApiResult<()> {
    /// The route takes no body; an empty JSON object keeps it a JSON write, as every write is.
    #[derive(Serialize)]
    struct NoBody {}
    send(Request::post(&format!("/api/chat/{chat}/stop")).json(&NoBody {})).await.map(|_| ())
}

/// `POST /api/chat/{id}/approvals/{approval_id}`: allows or denies a tool call an agent asked about; the answer
/// goes on in the returned stream (same message, event ids after its stored ones).
pub async fn answer_approval(
    chat: Uuid,
    approval_id: &str,
    approve: bool,
    reason: Option<String>,
) -> ApiResult<ChatStream> {
    let url = format!("/api/chat/{chat}/approvals/{}", String::from(js_sys::encode_uri_component(approval_id)));
    open_stream(Request::post(&url).json(&ApprovalAnswer { approve, reason })).await
}

/// `PUT /api/chats/{id}/messages/{message_id}/feedback` with the caller's vote on an answer, or `DELETE` without
/// one (the vote taken back).
pub async fn set_feedback(chat: Uuid, message: &str, vote: Option<FeedbackRequest>) -> ApiResult<()> {
    let url = feedback_url(chat, message);
    let request = match &vote {
        Some(vote) => Request::put(&url).json(vote),
        None => Request::delete(&url).build(),
    };
    send(request).await.map(|_| ())
}

fn feedback_url(chat: Uuid, message: &str) -> String {
    format!("/api/chats/{chat}/messages/{}/feedback", String::from(js_sys::encode_uri_component(message)))
}

async fn check(response: Response) -> ApiResult<Response> {
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.json::<ErrorBody>().await.unwrap_or_else(|_| {
        ErrorBody::new("http_error", format!("The server answered {status} {}", response.status_text()))
    });
    Err(ApiError::Api { status, body })
}

async fn send(request: Result<Request, gloo_net::Error>) -> ApiResult<Response> {
    let request = request.map_err(|e| ApiError::Network(e.to_string()))?;
    check(request.send().await.map_err(|e| ApiError::Network(e.to_string()))?).await
}

async fn get<T: DeserializeOwned>(path: &str) -> ApiResult<T> {
    let response = send(Request::get(path).build()).await?;
    response.json::<T>().await.map_err(|e| ApiError::Network(e.to_string()))
}

async fn send_json<B: Serialize, T: DeserializeOwned>(builder: RequestBuilder, body: &B) -> ApiResult<T> {
    let response = send(builder.json(body)).await?;
    response.json::<T>().await.map_err(|e| ApiError::Network(e.to_string()))
}

/// A streaming answer, or nothing to stream (204).
pub type ChatStream = Option<ChunkStream>;

async fn open_stream(request: Result<Request, gloo_net::Error>) -> ApiResult<ChatStream> {
    let response = send(request).await?;
    if response.status() == 204 {
        return Ok(None);
    }
    let body = response.body().ok_or_else(|| ApiError::Network("the response has no body".to_owned()))?;
    let bytes = wasm_streams::ReadableStream::from_raw(body).into_stream().map(|chunk| {
        chunk
            .map_err(|e| format!("{e:?}"))
            .and_then(|value| value.dyn_into::<js_sys::Uint8Array>().map_err(|_| "unexpected stream chunk".to_owned()))
            .map(|array| Bytes::from(array.to_vec()))
    });
    let events = bytes.eventsource().filter_map(|event| async move {
        match event {
            Err(error) => Some(Err(error.to_string())),
            Ok(event) if event.data == shared::DONE_SENTINEL => None,
            // Chunk types this client does not know are skipped, so a newer server keeps working.
            Ok(event) => {
                serde_json::from_str::<UiChunk>(&event.data).ok().map(|chunk| Ok((event.id.parse().ok(), chunk)))
            }
        }
    });
    Ok(Some(Box::pin(events)))
}
