//! A streaming answer's state, kept on its assistant message: which answer streams in a chat, checkpoints, the
//! final write, stop requests, and the answer as `GET /api/generations/{id}` shows it (on the wire an answer being
//! written is a "generation"; its id is the answer's message id).

use shared::{MessagePart, MessageStatus, Usage};
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use super::events::StoredEvent;

/// The answer streaming in a chat, if any.
pub async fn running_answer(db: impl PgExecutor<'_>, chat_id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        // language=PostgreSQL
        "select message_id from chat.messages where chat_id = $1 and status = 'streaming'",
        chat_id
    )
    .fetch_optional(db)
    .await
}

/// One streaming answer's part of a checkpoint batch.
#[derive(Debug, Clone)]
pub struct CheckpointRow {
    /// Generation (= assistant message) id.
    pub answer_id: Uuid,
    /// The partial answer as JSON (`None`: unchanged since the last checkpoint).
    pub parts_json: Option<String>,
    /// Sequence number of the first new event (unused without events).
    pub first_seq: i64,
    /// Sequence number of the last stored event after this checkpoint.
    pub last_seq: i64,
    /// The new events as a JSON array of [`StoredEvent`]s (`None`: only a heartbeat).
    pub events_json: Option<String>,
    /// How far the agent's background run has reached with these events, as JSON (`None`: not such an answer).
    pub upstream_json: Option<String>,
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
    let ids: Vec<Uuid> = rows.iter().map(|r| r.answer_id).collect();
    let parts: Vec<Option<String>> = rows.iter().map(|r| r.parts_json.clone()).collect();
    let first: Vec<i64> = rows.iter().map(|r| r.first_seq).collect();
    let last: Vec<i64> = rows.iter().map(|r| r.last_seq).collect();
    let events: Vec<Option<String>> = rows.iter().map(|r| r.events_json.clone()).collect();
    let upstream: Vec<Option<String>> = rows.iter().map(|r| r.upstream_json.clone()).collect();
    let result = sqlx::query!(
        // language=PostgreSQL
        r#"
        with input as (
            select * from unnest($1::uuid[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::text[])
                as t(generation_id, parts, first_seq, last_seq, events, upstream)
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
            upstream_run = case when i.last_seq >= m.last_event_seq then coalesce(i.upstream::jsonb, m.upstream_run)
                           else m.upstream_run end,
            heartbeat_at = now()
        from input i
        where m.message_id = i.generation_id and m.status = 'streaming'
        returning m.message_id, m.cancel_requested
        "#,
        &ids,
        &parts as &[Option<String>],
        &first,
        &last,
        &events as &[Option<String>],
        &upstream as &[Option<String>]
    )
    .fetch_all(db)
    .await?;
    Ok(result.into_iter().map(|r| (r.message_id, r.cancel_requested)).collect())
}

/// The final write of an answer.
pub struct FinalWrite<'a> {
    /// Generation (= assistant message) id.
    pub answer_id: Uuid,
    /// Final content.
    pub parts: &'a [MessagePart],
    /// Terminal status.
    pub status: MessageStatus,
    /// Safe error text.
    pub error: Option<&'a str>,
    /// Token usage.
    pub usage: Option<Usage>,
    /// The answer's MLflow trace, when the agent returned one.
    pub trace_id: Option<&'a str>,
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
                last_event_seq = greatest(last_event_seq, $8), updated_at = now(), trace_id = coalesce($10, trace_id)
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
        write.answer_id,
        Json(write.parts) as _,
        write.status.as_str(),
        write.error,
        usage.input_tokens,
        usage.output_tokens,
        write.first_seq,
        last_seq,
        events as _,
        write.trace_id
    )
    .fetch_one(db)
    .await?;
    Ok(updated > 0)
}

/// Where an answer stands, for followers in other processes.
#[derive(Debug, Clone, Copy)]
pub struct AnswerState {
    /// Whether it is still streaming.
    pub running: bool,
    /// Highest stored event.
    pub last_event_seq: i64,
}

/// Where an answer stands (`None`: no such answer).
pub async fn answer_state(db: impl PgExecutor<'_>, answer_id: Uuid) -> sqlx::Result<Option<AnswerState>> {
    let row = sqlx::query!(
        // language=PostgreSQL
        "select status, last_event_seq from chat.messages where message_id = $1 and role = 'assistant'",
        answer_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| AnswerState { running: r.status == "streaming", last_event_seq: r.last_event_seq }))
}

/// Asks the worker of a streaming answer to stop it; false if it is not streaming.
pub async fn request_cancel(db: impl PgExecutor<'_>, answer_id: Uuid) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        // language=PostgreSQL
        "update chat.messages set cancel_requested = true where message_id = $1 and status = 'streaming'",
        answer_id
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() > 0)
}
