//! Small request middleware of our own (the generic ones come from tower-http).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Fails a non-streaming request that runs longer than the configured limit with a 504 in the usual error
/// envelope (tower-http's timeout answers with an empty body).
pub async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// Tells the pool's password rotation when a request failed because the database refused the password (the error
/// marks its response with [`crate::error::PasswordRefused`]), so a new Lakebase credential is minted at once.
pub async fn note_refused_password(
    State(refusals): State<crate::db::PasswordRefusals>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if response.extensions().get::<crate::error::PasswordRefused>().is_some() {
        refusals.note();
    }
    response
}
