//! `GET /api/models`: the models the user may pick.

use axum::extract::State;
use shared::ModelList;

use super::openapi::{Timeout, Unauthorized};
use crate::error::AppJson;
use crate::identity::CurrentUser;
use crate::state::AppState;

/// Lists the offered models, the default first.
#[utoipa::path(get, path = "/api/models", tag = "chat", responses((status = 200, body = ModelList), Unauthorized, Timeout))]
pub async fn list_models(State(state): State<AppState>, _user: CurrentUser) -> AppJson<ModelList> {
    AppJson(state.engine.catalog().await.to_list(Some(state.engine.models_hint())))
}
