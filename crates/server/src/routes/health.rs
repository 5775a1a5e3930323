//! `GET /api/health`: 200 when the database answers, 503 otherwise (for load balancers and the Apps runtime).

use axum::extract::State;
use axum::http::StatusCode;
use shared::Health;

#[cfg(feature = "openapi")]
use super::openapi::Timeout;
use crate::error::AppJson;
use crate::state::AppState;

/// Reports whether the server can reach its database.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/health", tag = "system",
    responses((status = 200, description = "Healthy", body = Health),
        (status = 503, description = "Database unreachable", body = Health), Timeout)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, AppJson<Health>) {
    let database = crate::db::ping(&state.db).await;
    let status = if database { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let health = Health {
        status: if database { "ok" } else { "unavailable" }.to_owned(),
        database,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    (status, AppJson(health))
}
