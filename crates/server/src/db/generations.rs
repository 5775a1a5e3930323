//! Queries for turns: starting one (user message + streaming answer), checkpoints, the final write, event
//! batches (`chat.generation_events`) and the generation state kept on the assistant message.
//!
//! A "generation" is an assistant answer being (or having been) streamed; its id is the message's id.

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

/// Locks the chat row, serialising turn starts on one chat across every process; `None` if the chat does not
/// exist. Check for a streaming answer with a separate statement afterwards: one in the same statement would
/// use the snapshot taken before the lock wait and miss the answer the previous lock holder just committed.
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

/// Name of the unique index that allows one streaming answer per chat.
pub const ONE_STREAMING_PER_CHAT: &str = "messages_one_streaming_per_chat_idx";

/// The answer streaming in a chat, if any.
pub async fn running_generation(db: impl PgExecutor<'_>, chat_id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        // language=PostgreSQL
        "select message_id from chat.messages where chat_id = $1 and status = 'streaming'",
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

/// The rows a turn start writes.
pub struct NewTurn<'a> {
    /// Chat (locked by the caller's transaction).
    pub chat_id: Uuid,
    /// The user message: (id, parts, client id). `None` when regenerating.
    pub user: Option<(Uuid, &'a [MessagePart], Option<&'a str>)>,
    /// The answer's id.
    pub answer_id: Uuid,
    /// Model answering.
    pub model: &'a str,
    /// This process's worker id.
    pub worker_id: i64,
}

/// Reserves message positions, marks the chat active, and inserts the user message (if any) and the streaming
/// answer, in one statement. Returns the answer's seq and creation time.
pub async fn insert_turn(conn: &mut PgConnection, turn: NewTurn<'_>) -> sqlx::Result<(i64, DateTime<Utc>)> {
    let (user_id, user_parts, client_id) = match turn.user {
        Some((id, parts, client_id)) => (Some(id), Some(Json(parts)), client_id),
        None => (None, None, None),
    };
    let count: i64 = if user_id.is_some() { 2 } else { 1 };
    let row = sqlx::query!(
        // language=PostgreSQL
        r#"
        with position as (
            update chat.chats set last_seq = last_seq + $2, updated_at = now(), model = $3
            where chat_id = $1
            returning last_seq
        ), user_message as (
            insert into chat.messages (message_id, chat_id, seq, role, parts, status, client_id)
            select $4, $1, position.last_seq - 1, 'user', $5, 'complete', $6
            from position where $4::uuid is not null
        )
        insert into chat.messages (message_id, chat_id, seq, role, parts, status, model, worker_id, heartbeat_at)
        select $7, $1, position.last_seq, 'assistant', '[]', 'streaming', $3, $8, now() from position
        returning seq, created_at
        "#,
        turn.chat_id,
        count,
        turn.model,
        user_id,
        user_parts as _,
        client_id,
        turn.answer_id,
        turn.worker_id
    )
    .fetch_one(conn)
    .await?;
    Ok((row.seq, row.created_at))
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

/// One streaming answer's part of a checkpoint batch.
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

/// Checkpoints many streaming answers in one statement: new events, partial text, heartbeat. Returns, for each
/// answer still streaming, whether a stop was requested; an answer missing from the result is no longer
/// streaming (another process recovered it).
///
/// One statement for many turns rather than one per turn: at a thousand streaming turns that is a handful of
/// commits a second instead of a thousand.
///
/// A write the server gave up on (timed out, or its connection broke) may still have committed, unbeknown to it:
/// the next write of that answer then starts at the same event, with more events. It replaces the shorter batch,
/// and a late write of an older checkpoint never replaces newer text or a longer batch. Without this, one such
/// write made every later write of the answer fail on the batch's primary key, its end included.
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
        ), batch as (
            insert into chat.generation_events (generation_id, first_seq, last_seq, events)
            select i.generation_id, i.first_seq, i.last_seq, i.events::jsonb
            from input i join chat.messages m on m.message_id = i.generation_id and m.status = 'streaming'
            where i.events is not null
            on conflict (generation_id, first_seq) do update set last_seq = excluded.last_seq, events = excluded.events
                where chat.generation_events.last_seq < excluded.last_seq
        )
        update chat.messages m
        set parts = case when i.last_seq >= m.last_event_seq then coalesce(i.parts::jsonb, m.parts) else m.parts end,
            last_event_seq = greatest(m.last_event_seq, i.last_seq),
            heartbeat_at = now()
        from input i
        where m.message_id = i.generation_id and m.status = 'streaming'
        returning m.message_id, m.cancel_requested
        "#,
        &ids,
        &parts as &[Option<String>],
        &first,
        &last,
        &events as &[Option<String>]
    )
    .fetch_all(db)
    .await?;
    Ok(result.into_iter().map(|r| (r.message_id, r.cancel_requested)).collect())
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

/// Writes the terminal status, the final content and the last events in one statement. Returns false if the
/// answer was no longer streaming (finished by someone else, e.g. recovery). Like [`checkpoint_batch`], it
/// replaces a shorter batch that an abandoned checkpoint stored at the same first event.
pub async fn finalize(db: impl PgExecutor<'_>, write: &FinalWrite<'_>) -> sqlx::Result<bool> {
    let usage = write.usage.unwrap_or_default();
    let last_seq = write.first_seq + write.events.len() as i64 - 1;
    let events = (!write.events.is_empty()).then_some(Json(write.events));
    let updated = sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        with answer as (
            update chat.messages
            set parts = $2, status = $3, error = $4, input_tokens = $5, output_tokens = $6,
                last_event_seq = greatest(last_event_seq, $8), updated_at = now()
            where message_id = $1 and status = 'streaming'
            returning message_id
        ), batch as (
            insert into chat.generation_events (generation_id, first_seq, last_seq, events)
            select message_id, $7, $8, $9 from answer where $9::jsonb is not null
            on conflict (generation_id, first_seq) do update set last_seq = excluded.last_seq, events = excluded.events
                where chat.generation_events.last_seq < excluded.last_seq
        )
        select count(*) as "updated!" from answer
        "#,
        write.generation_id,
        Json(write.parts) as _,
        write.status.as_str(),
        write.error,
        usage.input_tokens,
        usage.output_tokens,
        write.first_seq,
        last_seq,
        events as _
    )
    .fetch_one(db)
    .await?;
    Ok(updated > 0)
}

/// Status of a generation, for followers in other processes.
#[derive(Debug, Clone, Copy)]
pub struct GenerationState {
    /// Whether it is still streaming.
    pub running: bool,
    /// Highest stored event.
    pub last_event_seq: i64,
}

/// The state of a generation (`None`: no such answer).
pub async fn generation_state(db: impl PgExecutor<'_>, generation_id: Uuid) -> sqlx::Result<Option<GenerationState>> {
    let row = sqlx::query!(
        // language=PostgreSQL
        "select status, last_event_seq from chat.messages where message_id = $1 and role = 'assistant'",
        generation_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| GenerationState { running: r.status == "streaming", last_event_seq: r.last_event_seq }))
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

/// The chat's latest answer: (id, streaming).
pub async fn latest_generation(db: impl PgExecutor<'_>, chat_id: Uuid) -> sqlx::Result<Option<(Uuid, bool)>> {
    let row = sqlx::query!(
        // language=PostgreSQL
        r#"
        select message_id, status from chat.messages
        where chat_id = $1 and role = 'assistant'
        order by seq desc
        limit 1
        "#,
        chat_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.message_id, r.status == "streaming")))
}

/// Asks the worker of a streaming answer to stop it; false if it is not streaming.
pub async fn request_cancel(db: impl PgExecutor<'_>, generation_id: Uuid) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        // language=PostgreSQL
        "update chat.messages set cancel_requested = true where message_id = $1 and status = 'streaming'",
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

/// Whether an answer is in a given chat (an assistant message).
pub async fn is_answer_in_chat(db: impl PgExecutor<'_>, chat_id: Uuid, generation_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        select exists(select 1 from chat.messages where message_id = $1 and chat_id = $2 and role = 'assistant')
            as "exists!"
        "#,
        generation_id,
        chat_id
    )
    .fetch_one(db)
    .await
}

/// Deletes event batches older than `retention_secs` whose answer has finished; the messages stay.
pub async fn purge_events(db: impl PgExecutor<'_>, retention_secs: f64) -> sqlx::Result<u64> {
    let result = sqlx::query!(
        // language=PostgreSQL
        r#"
        delete from chat.generation_events e
        where e.created_at < now() - make_interval(secs => $1)
          and not exists (select 1 from chat.messages m where m.message_id = e.generation_id and m.status = 'streaming')
        "#,
        retention_secs
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}
