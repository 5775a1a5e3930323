//! `GET /api/config`: what the web app shows before the first message (greeting, suggested prompts), and whether
//! votes on answers go to MLflow, and where tools come from (and whether each source works now).

use axum::Extension;
use axum::extract::State;
use shared::{AppConfig, FeedbackFeatures};

#[cfg(feature = "openapi")]
use super::openapi::{Timeout, Unauthorized};
use crate::error::AppJson;
use crate::feedback_sync::MlflowSync;
use crate::identity::CurrentUser;
use crate::state::AppState;

/// The empty-state texts configured for this deployment, and the feedback features.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/config", tag = "system", responses((status = 200, body = AppConfig), Unauthorized, Timeout)))]
pub async fn get_config(
    State(state): State<AppState>,
    Extension(mlflow): Extension<MlflowSync>,
    _user: CurrentUser,
) -> AppJson<AppConfig> {
    let ui = &state.config.ui;
    AppJson(AppConfig {
        greeting: ui.greeting.clone(),
        suggestions: ui.suggestions.clone(),
        feedback: FeedbackFeatures { mlflow: mlflow.is_on() },
        tools: state.engine.tool_sources(),
    })
}
