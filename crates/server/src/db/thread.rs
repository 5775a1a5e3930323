//! The one owner of a chat's thread: every read of its messages (the messages API pages, the history sent to the
//! model, the answer to replay) and every write that adds to it (a new turn, an edit, a regenerated answer, a switch
//! of branch), one function per question.
//!
//! A chat is a tree: each message has a parent (`parent_id`, null for a root), its versions are the messages with the
//! same parent, and the chat's `active_leaf` ends the branch it shows. A branch is read by walking up from its leaf by
//! primary key, so a page costs its own length whatever the chat's size; `seq` still numbers messages in the order
//! they were written (siblings are ordered by it, and the messages API's cursor is a seq).

use chrono::{DateTime, Utc};
use shared::{Branch, MessageMetadata, MessagePart, MessageStatus, Role, UiMessage, Usage};
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
    /// The message it follows; `None` for a root.
    pub parent_id: Option<Uuid>,
    /// Every version of the message (its parent's children, oldest first), read with the messages API's pages only.
    pub siblings: Option<Vec<Uuid>>,
    /// Pinned by the user: never summarised.
    pub pinned: bool,
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
        let role = row.role();
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
            parent_id: row.parent_id,
            branch: row.siblings.and_then(|siblings| Branch::among(row.message_id, siblings)),
            pinned: row.pinned,
        };
        UiMessage { id: row.message_id, role, parts: row.parts.0, metadata }
    }
}

/// Every message of a chat, on every branch, in the order they were written, each with its versions (an export of
/// the whole tree).
pub async fn every_message(db: impl PgExecutor<'_>, chat_id: Uuid, limit: i64) -> sqlx::Result<Vec<MessageRow>> {
    sqlx::query_as!(
        MessageRow,
        // language=PostgreSQL
        r#"
        select m.message_id, m.chat_id, m.seq, m.role, m.parts as "parts: Json<Vec<MessagePart>>", m.status, m.model,
               m.input_tokens, m.output_tokens, m.error, m.created_at, m.updated_at,
               case when m.status = 'streaming' then m.last_event_seq end as "resume_cursor?", m.trace_id,
               null::text as "feedback_rating?", null::text as "feedback_comment?",
               null::timestamptz as "feedback_updated_at?", null::text as "feedback_sync?", m.parent_id,
               case when m.parent_id is null
                    then (select array_agg(s.message_id order by s.seq) from chat.messages s
                          where s.chat_id = m.chat_id and s.parent_id is null)
                    else (select array_agg(s.message_id order by s.seq) from chat.messages s
                          where s.parent_id = m.parent_id)
               end as "siblings?", m.pinned
        from chat.messages m
        where m.chat_id = $1
        order by m.seq
        limit $2
        "#,
        chat_id,
        limit
    )
    .fetch_all(db)
    .await
}

/// A message to store in a new chat (an import, or a copy of a shared branch); parents come before children.
#[derive(Debug, Clone)]
pub struct CopiedMessage {
    /// New id.
    pub message_id: Uuid,
    /// New id of the message it follows.
    pub parent_id: Option<Uuid>,
    /// Position on its path.
    pub depth: i32,
    /// `user` or `assistant`.
    pub role: String,
    /// Content, as JSON.
    pub parts_json: String,
    /// Final status (never `streaming`).
    pub status: String,
    /// Model that wrote it.
    pub model: Option<String>,
    /// Prompt tokens.
    pub input_tokens: Option<i64>,
    /// Generated tokens.
    pub output_tokens: Option<i64>,
    /// Safe error text.
    pub error: Option<String>,
    /// When it was first written.
    pub created_at: DateTime<Utc>,
}

/// Stores messages into a new chat (created by the caller's transaction), numbered in the order given, and shows
/// the branch ending at `leaf`.
pub async fn insert_copy(
    conn: &mut PgConnection,
    chat_id: Uuid,
    messages: &[CopiedMessage],
    leaf: Option<Uuid>,
) -> sqlx::Result<()> {
    let column = |f: fn(&CopiedMessage) -> Option<String>| messages.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<Uuid> = messages.iter().map(|m| m.message_id).collect();
    let parents: Vec<Option<Uuid>> = messages.iter().map(|m| m.parent_id).collect();
    let depths: Vec<i32> = messages.iter().map(|m| m.depth).collect();
    let roles = column(|m| Some(m.role.clone()));
    let parts = column(|m| Some(m.parts_json.clone()));
    let statuses = column(|m| Some(m.status.clone()));
    let models = column(|m| m.model.clone());
    let errors = column(|m| m.error.clone());
    let input_tokens: Vec<Option<i64>> = messages.iter().map(|m| m.input_tokens).collect();
    let output_tokens: Vec<Option<i64>> = messages.iter().map(|m| m.output_tokens).collect();
    let created: Vec<DateTime<Utc>> = messages.iter().map(|m| m.created_at).collect();
    sqlx::query!(
        // language=PostgreSQL
        r#"
        insert into chat.messages (message_id, chat_id, seq, role, parts, status, model, input_tokens, output_tokens,
                                   error, created_at, updated_at, parent_id, depth)
        select m.id, $1, m.seq, m.role, m.parts::jsonb, m.status, m.model, m.input_tokens, m.output_tokens, m.error,
               m.created_at, m.created_at, m.parent_id, m.depth
        from unnest($2::uuid[], $3::uuid[], $4::integer[], $5::text[], $6::text[], $7::text[], $8::text[],
                    $9::bigint[], $10::bigint[], $11::text[], $12::timestamptz[])
             with ordinality as m(id, parent_id, depth, role, parts, status, model, input_tokens, output_tokens,
                                  error, created_at, seq)
        "#,
        chat_id,
        &ids,
        &parents as &[Option<Uuid>],
        &depths,
        &roles as &[Option<String>],
        &parts as &[Option<String>],
        &statuses as &[Option<String>],
        &models as &[Option<String>],
        &input_tokens as &[Option<i64>],
        &output_tokens as &[Option<i64>],
        &errors as &[Option<String>],
        &created
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        // language=PostgreSQL
        "update chat.chats set last_seq = $2, active_leaf = $3 where chat_id = $1",
        chat_id,
        messages.len() as i64,
        leaf.or_else(|| messages.last().map(|m| m.message_id))
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Where a page of the messages API starts.
#[derive(Debug, Clone, Copy)]
pub enum PageStart {
    /// At a branch's last message (`None`: the chat's active leaf).
    Leaf(Option<Uuid>),
    /// Just above the message with this seq (the cursor of the previous page).
    Above(i64),
}

/// A page of the messages API: up to `limit` messages of a branch, newest first, walking up from `start`, each with
/// its versions and the chat owner's vote (the only user who can read the chat).
pub async fn page(
    db: impl PgExecutor<'_>,
    chat_id: Uuid,
    start: PageStart,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    let (leaf, above) = match start {
        PageStart::Leaf(leaf) => (leaf, None),
        PageStart::Above(seq) => (None, Some(seq)),
    };
    sqlx::query_as!(
        MessageRow,
        // language=PostgreSQL
        r#"
        with recursive start as (
            select case when $3::bigint is null
                        then coalesce($2::uuid, (select active_leaf from chat.chats where chat_id = $1))
                        else (select parent_id from chat.messages where chat_id = $1 and seq = $3)
                   end as message_id
        ), path as (
            select m.message_id, m.parent_id, 1 as n
            from start join chat.messages m on m.message_id = start.message_id
            where m.chat_id = $1
            union all
            select m.message_id, m.parent_id, path.n + 1
            from path join chat.messages m on m.message_id = path.parent_id
            where path.n < $4::bigint
        )
        select m.message_id, m.chat_id, m.seq, m.role, m.parts as "parts: Json<Vec<MessagePart>>", m.status, m.model,
               m.input_tokens, m.output_tokens, m.error, m.created_at, m.updated_at,
               case when m.status = 'streaming' then m.last_event_seq end as "resume_cursor?", m.trace_id,
               f.rating as "feedback_rating?", f.comment as "feedback_comment?",
               f.updated_at as "feedback_updated_at?", f.sync as "feedback_sync?", m.parent_id,
               case when m.parent_id is null
                    then (select array_agg(s.message_id order by s.seq) from chat.messages s
                          where s.chat_id = m.chat_id and s.parent_id is null)
                    else (select array_agg(s.message_id order by s.seq) from chat.messages s
                          where s.parent_id = m.parent_id)
               end as "siblings?", m.pinned
        from path
        join chat.messages m on m.message_id = path.message_id
        join chat.chats c on c.chat_id = m.chat_id
        left join chat.message_feedback f
            on f.message_id = m.message_id and f.user_id = c.owner_id and f.rating is not null
        order by path.n
        "#,
        chat_id,
        leaf,
        above,
        limit
    )
    .fetch_all(db)
    .await
}

/// The leaf of the branch through `message_id`: from it down, the newest version at every step. `None` when the
/// message is not in the chat.
pub async fn leaf_through(db: impl PgExecutor<'_>, chat_id: Uuid, message_id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        with recursive down as (
            select message_id, 0 as n from chat.messages where message_id = $2 and chat_id = $1
            union all
            select child.message_id, down.n + 1
            from down
            cross join lateral (
                select c.message_id from chat.messages c where c.parent_id = down.message_id order by c.seq desc limit 1
            ) child
        )
        select message_id as "message_id!" from down order by n desc limit 1
        "#,
        chat_id,
        message_id
    )
    .fetch_optional(db)
    .await
}

/// Makes `leaf` the end of the branch the chat shows and continues.
pub async fn set_active_leaf(db: impl PgExecutor<'_>, chat_id: Uuid, leaf: Uuid) -> sqlx::Result<()> {
    // language=PostgreSQL
    sqlx::query!("update chat.chats set active_leaf = $2 where chat_id = $1", chat_id, leaf).execute(db).await?;
    Ok(())
}

/// A message's place in the tree.
#[derive(Debug, Clone)]
pub struct Node {
    /// Message id.
    pub message_id: Uuid,
    /// The message it follows.
    pub parent_id: Option<Uuid>,
    /// `user` or `assistant` (or the rarer roles).
    pub role: String,
    /// Position on its path, from 1.
    pub depth: i32,
    /// The client id it was sent with.
    pub client_id: Option<String>,
}

/// A message of the chat named by its server id or by the client id it was sent with (an AI SDK client knows the
/// messages it sent by its own ids until it reloads).
pub async fn find_node(conn: &mut PgConnection, chat_id: Uuid, id: &str) -> sqlx::Result<Option<Node>> {
    let server_id = Uuid::try_parse(id).ok();
    sqlx::query_as!(
        Node,
        // language=PostgreSQL
        r#"
        select message_id, parent_id, role, depth as "depth!", client_id
        from chat.messages
        where chat_id = $1 and (message_id = $2 or client_id = $3)
        order by message_id = $2 desc
        limit 1
        "#,
        chat_id,
        server_id,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The message the chat's active branch ends with.
pub async fn active_leaf(conn: &mut PgConnection, chat_id: Uuid) -> sqlx::Result<Option<Node>> {
    sqlx::query_as!(
        Node,
        // language=PostgreSQL
        r#"
        select m.message_id, m.parent_id, m.role, m.depth as "depth!", m.client_id
        from chat.chats c join chat.messages m on m.message_id = c.active_leaf
        where c.chat_id = $1
        "#,
        chat_id
    )
    .fetch_optional(conn)
    .await
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
               null::timestamptz as "feedback_updated_at?", null::text as "feedback_sync?", m.parent_id,
               null::uuid[] as "siblings?", m.pinned
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

/// A message of the branch sent to the model.
#[derive(Debug)]
pub struct BranchRow {
    /// Message id.
    pub message_id: Uuid,
    /// Role.
    pub role: String,
    /// Content.
    pub parts: Json<Vec<MessagePart>>,
    /// Position on the path.
    pub depth: i32,
    /// Pinned by the user (never summarised).
    pub pinned: bool,
    /// Prompt tokens of the model calls that wrote it (answers).
    pub input_tokens: Option<i64>,
    /// Tokens it took (answers).
    pub output_tokens: Option<i64>,
    /// Whether a stored summary covers the branch up to this message (the walk stops at the newest such).
    pub summarised: bool,
}

/// The history sent to the model: the branch ending at `last` (included), newest first, up to `limit` messages or
/// down to the newest message a stored summary covers (included, with `summarised`), whichever comes first.
pub async fn branch_for_prompt(db: impl PgExecutor<'_>, last: Uuid, limit: i64) -> sqlx::Result<Vec<BranchRow>> {
    sqlx::query_as!(
        BranchRow,
        // language=PostgreSQL
        r#"
        with recursive path as (
            select message_id, parent_id, 1 as n,
                   exists(select 1 from chat.summaries s where s.through_id = message_id) as summarised
            from chat.messages where message_id = $1
            union all
            select m.message_id, m.parent_id, path.n + 1,
                   exists(select 1 from chat.summaries s where s.through_id = m.message_id)
            from path join chat.messages m on m.message_id = path.parent_id
            where path.n < $2::bigint and not path.summarised
        )
        select m.message_id, m.role, m.parts as "parts: Json<Vec<MessagePart>>", m.depth as "depth!", m.pinned,
               m.input_tokens, m.output_tokens, path.summarised as "summarised!"
        from path join chat.messages m on m.message_id = path.message_id
        order by path.n
        "#,
        last,
        limit
    )
    .fetch_all(db)
    .await
}

/// Messages by id, in the order asked (the pinned messages a summary left out).
pub async fn messages_by_id(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<(Role, Vec<MessagePart>)>> {
    let rows = sqlx::query!(
        // language=PostgreSQL
        r#"
        select m.role, m.parts as "parts: Json<Vec<MessagePart>>"
        from unnest($1::uuid[]) with ordinality as wanted(id, position)
        join chat.messages m on m.message_id = wanted.id
        order by wanted.position
        "#,
        ids
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().filter_map(|row| Role::parse(&row.role).map(|role| (role, row.parts.0))).collect())
}

/// Pins or unpins a message of the chat; `None` when the chat has no such message. A pinned message is never
/// summarised: pinning drops the chat's summaries that could cover it (at its depth or below), to be made again
/// without it when needed.
pub async fn set_pinned(
    conn: &mut PgConnection,
    chat_id: Uuid,
    message_id: Uuid,
    pinned: bool,
) -> sqlx::Result<Option<bool>> {
    let Some(depth) = sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        update chat.messages set pinned = $3 where message_id = $2 and chat_id = $1
        returning depth as "depth!"
        "#,
        chat_id,
        message_id,
        pinned
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    if pinned {
        sqlx::query!(
            // language=PostgreSQL
            "delete from chat.summaries where chat_id = $1 and through_depth >= $2",
            chat_id,
            depth
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(Some(pinned))
}

/// A user message found by its client id, with the answer that followed it (if any).
#[derive(Debug)]
pub struct ClientMessage {
    /// The stored user message.
    pub message_id: Uuid,
    /// Its first answer, if one exists.
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
                where a.parent_id = u.message_id and a.role = 'assistant'
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

/// Name of the unique index that allows one streaming answer per chat.
pub const ONE_STREAMING_PER_CHAT: &str = "messages_one_streaming_per_chat_idx";

/// The rows a turn start writes.
pub struct NewTurn<'a> {
    /// Chat (locked by the caller's transaction).
    pub chat_id: Uuid,
    /// What the new messages follow: (message id, depth); `None` for the first question of a chat or an edit of it.
    pub parent: Option<(Uuid, i32)>,
    /// The user message: (id, parts, client id). `None` when answering again (the parent is the question).
    pub user: Option<(Uuid, &'a [MessagePart], Option<&'a str>)>,
    /// The answer's id.
    pub answer_id: Uuid,
    /// Model answering.
    pub model: &'a str,
    /// This process's worker id.
    pub worker_id: i64,
}

/// Reserves message positions, marks the chat active and showing the new branch, and inserts the user message (if
/// any) and the streaming answer, in one statement. Returns the answer's seq and creation time.
pub async fn insert_turn(conn: &mut PgConnection, turn: NewTurn<'_>) -> sqlx::Result<(i64, DateTime<Utc>)> {
    let (user_id, user_parts, client_id) = match turn.user {
        Some((id, parts, client_id)) => (Some(id), Some(Json(parts)), client_id),
        None => (None, None, None),
    };
    let count: i64 = if user_id.is_some() { 2 } else { 1 };
    let (parent_id, parent_depth) = turn.parent.map_or((None, 0), |(id, depth)| (Some(id), depth));
    let row = sqlx::query!(
        // language=PostgreSQL
        r#"
        with position as (
            update chat.chats set last_seq = last_seq + $2, updated_at = now(), model = $3, active_leaf = $7
            where chat_id = $1
            returning last_seq
        ), user_message as (
            insert into chat.messages (message_id, chat_id, seq, role, parts, status, client_id, parent_id, depth)
            select $4, $1, position.last_seq - 1, 'user', $5, 'complete', $6, $9, $10 + 1
            from position where $4::uuid is not null
        )
        insert into chat.messages (message_id, chat_id, seq, role, parts, status, model, worker_id, heartbeat_at,
                                   parent_id, depth)
        select $7, $1, position.last_seq, 'assistant', '[]', 'streaming', $3, $8, now(),
               coalesce($4::uuid, $9), $10 + $2::bigint::integer
        from position
        returning seq, created_at
        "#,
        turn.chat_id,
        count,
        turn.model,
        user_id,
        user_parts as _,
        client_id,
        turn.answer_id,
        turn.worker_id,
        parent_id,
        parent_depth
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
               null::timestamptz as "feedback_updated_at?", null::text as "feedback_sync?", m.parent_id,
               null::uuid[] as "siblings?", m.pinned
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
