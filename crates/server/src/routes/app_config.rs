//! `GET /api/config`: what the web app shows before the first message (greeting, suggested prompts).

use axum::extract::State;
use shared::AppConfig;

use super::openapi::{Timeout, Unauthorized};
use crate::error::AppJson;
use crate::identity::CurrentUser;
use crate::state::AppState;

/// The empty-state texts configured for this deployment.
#[utoipa::path(get, path = "/api/config", tag = "system", responses((status = 200, body = AppConfig), Unauthorized, Timeout))]
pub async fn get_config(State(state): State<AppState>, _user: CurrentUser) -> AppJson<AppConfig> {
    let ui = &state.config.ui;
    AppJson(AppConfig { greeting: ui.greeting.clone(), suggestions: ui.suggestions.clone() })
}
