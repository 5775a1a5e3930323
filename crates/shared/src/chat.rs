//! Chats: create, list, rename, delete.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A chat as listed in the sidebar and returned by the chat routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatSummary {
    /// Chat id.
    pub id: Uuid,
    /// Title shown in the sidebar.
    pub title: String,
    /// Model (serving endpoint) the chat last used, if any.
    pub model: Option<String>,
    /// Key another tool uses to attach the chat to its own entity, if any.
    pub scope: Option<String>,
    /// When the chat was created.
    pub created_at: DateTime<Utc>,
    /// Last activity: creation, a new message or a rename.
    pub updated_at: DateTime<Utc>,
    /// The sources of tools (`records`, MCP servers' names) the chat's model may use, as the user chose them;
    /// absent: every source the server offers (`GET /api/config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Pinned to the top of the sidebar (`GET /api/chats?pinned=true` lists these).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
    /// Archived: out of the chat list and search until brought back (`GET /api/chats?archived=true` lists these).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
    /// In search results (`?q=`): the newest message whose text matched, on whichever branch it is; open the chat
    /// with `GET /api/chats/{id}/messages?leaf=` it to show that branch. Absent when only the title matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_message_id: Option<Uuid>,
}

/// Body of `POST /api/chats`. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateChatRequest {
    /// Title; defaults to "New chat". 1 to 200 characters after trimming, no control characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
        )
    )]
    pub title: Option<String>,
    /// Model the chat should use; must be one the server offers.
    #[serde(default)]
    pub model: Option<String>,
    /// Free-form key (1 to 200 characters, no control characters) that lets another tool find its chats again.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"))]
    pub scope: Option<String>,
}

/// Body of `PATCH /api/chats/{id}`: a new title, the chat's sources of tools, its pin or its archiving (at least one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateChatRequest {
    /// New title, 1 to 200 characters after trimming, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
        )
    )]
    pub title: Option<String>,
    /// The sources of tools the chat's model may use (names from `GET /api/config` `tools`; empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Pin the chat to the top of the sidebar, or unpin it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
    /// Archive the chat (out of the list and search), or bring it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

/// One page of `GET /api/chats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatPage {
    /// Chats, most recently active first.
    pub chats: Vec<ChatSummary>,
    /// Opaque cursor for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
