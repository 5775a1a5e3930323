//! Queries on `chat.messages`.

use chrono::{DateTime, Utc};
use shared::{MessageMetadata, MessagePart, MessageStatus, Role, UiMessage, Usage};
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

/// A row of `chat.messages`.
#[derive(Debug, Clone)]
pub struct MessageRow {
    /// Message id.
    pub message_id: Uuid,
    /// Chat id.
    pub chat_id: Uuid,
    /// Position in the chat.
    pub seq: i64,
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Content parts.
    pub parts: Json<Vec<MessagePart>>,
    /// Lifecycle status.
    pub status: String,
    /// Model that wrote it.
    pub model: Option<String>,
    /// Prompt tokens.
    pub input_tokens: Option<i64>,
    /// Generated tokens.
    pub output_tokens: Option<i64>,
    /// Safe error description.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Event id the stored parts reach (streaming messages only).
    pub resume_cursor: Option<i64>,
}

impl MessageRow {
    /// Typed role; the table's check constraint guarantees one of the four.
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Assistant)
    }

    /// Typed status; the table's check constraint guarantees a known value.
    pub fn status(&self) -> MessageStatus {
        MessageStatus::parse(&self.status).unwrap_or(MessageStatus::Error)
    }

    /// Token usage, when any was recorded.
    pub fn usage(&self) -> Option<Usage> {
        (self.input_tokens.is_some() || self.output_tokens.is_some())
            .then_some(Usage { input_tokens: self.input_tokens, output_tokens: self.output_tokens })
    }
}

impl From<MessageRow> for UiMessage {
    fn from(row: MessageRow) -> Self {
        let metadata = MessageMetadata {
            status: row.status(),
            model: row.model.clone(),
            created_at: row.created_at,
            usage: row.usage(),
            error: row.error.clone(),
            seq: row.seq,
            resume_cursor: row.resume_cursor,
        };
        UiMessage { id: row.message_id, role: row.role(), parts: row.parts.0, metadata }
    }
}

/// The newest `limit` messages of a chat with seq below `before`, newest first.
pub async fn list_messages(
    db: impl PgExecutor<'_>,
    chat_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    sqlx::query_as!(
        MessageRow,
        // language=PostgreSQL
        r#"
        select m.message_id, m.chat_id, m.seq, m.role, m.parts as "parts: Json<Vec<MessagePart>>", m.status, m.model,
               m.input_tokens, m.output_tokens, m.error, m.created_at,
               case when m.status = 'streaming' then m.last_event_seq end as "resume_cursor?"
        from chat.messages m
        where m.chat_id = $1 and m.seq < $2
        order by m.seq desc
        limit $3
        "#,
        chat_id,
        before.unwrap_or(i64::MAX),
        limit
    )
    .fetch_all(db)
    .await
}
