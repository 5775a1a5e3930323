//! The one owner of a chat's thread: every read of its messages (the messages API pages, the history sent to the
//! model, the last user message, the answer to replay) and every write that adds to or cuts it (a new turn,
//! regenerating), one function per question. Branches will change this module and nothing else.

use chrono::{DateTime, Utc};
use shared::{MessageMetadata, MessagePart, MessageStatus, Role, UiMessage, Usage};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, PgPool};
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
    /// Last write (a checkpoint or the final write, for an answer).
    pub updated_at: DateTime<Utc>,
    /// Event id the stored parts reach (streaming messages only).
    pub resume_cursor: Option<i64>,
    /// The answer's MLflow trace, when the agent returned one.
    pub trace_id: Option<String>,
    /// The chat owner's vote on the message (`up`/`down`; null when none), read with the messages API's pages only.
    pub feedback_rating: Option<String>,
    /// Its comment.
    pub feedback_comment: Option<String>,
    /// When it last changed.
    pub feedback_updated_at: Option<DateTime<Utc>>,
    /// Whether MLflow has it.
    pub feedback_sync: Option<String>,
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
            trace_id: row.trace_id.clone(),
            feedback: super::feedback::to_wire(
                row.feedback_rating.as_deref(),
                row.feedback_comment.clone(),
                row.feedback_updated_at,
                row.feedback_sync.as_deref(),
            ),
        };
        UiMessage { id: row.message_id, role: row.role(), parts: row.parts.0, metadata }
    }
}

/// A page of the messages API: the newest `limit` messages with seq below `before`, newest first, each with the chat
/// owner's vote (the only user who can read the chat).
pub async fn page(
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
               m.input_tokens, m.output_tokens, m.error, m.created_at, m.updated_at,
               case when m.status = 'streaming' then m.last_event_seq end as "resume_cursor?", m.trace_id,
               f.rating as "feedback_rating?", f.comment as "feedback_comment?",
               f.updated_at as "feedback_updated_at?", f.sync as "feedback_sync?"
        from chat.messages m
        join chat.chats c on c.chat_id = m.chat_id
        left join chat.message_feedback f
            on f.message_id = m.message_id and f.user_id = c.owner_id and f.rating is not null
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

/// A message of the history sent to the model.
#[derive(Debug)]
pub struct HistoryRow {
    /// Role.
    pub role: String,
    /// Content.
    pub parts: Json<Vec<MessagePart>>,
}

/// An answer of the owner, by id (`GET /api/generations/{id}`); another user's is `None`.
pub async fn answer(db: impl PgExecutor<'_>, owner_id: &str, answer_id: Uuid) -> sqlx::Result<Option<MessageRow>> {
    sqlx::query_as!(
        MessageRow,
        // language=PostgreSQL
        r#"
        select m.message_id, m.chat_id, m.seq, m.role, m.parts as "parts: Json<Vec<MessagePart>>", m.status, m.model,
               m.input_tokens, m.output_tokens, m.error, m.created_at, m.updated_at,
               case when m.status = 'streaming' then m.last_event_seq end as "resume_cursor?", m.trace_id,
               null::text as "feedback_rating?", null::text as "feedback_comment?",
               null::timestamptz as "feedback_updated_at?", null::text as "feedback_sync?"
        from chat.messages m
        join chat.chats c on c.chat_id = m.chat_id
        where m.message_id = $1 and c.owner_id = $2 and m.role = 'assistant'
        "#,
        answer_id,
        owner_id
    )
    .fetch_optional(db)
    .await
}

/// The history sent to the model: the newest `limit` messages before `before_seq`, newest first.
pub async fn history_for_prompt(
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

/// Deletes the messages after `seq` (regenerating replaces the last answer).
pub async fn delete_after(conn: &mut PgConnection, chat_id: Uuid, seq: i64) -> sqlx::Result<u64> {
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

/// Name of the unique index that allows one streaming answer per chat.
pub const ONE_STREAMING_PER_CHAT: &str = "messages_one_streaming_per_chat_idx";

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

/// The chat's latest answer: (id, streaming).
pub async fn latest_answer(db: impl PgExecutor<'_>, chat_id: Uuid) -> sqlx::Result<Option<(Uuid, bool)>> {
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

/// Whether an answer is in a given chat (an assistant message).
pub async fn is_answer_in_chat(db: impl PgExecutor<'_>, chat_id: Uuid, answer_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        select exists(select 1 from chat.messages where message_id = $1 and chat_id = $2 and role = 'assistant')
            as "exists!"
        "#,
        answer_id,
        chat_id
    )
    .fetch_one(db)
    .await
}

/// An answer by id, whoever owns it, with its chat's title: to replay a finished answer whose event log expired, for
/// a follower whose access was checked already.
pub async fn replay_source(db: &PgPool, answer_id: Uuid) -> sqlx::Result<Option<(MessageRow, String)>> {
    let Some(answer) = sqlx::query_as!(
        MessageRow,
        // language=PostgreSQL
        r#"
        select m.message_id, m.chat_id, m.seq, m.role, m.parts as "parts: Json<Vec<MessagePart>>", m.status, m.model,
               m.input_tokens, m.output_tokens, m.error, m.created_at, m.updated_at,
               case when m.status = 'streaming' then m.last_event_seq end as "resume_cursor?", m.trace_id,
               null::text as "feedback_rating?", null::text as "feedback_comment?",
               null::timestamptz as "feedback_updated_at?", null::text as "feedback_sync?"
        from chat.messages m
        where m.message_id = $1 and m.role = 'assistant'
        "#,
        answer_id
    )
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    // language=PostgreSQL
    let title =
        sqlx::query_scalar!("select title from chat.chats where chat_id = $1", answer.chat_id).fetch_one(db).await?;
    Ok(Some((answer, title)))
}
