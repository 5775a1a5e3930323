//! Queries on `chat.generations` and `chat.generation_events`, and the turn-start writes on messages.

use chrono::{DateTime, Utc};
use shared::{MessagePart, MessageStatus, Usage};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

pub use crate::engine::log::StoredEvent;

/// The row of a chat locked for the duration of a turn-start transaction.
#[derive(Debug)]
pub struct LockedChat {
    /// Owner.
    pub owner_id: String,
    /// Title.
    pub title: String,
    /// Model last used.
    pub model: Option<String>,
}

/// Locks the chat row (serialising turn starts on one chat); `None` if it does not exist.
pub async fn lock_chat(conn: &mut PgConnection, chat_id: Uuid) -> sqlx::Result<Option<LockedChat>> {
    sqlx::query_as!(
        LockedChat,
        // language=PostgreSQL
        "select owner_id, title, model from chat.chats where chat_id = $1 for update",
        chat_id
    )
    .fetch_optional(conn)
    .await
}

/// The generation running in a chat, if any.
pub async fn running_generation(db: impl PgExecutor<'_>, chat_id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        // language=PostgreSQL
        "select generation_id from chat.generations where chat_id = $1 and status = 'running'",
        chat_id
    )
    .fetch_optional(db)
    .await
}

/// A user message found by its client id, with the answer that followed it (if any).
#[derive(Debug)]
pub struct ClientMessage {
    /// The stored user message.
    pub message_id: Uuid,
    /// The assistant message right after it, if one exists.
    pub answer_id: Option<Uuid>,
}

/// Finds the user message a client already sent with this id.
pub async fn find_client_message(
    conn: &mut PgConnection,
    chat_id: Uuid,
    client_id: &str,
) -> sqlx::Result<Option<ClientMessage>> {
    sqlx::query_as!(
        ClientMessage,
        // language=PostgreSQL
        r#"
        select u.message_id,
               (select a.message_id from chat.messages a
                where a.chat_id = u.chat_id and a.seq > u.seq and a.role = 'assistant'
                order by a.seq limit 1) as "answer_id?"
        from chat.messages u
        where u.chat_id = $1 and u.client_id = $2 and u.role = 'user'
        "#,
        chat_id,
        client_id
    )
    .fetch_optional(conn)
    .await
}

/// The last user message of a chat: (id, seq).
pub async fn last_user_message(conn: &mut PgConnection, chat_id: Uuid) -> sqlx::Result<Option<(Uuid, i64)>> {
    let row = sqlx::query!(
        // language=PostgreSQL
        "select message_id, seq from chat.messages where chat_id = $1 and role = 'user' order by seq desc limit 1",
        chat_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.message_id, r.seq)))
}

/// Deletes the messages after `seq` (regenerating replaces the last answer).
pub async fn delete_messages_after(conn: &mut PgConnection, chat_id: Uuid, seq: i64) -> sqlx::Result<u64> {
    let result = sqlx::query!(
        // language=PostgreSQL
        "delete from chat.messages where chat_id = $1 and seq > $2",
        chat_id,
        seq
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// Reserves `count` message positions and marks the chat active; returns the last reserved seq.
pub async fn reserve_seqs(conn: &mut PgConnection, chat_id: Uuid, count: i64, model: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        update chat.chats set last_seq = last_seq + $2, updated_at = now(), model = $3
        where chat_id = $1
        returning last_seq
        "#,
        chat_id,
        count,
        model
    )
    .fetch_one(conn)
    .await
}

/// A message to insert.
pub struct NewMessage<'a> {
    /// Id.
    pub message_id: Uuid,
    /// Chat.
    pub chat_id: Uuid,
    /// Position.
    pub seq: i64,
    /// `user` or `assistant`.
    pub role: &'a str,
    /// Content.
    pub parts: &'a [MessagePart],
    /// Status.
    pub status: MessageStatus,
    /// Model (assistant).
    pub model: Option<&'a str>,
    /// Client id (user).
    pub client_id: Option<&'a str>,
}

/// Inserts a message; returns its creation time.
pub async fn insert_message(conn: &mut PgConnection, message: NewMessage<'_>) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        insert into chat.messages (message_id, chat_id, seq, role, parts, status, model, client_id)
        values ($1, $2, $3, $4, $5, $6, $7, $8)
        returning created_at
        "#,
        message.message_id,
        message.chat_id,
        message.seq,
        message.role,
        Json(message.parts) as _,
        message.status.as_str(),
        message.model,
        message.client_id
    )
    .fetch_one(conn)
    .await
}

/// Registers a running generation owned by `worker_id`.
pub async fn insert_generation(
    conn: &mut PgConnection,
    generation_id: Uuid,
    chat_id: Uuid,
    user_message_id: Uuid,
    worker_id: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        // language=PostgreSQL
        r#"
        insert into chat.generations (generation_id, chat_id, user_message_id, worker_id)
        values ($1, $2, $3, $4)
        "#,
        generation_id,
        chat_id,
        user_message_id,
        worker_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A message of the history sent to the model.
#[derive(Debug)]
pub struct HistoryRow {
    /// Role.
    pub role: String,
    /// Content.
    pub parts: Json<Vec<MessagePart>>,
}

/// The newest `limit` messages before `before_seq`, newest first.
pub async fn history(
    db: impl PgExecutor<'_>,
    chat_id: Uuid,
    before_seq: i64,
    limit: i64,
) -> sqlx::Result<Vec<HistoryRow>> {
    sqlx::query_as!(
        HistoryRow,
        // language=PostgreSQL
        r#"
        select role, parts as "parts: Json<Vec<MessagePart>>"
        from chat.messages
        where chat_id = $1 and seq < $2
        order by seq desc
        limit $3
        "#,
        chat_id,
        before_seq,
        limit
    )
    .fetch_all(db)
    .await
}

/// One running generation's part of a checkpoint batch.
#[derive(Debug, Clone)]
pub struct CheckpointRow {
    /// Generation (= assistant message) id.
    pub generation_id: Uuid,
    /// The partial answer as JSON (`None`: unchanged since the last checkpoint).
    pub parts_json: Option<String>,
    /// Sequence number of the first new event (unused without events).
    pub first_seq: i64,
    /// Sequence number of the last stored event after this checkpoint.
    pub last_seq: i64,
    /// The new events as a JSON array of [`StoredEvent`]s (`None`: only a heartbeat).
    pub events_json: Option<String>,
}

/// Checkpoints many generations in one statement: new events, partial answers, heartbeats. Returns, for each
/// generation still running, whether a stop was requested; a generation missing from the result is no longer
/// running (another process recovered it).
///
/// One statement per interval for all of a process's turns, rather than one per turn: at a thousand streaming
/// turns that is one commit a second instead of a thousand.
pub async fn checkpoint_batch(db: impl PgExecutor<'_>, rows: &[CheckpointRow]) -> sqlx::Result<Vec<(Uuid, bool)>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.generation_id).collect();
    let parts: Vec<Option<String>> = rows.iter().map(|r| r.parts_json.clone()).collect();
    let first: Vec<i64> = rows.iter().map(|r| r.first_seq).collect();
    let last: Vec<i64> = rows.iter().map(|r| r.last_seq).collect();
    let events: Vec<Option<String>> = rows.iter().map(|r| r.events_json.clone()).collect();
    let result = sqlx::query!(
        // language=PostgreSQL
        r#"
        with input as (
            select * from unnest($1::uuid[], $2::text[], $3::int8[], $4::int8[], $5::text[])
                as t(generation_id, parts, first_seq, last_seq, events)
        ), message as (
            update chat.messages m set parts = i.parts::jsonb, updated_at = now()
            from input i
            where m.message_id = i.generation_id and i.parts is not null and m.status = 'streaming'
        ), batch as (
            insert into chat.generation_events (generation_id, first_seq, last_seq, events)
            select i.generation_id, i.first_seq, i.last_seq, i.events::jsonb from input i where i.events is not null
        )
        update chat.generations g
        set last_event_seq = greatest(g.last_event_seq, i.last_seq), heartbeat_at = now()
        from input i
        where g.generation_id = i.generation_id and g.status = 'running'
        returning g.generation_id, g.cancel_requested
        "#,
        &ids,
        &parts as &[Option<String>],
        &first,
        &last,
        &events as &[Option<String>]
    )
    .fetch_all(db)
    .await?;
    Ok(result.into_iter().map(|r| (r.generation_id, r.cancel_requested)).collect())
}

/// The final write of a generation.
pub struct FinalWrite<'a> {
    /// Generation (= assistant message) id.
    pub generation_id: Uuid,
    /// Final content.
    pub parts: &'a [MessagePart],
    /// Terminal status.
    pub status: MessageStatus,
    /// Safe error text.
    pub error: Option<&'a str>,
    /// Token usage.
    pub usage: Option<Usage>,
    /// Sequence number of the first unsaved event.
    pub first_seq: i64,
    /// The unsaved events (ending with `finish`).
    pub events: &'a [StoredEvent],
}

/// Writes the terminal status, the final content and the last events in one transaction.
/// Returns false if the generation had already been finished by someone else (e.g. recovery).
pub async fn finalize(conn: &mut PgConnection, write: &FinalWrite<'_>) -> sqlx::Result<bool> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    let usage = write.usage.unwrap_or_default();
    let updated = sqlx::query!(
        // language=PostgreSQL
        r#"
        update chat.messages
        set parts = $2, status = $3, error = $4, input_tokens = $5, output_tokens = $6, updated_at = now()
        where message_id = $1 and status = 'streaming'
        "#,
        write.generation_id,
        Json(write.parts) as _,
        write.status.as_str(),
        write.error,
        usage.input_tokens,
        usage.output_tokens
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    let last_seq = write.first_seq + write.events.len() as i64 - 1;
    if !write.events.is_empty() {
        sqlx::query!(
            // language=PostgreSQL
            r#"
            insert into chat.generation_events (generation_id, first_seq, last_seq, events)
            values ($1, $2, $3, $4)
            "#,
            write.generation_id,
            write.first_seq,
            last_seq,
            Json(write.events) as _
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        // language=PostgreSQL
        r#"
        update chat.generations set status = 'finished', finished_at = now(), last_event_seq = greatest(last_event_seq, $2)
        where generation_id = $1
        "#,
        write.generation_id,
        last_seq
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Status of a generation, for followers in other processes.
#[derive(Debug, Clone, Copy)]
pub struct GenerationState {
    /// Whether it is still running.
    pub running: bool,
    /// Highest stored event.
    pub last_event_seq: i64,
}

/// The state of a generation.
pub async fn generation_state(db: impl PgExecutor<'_>, generation_id: Uuid) -> sqlx::Result<Option<GenerationState>> {
    let row = sqlx::query!(
        // language=PostgreSQL
        "select status, last_event_seq from chat.generations where generation_id = $1",
        generation_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| GenerationState { running: r.status == "running", last_event_seq: r.last_event_seq }))
}

/// Stored event batches that contain events after `after_seq`, in order.
pub async fn events_after(
    db: impl PgExecutor<'_>,
    generation_id: Uuid,
    after_seq: i64,
) -> sqlx::Result<Vec<(i64, Vec<StoredEvent>)>> {
    let rows = sqlx::query!(
        // language=PostgreSQL
        r#"
        select first_seq, events as "events: Json<Vec<StoredEvent>>"
        from chat.generation_events
        where generation_id = $1 and last_seq > $2
        order by first_seq
        "#,
        generation_id,
        after_seq
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.first_seq, r.events.0)).collect())
}

/// The chat's latest generation: (id, running).
pub async fn latest_generation(db: impl PgExecutor<'_>, chat_id: Uuid) -> sqlx::Result<Option<(Uuid, bool)>> {
    let row = sqlx::query!(
        // language=PostgreSQL
        r#"
        select generation_id, status from chat.generations
        where chat_id = $1
        order by created_at desc
        limit 1
        "#,
        chat_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.generation_id, r.status == "running")))
}

/// Asks the worker of a running generation to stop it; false if it is not running.
pub async fn request_cancel(db: impl PgExecutor<'_>, generation_id: Uuid) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        // language=PostgreSQL
        "update chat.generations set cancel_requested = true where generation_id = $1 and status = 'running'",
        generation_id
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// A generation as `GET /api/generations/{id}` shows it (from its message).
#[derive(Debug)]
pub struct GenerationRow {
    /// Id.
    pub message_id: Uuid,
    /// Chat.
    pub chat_id: Uuid,
    /// Message status.
    pub status: String,
    /// Content.
    pub parts: Json<Vec<MessagePart>>,
    /// Model.
    pub model: Option<String>,
    /// Prompt tokens.
    pub input_tokens: Option<i64>,
    /// Output tokens.
    pub output_tokens: Option<i64>,
    /// Error.
    pub error: Option<String>,
    /// Start.
    pub created_at: DateTime<Utc>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
}

/// An assistant message of the owner, by id.
pub async fn fetch_generation(
    db: impl PgExecutor<'_>,
    owner_id: &str,
    generation_id: Uuid,
) -> sqlx::Result<Option<GenerationRow>> {
    sqlx::query_as!(
        GenerationRow,
        // language=PostgreSQL
        r#"
        select m.message_id, m.chat_id, m.status, m.parts as "parts: Json<Vec<MessagePart>>", m.model,
               m.input_tokens, m.output_tokens, m.error, m.created_at, m.updated_at
        from chat.messages m
        join chat.chats c on c.chat_id = m.chat_id
        where m.message_id = $1 and c.owner_id = $2 and m.role = 'assistant'
        "#,
        generation_id,
        owner_id
    )
    .fetch_optional(db)
    .await
}

/// Deletes finished generations (and their event logs) older than `retention_secs`; their messages stay.
pub async fn purge_finished(db: impl PgExecutor<'_>, retention_secs: f64) -> sqlx::Result<u64> {
    let result = sqlx::query!(
        // language=PostgreSQL
        r#"
        delete from chat.generations
        where status = 'finished' and finished_at < now() - make_interval(secs => $1)
        "#,
        retention_secs
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}
