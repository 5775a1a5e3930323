//! The server's one error type, its HTTP mapping, and the JSON extractors whose rejections use the same
//! envelope.
//!
//! Client errors carry a precise, safe message. Server errors are logged here, once, inside the request span,
//! and the client only sees a generic message.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::ErrorBody;
use uuid::Uuid;

/// `Result` with [`ApiError`] as the error.
pub type ApiResult<T, E = ApiError> = std::result::Result<T, E>;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 Bad Request: the input is invalid; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// 401 Unauthorized: no user identity on the request.
    #[error("no user identity on the request")]
    Unauthorized,
    /// 404 Not Found: also returned for another user's resources, which must be indistinguishable.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405 Method Not Allowed.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409 Conflict: the chat already has a generation running.
    #[error("a reply is already being generated in this chat")]
    GenerationInProgress(Uuid),
    /// 409 Conflict: any other state conflict.
    #[error("{0}")]
    Conflict(String),
    /// 413 Payload Too Large.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// 415 Unsupported Media Type.
    #[error("expected a JSON body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// 429 Too Many Requests.
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// 403 Forbidden: models are called as the user, but the proxy forwarded no user token.
    #[error(
        "this app calls models with your own Databricks identity, but no user token reached it. A workspace admin \
         must enable user authorization for the app with the `serving.serving-endpoints` scope"
    )]
    UserTokenMissing,
    /// 403 Forbidden: a state-changing request sent by another site's page.
    #[error("cross-origin requests may not change anything here")]
    CrossOrigin,
    /// 503 Service Unavailable: no chat model is available; the message says what to configure.
    #[error("{0}")]
    NoModel(String),
    /// 503 Service Unavailable: the server is shutting down and takes no new turns.
    #[error("the server is restarting; please retry in a few seconds")]
    ShuttingDown,
    /// 502 Bad Gateway: the model endpoint failed; the message is safe to show.
    #[error("{0}")]
    Upstream(String),
    /// 503 Service Unavailable: the database (or another dependency) cannot be reached right now.
    #[error("the service is temporarily unavailable, please retry")]
    Unavailable(#[source] anyhow::Error),
    /// 504 Gateway Timeout: the request took longer than the configured limit.
    #[error("the request took too long")]
    Timeout,
    /// 500 Internal Server Error: details are logged, never sent.
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// The HTTP status of the error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::UserTokenMissing | ApiError::CrossOrigin => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::GenerationInProgress(_) | ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::NoModel(_) | ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::UserTokenMissing => "user_authorization_required",
            ApiError::CrossOrigin => "cross_origin",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::GenerationInProgress(_) => "generation_in_progress",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Upstream(_) => "model_error",
            ApiError::NoModel(_) => "no_model",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout => "timeout",
            ApiError::Internal(_) => "internal",
        }
    }

    /// Shorthand for a 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    /// The JSON body sent to the client.
    pub fn body(&self) -> ErrorBody {
        let mut body = ErrorBody::new(self.code(), self.to_string());
        match self {
            ApiError::GenerationInProgress(id) => body.error.generation_id = Some(*id),
            ApiError::RateLimited { retry_after_secs, .. } => body.error.retry_after_secs = Some(*retry_after_secs),
            _ => {}
        }
        body
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if is_connection_error(&error) { ApiError::Unavailable(error.into()) } else { ApiError::Internal(error.into()) }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        match error.downcast::<sqlx::Error>() {
            Ok(sqlx_error) => sqlx_error.into(),
            Err(error) => ApiError::Internal(error),
        }
    }
}

/// Whether a database error means "cannot reach the database" (worth a 503 and a retry) rather than a bug.
pub fn is_connection_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, class 08 connection exceptions.
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // 28P01 invalid_password: a Lakebase credential was revoked or expired before it was replaced. The
            // rotation, told (see `PasswordRefused`), mints a new one now, so like a lost connection this is worth a
            // retry.
            Some("28P01") => true,
            Some(code) => code.starts_with("08") || code.starts_with("57P"),
            None => false,
        },
        _ => false,
    }
}

/// Marks a response that failed because the database refused the pool's password (SQLSTATE 28P01); the
/// middleware that owns the pool's [`crate::db::PasswordRefusals`] tells the rotation.
#[derive(Debug, Clone, Copy)]
pub struct PasswordRefused;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let refused = match &self {
            ApiError::Unavailable(source) => source.downcast_ref::<sqlx::Error>().is_some_and(
                |error| matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("28P01")),
            ),
            _ => false,
        };
        match &self {
            ApiError::Internal(source) => tracing::error!(error = ?source, "request failed"),
            ApiError::Unavailable(source) => tracing::warn!(error = %source, "dependency unavailable"),
            _ => {}
        }
        let status = self.status_code();
        let mut response = (status, axum::Json(self.body())).into_response();
        if refused {
            response.extensions_mut().insert(PasswordRefused);
        }
        if let ApiError::RateLimited { retry_after_secs, .. } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            _ => match rejection {
                // serde's messages name the field and the problem, and never contain server internals.
                JsonRejection::JsonDataError(e) => {
                    ApiError::BadRequest(format!("invalid request body: {}", source_message(&e)))
                }
                JsonRejection::JsonSyntaxError(e) => {
                    ApiError::BadRequest(format!("malformed JSON: {}", source_message(&e)))
                }
                other => ApiError::BadRequest(other.body_text()),
            },
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(format!("invalid path: {}", source_message(&rejection)))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(format!("invalid query string: {}", source_message(&rejection)))
    }
}

/// The innermost error message (axum wraps serde's message in a generic prefix).
fn source_message(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// `axum::Json` whose rejection is an [`ApiError`].
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` whose rejection is an [`ApiError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// `axum::extract::Query` whose rejection is an [`ApiError`].
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);
