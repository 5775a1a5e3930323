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
    IncomingMessage, Me, MessagePage, ModelList, Share, ShareList, SharedChat, SwitchBranch, Trigger, UiChunk,
    UpdateChatRequest, UpdateMessageRequest,
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

/// `GET /api/chats`: a page of the caller's chats: those matching `query` when it is not blank, else those of one
/// part of the sidebar (`section`: `pinned=true`, `pinned=false` or `archived=true`).
pub async fn chats(query: &str, section: &str, cursor: Option<&str>) -> ApiResult<ChatPage> {
    let mut url = format!("/api/chats?limit={CHAT_PAGE}&");
    if query.trim().is_empty() {
        url.push_str(section);
    } else {
        url.push_str("q=");
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

/// `PATCH /api/chats/{id}`: renames a chat, chooses the sources of tools its model may use, pins or archives it.
pub async fn update_chat(id: Uuid, change: UpdateChatRequest) -> ApiResult<ChatSummary> {
    send_json(Request::patch(&format!("/api/chats/{id}")), &change).await
}

/// `DELETE /api/chats/{id}`.
pub async fn delete_chat(id: Uuid) -> ApiResult<()> {
    send(Request::delete(&format!("/api/chats/{id}")).build()).await.map(|_| ())
}

/// `GET /api/chats/{id}/messages`: the newest `limit` messages of the chat's branch (the one through `leaf`, else
/// the active one), or those before the cursor `before`.
pub async fn messages(id: Uuid, before: Option<&str>, leaf: Option<Uuid>, limit: u32) -> ApiResult<MessagePage> {
    let mut url = format!("/api/chats/{id}/messages?limit={limit}");
    if let Some(before) = before {
        url.push_str("&before=");
        url.push_str(&String::from(js_sys::encode_uri_component(before)));
    }
    if let Some(leaf) = leaf {
        url.push_str(&format!("&leaf={leaf}"));
    }
    get(&url).await
}

/// `POST /api/chats/{id}/branch`: shows and continues the branch through `message_id`; its newest messages.
pub async fn switch_branch(id: Uuid, message_id: Uuid, limit: u32) -> ApiResult<MessagePage> {
    send_json(Request::post(&format!("/api/chats/{id}/branch?limit={limit}")), &SwitchBranch { message_id }).await
}

/// `POST /api/chat` with a new user message (and, for a new chat, its tool sources): the answer's stream. `after`:
/// the answer shown last, which the message follows; `edit`: the question this message is a new version of.
pub async fn send_message(
    chat: Uuid,
    client_id: String,
    text: &str,
    model: Option<String>,
    tools: Option<Vec<String>>,
    after: Option<String>,
    edit: Option<String>,
) -> ApiResult<ChatStream> {
    let message = IncomingMessage::user_text(Some(client_id), text);
    // The lean body, or the AI SDK's list when the message follows a given answer (the branch on screen).
    let (messages, message) = match after {
        Some(after) => {
            let shown =
                IncomingMessage { id: Some(after), role: "assistant".into(), parts: Vec::new(), metadata: None };
            (Some(vec![shown, message]), None)
        }
        None => (None, Some(IncomingContent::Message(message))),
    };
    let body = ChatTurnRequest { id: chat, messages, message, trigger: None, message_id: edit, model, tools };
    open_stream(Request::post("/api/chat").json(&body)).await
}

/// `POST /api/chat` answering again: a new version of the answer `answer` (else of the branch's last answer),
/// streamed.
pub async fn regenerate(chat: Uuid, model: Option<String>, answer: Option<String>) -> ApiResult<ChatStream> {
    let body = ChatTurnRequest {
        id: chat,
        messages: Some(Vec::new()),
        message: None,
        trigger: Some(Trigger::RegenerateMessage),
        message_id: answer,
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

/// The body of writes whose route takes none: an empty JSON object keeps them JSON writes, as every write is.
#[derive(Serialize)]
struct NoBody {}

/// `POST /api/chat/{id}/stop`: stops the answer streaming in a chat.
pub async fn stop(chat: Uuid) -> ApiResult<()> {
    send(Request::post(&format!("/api/chat/{chat}/stop")).json(&NoBody {})).await.map(|_| ())
}

/// `PATCH /api/chats/{id}/messages/{message_id}`: pins a message (never summarised) or unpins it.
pub async fn pin_message(chat: Uuid, message: &str, pinned: bool) -> ApiResult<()> {
    let url = format!("/api/chats/{chat}/messages/{}", String::from(js_sys::encode_uri_component(message)));
    send(Request::patch(&url).json(&UpdateMessageRequest { pinned })).await.map(|_| ())
}

/// `GET /api/chats/{id}/export`: the address of the chat as a file, `markdown` or `json`, of the branch shown
/// (`active`) or of every version (`all`); a link downloads it.
pub fn export_url(chat: Uuid, format: &str, scope: &str) -> String {
    format!("/api/chats/{chat}/export?format={format}&scope={scope}")
}

/// `POST /api/chats/{id}/shares`: a read-only link to the branch the chat shows.
pub async fn create_share(chat: Uuid) -> ApiResult<Share> {
    send_json(Request::post(&format!("/api/chats/{chat}/shares")), &NoBody {}).await
}

/// `GET /api/chats/{id}/shares`: the chat's links, newest first.
pub async fn shares(chat: Uuid) -> ApiResult<ShareList> {
    get(&format!("/api/chats/{chat}/shares")).await
}

/// `DELETE /api/shares/{id}`: revokes a link.
pub async fn revoke_share(id: Uuid) -> ApiResult<()> {
    send(Request::delete(&format!("/api/shares/{id}")).build()).await.map(|_| ())
}

/// `GET /api/shares/{id}`: what a link shows.
pub async fn shared_chat(id: Uuid) -> ApiResult<SharedChat> {
    get(&format!("/api/shares/{id}")).await
}

/// `POST /api/shares/{id}/copy`: what a link shows, copied into a new chat of the caller.
pub async fn copy_share(id: Uuid) -> ApiResult<ChatSummary> {
    send_json(Request::post(&format!("/api/shares/{id}/copy")), &NoBody {}).await
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
    let body = decode::<ErrorBody>(response.text().await.map_err(|e| ApiError::Network(e.to_string())));
    let body = body.unwrap_or_else(|_| {
        ErrorBody::new("http_error", format!("The server answered {status} {}", response.status_text()))
    });
    Err(ApiError::Api { status, body })
}

async fn send(request: Result<Request, gloo_net::Error>) -> ApiResult<Response> {
    let request = request.map_err(|e| ApiError::Network(e.to_string()))?;
    check(request.send().await.map_err(|e| ApiError::Network(e.to_string()))?).await
}

/// The body of a successful answer. Bodies are read as text here, once, and decoded apart ([`decode`]): reading
/// them per type (`Response::json`) repeats the reading for every type the app receives.
async fn text(request: Result<Request, gloo_net::Error>) -> ApiResult<String> {
    let response = send(request).await?;
    response.text().await.map_err(|e| ApiError::Network(e.to_string()))
}

fn decode<T: DeserializeOwned>(text: ApiResult<String>) -> ApiResult<T> {
    serde_json::from_str(&text?).map_err(|e| ApiError::Network(e.to_string()))
}

async fn get<T: DeserializeOwned>(path: &str) -> ApiResult<T> {
    decode(text(Request::get(path).build()).await)
}

async fn send_json<B: Serialize, T: DeserializeOwned>(builder: RequestBuilder, body: &B) -> ApiResult<T> {
    decode(text(builder.json(body)).await)
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
            .map_err(|_| "the connection dropped".to_owned())
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
