//! `GET /api/models`: the models the user may pick.

use axum::extract::State;
use shared::ModelList;

#[cfg(feature = "openapi")]
use super::openapi::{Timeout, Unauthorized};
use crate::error::AppJson;
use crate::identity::CurrentUser;
use crate::state::AppState;

/// Lists the offered models, the default first.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/models", tag = "chat", responses((status = 200, body = ModelList), Unauthorized, Timeout)))]
pub async fn list_models(State(state): State<AppState>, _user: CurrentUser) -> AppJson<ModelList> {
    let tools_on = state.engine.tool_sources().iter().any(|source| source.tools > 0 || source.problem.is_some());
    let window = |model: &crate::llm::ModelEntry| state.engine.prompt_settings().window_tokens(model);
    AppJson(state.engine.catalog().await.to_list(Some(state.engine.models_hint()), tools_on, &window))
}
