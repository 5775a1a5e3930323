//! Approval requests kept in stored answers (an agent's `mcp_approval_request`, stored as a `data-approval` part),
//! and the writes that reopen an answer when the user answers one.

use chrono::{DateTime, Utc};
use serde_json::json;
use shared::MessagePart;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

/// The answer that holds an approval request.
#[derive(Debug)]
pub struct AnswerWithApproval {
    /// The answer (assistant message).
    pub message_id: Uuid,
    /// Its position in the chat.
    pub seq: i64,
    /// Its status.
    pub status: String,
    /// Its content, with the approval part.
    pub parts: Json<Vec<MessagePart>>,
    /// The model (agent) that wrote it.
    pub model: Option<String>,
    /// The last event stored for it.
    pub last_event_seq: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Whether it ends the branch the chat shows (an answer anything follows, or on another branch, is history).
    pub is_active_leaf: bool,
    /// The question it answers.
    pub parent_id: Option<Uuid>,
    /// Prompt tokens of the model calls so far.
    pub input_tokens: Option<i64>,
    /// Generated tokens of the model calls so far.
    pub output_tokens: Option<i64>,
}

/// The newest answer of the chat holding the approval request `approval_id`. Read inside the transaction that
/// holds the chat's lock, so nothing else starts or continues a turn in the chat meanwhile.
pub async fn find(
    conn: &mut PgConnection,
    chat_id: Uuid,
    approval_id: &str,
) -> sqlx::Result<Option<AnswerWithApproval>> {
    let pattern = json!([{"type": "data-approval", "data": {"approvalId": approval_id}}]);
    sqlx::query_as!(
        AnswerWithApproval,
        // language=PostgreSQL
        r#"
        select m.message_id, m.seq, m.status, m.parts as "parts: Json<Vec<MessagePart>>", m.model, m.last_event_seq,
               m.created_at,
               m.message_id is not distinct from (select active_leaf from chat.chats where chat_id = $1)
                   as "is_active_leaf!",
               m.input_tokens, m.output_tokens, m.parent_id
        from chat.messages m
        where m.chat_id = $1 and m.role = 'assistant' and m.parts @> $2
        order by m.seq desc
        limit 1
        "#,
        chat_id,
        pattern
    )
    .fetch_optional(conn)
    .await
}

/// Reopens a finished answer for its continuation, run by `worker_id`: streaming again, with its approval answered
/// in `parts`; its stored `finish` event (the last one) becomes a metadata event, so a client replaying the answer
/// from the start reads one message that goes on. Returns false when the answer was not in a finished state.
pub async fn reopen(
    conn: &mut PgConnection,
    answer_id: Uuid,
    parts: &[MessagePart],
    last_event_seq: i64,
    worker_id: i64,
) -> sqlx::Result<bool> {
    let reopened = sqlx::query!(
        // language=PostgreSQL
        r#"
        update chat.messages
        set status = 'streaming', parts = $2, error = null, cancel_requested = false, worker_id = $3,
            heartbeat_at = now(), updated_at = now()
        where message_id = $1 and status <> 'streaming'
        "#,
        answer_id,
        Json(parts) as _,
        worker_id
    )
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0;
    if !reopened {
        return Ok(false);
    }
    let went_on = json!({"type": "message-metadata", "messageMetadata": {"status": "streaming"}});
    sqlx::query!(
        // language=PostgreSQL
        r#"
        update chat.generation_events
        set events = jsonb_set(events, array[($2 - first_seq)::text], $3)
        where generation_id = $1 and first_seq <= $2 and last_seq >= $2
          and events -> ($2 - first_seq)::int ->> 'type' = 'finish'
        "#,
        answer_id,
        last_event_seq,
        went_on
    )
    .execute(&mut *conn)
    .await?;
    Ok(true)
}
