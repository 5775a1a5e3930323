//! A chat taken out of the app (`GET /api/chats/{id}/export?format=json`) and brought back in as a new chat
//! (`POST /api/chats/import`): its messages as AI SDK `UIMessage`s with their tree links.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::UiMessage;

/// Version of the export format this build writes and reads.
pub const EXPORT_VERSION: u32 = 1;

/// Most messages an import may hold.
pub const MAX_IMPORT_MESSAGES: usize = 10_000;

/// Which messages an export holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ExportScope {
    /// The branch the chat shows, root first.
    #[default]
    Active,
    /// Every message of every branch, in the order they were written.
    All,
}

/// A chat as exported, and as imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatExport {
    /// Format version (1).
    pub version: u32,
    /// The chat's title.
    pub title: String,
    /// The model the chat last used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// When the chat was created.
    pub created_at: DateTime<Utc>,
    /// Which messages are here.
    pub scope: ExportScope,
    /// The last message of the branch the chat shows (an import shows it too; absent: the last message listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_id: Option<Uuid>,
    /// The messages, each after the message it follows (`metadata.parent_id`).
    pub messages: Vec<UiMessage>,
}
