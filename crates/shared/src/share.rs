//! Read-only links to a branch of a chat: made and revoked by the chat's owner, opened by any signed-in user.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::UiMessage;

/// A link the owner made (`POST /api/chats/{id}/shares`, `GET /api/chats/{id}/shares`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Share {
    /// The link's id.
    pub id: Uuid,
    /// The chat shared.
    pub chat_id: Uuid,
    /// The last message it shows (the chat's branch up to here, nothing later).
    pub leaf_id: Uuid,
    /// The page to open: `/share/{id}`.
    pub url: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// The owner's links of a chat, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShareList {
    /// The links.
    pub shares: Vec<Share>,
}

/// What a link shows (`GET /api/shares/{id}`), to anyone signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharedChat {
    /// The link's id.
    pub id: Uuid,
    /// The chat's title.
    pub title: String,
    /// Who shared it (their name or email).
    pub owner_name: String,
    /// When it was shared.
    pub shared_at: DateTime<Utc>,
    /// The messages, first to last: one branch, up to the shared point. No votes, no other versions.
    pub messages: Vec<UiMessage>,
}
