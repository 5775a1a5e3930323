//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the shared types,
//! and what it says the operations answer besides their own success bodies: the error responses they share (each
//! the one error envelope, [`ErrorBody`], under one status) and the shape of a streamed event. These types only
//! describe; handlers answer with [`crate::error::ApiError`] and [`super::sse`], and the API fuzzer
//! (`scripts/fuzz-api.sh`) checks that the two agree.

use shared::ErrorBody;
use utoipa::openapi::OpenApi as Document;
use utoipa::{IntoResponses, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Databricks Chat API",
        description = "Chats and messages of the signed-in user (identity from the Databricks Apps proxy). \
                       Errors always have the body `{\"error\":{\"code\":\"...\",\"message\":\"...\"}}`."
    ),
    tags(
        (name = "chats", description = "Create, list, search, rename, pin, archive, export, import and delete chats"),
        (name = "messages", description = "Chat history and its branches, and feedback on answers"),
        (name = "shares", description = "Read-only links to a branch of a chat"),
        (name = "chat", description = "Turns: stream an answer (AI SDK UI message stream), resume, stop, poll"),
        (name = "system", description = "Health and identity")
    )
)]
struct ApiDoc;

/// Title, description and tags; the paths are added by the router.
pub fn base_document() -> Document {
    ApiDoc::openapi()
}

/// The input is invalid (body, path or query string); the message says what to change.
#[derive(IntoResponses)]
#[response(status = 400)]
pub struct BadRequest(pub ErrorBody);

/// No user identity on the request (behind the Databricks Apps proxy, or with `TRUST_FORWARDED_HEADERS`).
#[derive(IntoResponses)]
#[response(status = 401)]
pub struct Unauthorized(pub ErrorBody);

/// A state-changing request sent by another site's page (`cross_origin`); for turns also
/// `user_authorization_required` when models are called as the user but no user token reached the app.
#[derive(IntoResponses)]
#[response(status = 403)]
pub struct Forbidden(pub ErrorBody);

/// No such resource of the caller's (another user's is not found either).
#[derive(IntoResponses)]
#[response(status = 404)]
pub struct NotFound(pub ErrorBody);

/// The resource is not in a state that allows this yet (`conflict`), e.g. feedback on an answer still being written.
#[derive(IntoResponses)]
#[response(status = 409)]
pub struct Conflict(pub ErrorBody);

/// The body is larger than `MAX_BODY_BYTES` (`MAX_CHAT_BODY_BYTES` for `POST /api/chat`).
#[derive(IntoResponses)]
#[response(status = 413)]
pub struct PayloadTooLarge(pub ErrorBody);

/// The body is not sent as `Content-Type: application/json`.
#[derive(IntoResponses)]
#[response(status = 415)]
pub struct UnsupportedMediaType(pub ErrorBody);

/// Over a per-user limit (`TURNS_PER_MINUTE`, `MAX_CONCURRENT_TURNS_PER_USER`); nothing was stored.
#[derive(IntoResponses)]
#[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
pub struct RateLimited(pub ErrorBody);

/// The database cannot be reached right now (or, for turns, no model is configured or the server is
/// restarting); retry later.
#[derive(IntoResponses)]
#[response(status = 503)]
pub struct Unavailable(pub ErrorBody);

/// The request took longer than `REQUEST_TIMEOUT_SECS`.
#[derive(IntoResponses)]
#[response(status = 504)]
pub struct Timeout(pub ErrorBody);

/// One server-sent event of a turn's stream (`text/event-stream`).
#[derive(ToSchema)]
pub struct StreamEvent {
    /// The event's sequence number, what `Last-Event-ID` resumes after.
    #[schema(pattern = "^[0-9]+$")]
    pub id: Option<String>,
    /// Always `message` (no `event:` line).
    pub event: Option<String>,
    /// A chunk of the AI SDK UI message stream as JSON, or `[DONE]` at the end.
    pub data: String,
}
