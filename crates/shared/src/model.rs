//! Models the user can pick.

use serde::{Deserialize, Serialize};

/// A chat model (serving endpoint) the server offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelInfo {
    /// Name to send as `model` (the serving endpoint name).
    pub id: String,
    /// Name to show in the picker.
    pub display_name: String,
    /// Whether this is the default model.
    pub is_default: bool,
    /// Short note for the picker, e.g. that a model is a small local one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A model that writes, or an agent that may also use its own tools and cite sources.
    pub kind: ModelKind,
    /// Whether this server's tools (the user's records, MCP servers) are offered to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tools: bool,
    /// Its context window in tokens (what the context gauge measures against; longer chats are summarised).
    #[serde(default)]
    pub context_tokens: u64,
}

/// What a picker entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// A chat model (foundation model, external model, any OpenAI-compatible server, the local model).
    Model,
    /// An agent (Agent Bricks, an MLflow ResponsesAgent or ChatAgent, an agent served by a Databricks App).
    Agent,
}

/// Answer to `GET /api/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelList {
    /// Offered models; the default first.
    pub models: Vec<ModelInfo>,
    /// Id of the default model, if any model is configured.
    pub default_model: Option<String>,
    /// When no model is offered: what to configure, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}
