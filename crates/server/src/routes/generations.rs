//! `GET /api/generations/{id}`: the state of one answer, for tools that poll instead of streaming.

use axum::extract::State;
use shared::GenerationView;
use uuid::Uuid;

#[cfg(feature = "openapi")]
use super::openapi::{BadRequest, NotFound, Timeout, Unauthorized, Unavailable};
use crate::error::{ApiResult, AppJson, AppPath};
use crate::identity::CurrentUser;
use crate::state::AppState;

/// Status and text so far of a generation (the id `POST /api/chat` returned with `Prefer: respond-async`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/generations/{id}", tag = "chat", params(("id" = Uuid, Path, description = "Generation id")),
    responses((status = 200, body = GenerationView), BadRequest, Unauthorized, NotFound, Unavailable, Timeout)))]
pub async fn get_generation(
    State(state): State<AppState>,
    user: CurrentUser,
    AppPath(id): AppPath<Uuid>,
) -> ApiResult<AppJson<GenerationView>> {
    Ok(AppJson(state.engine.generation_view(&user.id, id).await?))
}
