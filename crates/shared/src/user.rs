//! Who is calling, and whether the server is healthy.

use serde::{Deserialize, Serialize};

/// How the server decides who the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdentityMode {
    /// Behind the Databricks Apps proxy: `x-forwarded-email` / `x-forwarded-user`.
    DatabricksApps,
    /// Local development, forwarded headers trusted (multi-user trials and tests).
    TrustedHeaders,
    /// Local development: one configured user; forwarded headers ignored.
    LocalUser,
}

/// Answer to `GET /api/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    /// Stable user id that owns chats (the email when known).
    pub user_id: String,
    /// Email, when known.
    pub email: Option<String>,
    /// Display name, when the proxy sends one.
    pub display_name: Option<String>,
    /// How the identity was established.
    pub mode: IdentityMode,
}

/// Answer to `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Whether the database answered.
    pub database: bool,
    /// Server version.
    pub version: String,
}

/// Answer to `GET /api/config`: what the web app needs to render before the first chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppConfig {
    /// Greeting shown on an empty chat.
    pub greeting: String,
    /// Suggested first prompts.
    pub suggestions: Vec<String>,
    /// What happens to votes on answers.
    #[serde(default)]
    pub feedback: crate::feedback::FeedbackFeatures,
    /// Where the tools models may call come from (the user's records, MCP servers), and whether each works now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSourceInfo>,
}

/// A source of tools (`GET /api/config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolSourceInfo {
    /// Its name (`records`, an MCP server's name); its tools' names start with it.
    pub name: String,
    /// `records` (the user's own chats) or `mcp`.
    pub kind: String,
    /// How many tools it offers now.
    pub tools: usize,
    /// Why it offers none now (the server cannot be reached), when so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}
