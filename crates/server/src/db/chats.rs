//! Queries on `chat.chats`. Every query takes the owner, so one user can never read or change another's chat.

use chrono::{DateTime, Utc};
use shared::ChatSummary;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::cursor::ChatCursor;

/// A row of `chat.chats` as the API shows it.
#[derive(Debug, Clone)]
pub struct ChatRow {
    /// Chat id.
    pub chat_id: Uuid,
    /// Title.
    pub title: String,
    /// `auto` or `user`.
    pub title_source: String,
    /// Model in use.
    pub model: Option<String>,
    /// Attachment key of another tool.
    pub scope: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last activity.
    pub updated_at: DateTime<Utc>,
    /// The sources of tools the chat uses; `None`: all the server offers.
    pub tool_sources: Option<Vec<String>>,
    /// Pinned to the top of the sidebar.
    pub pinned: bool,
    /// Out of the list until brought back.
    pub archived: bool,
    /// In search results: the newest message whose text matched.
    pub matched_message_id: Option<Uuid>,
}

impl From<ChatRow> for ChatSummary {
    fn from(row: ChatRow) -> Self {
        ChatSummary {
            id: row.chat_id,
            title: row.title,
            model: row.model,
            scope: row.scope,
            created_at: row.created_at,
            updated_at: row.updated_at,
            tools: row.tool_sources,
            pinned: row.pinned,
            archived: row.archived,
            matched_message_id: row.matched_message_id,
        }
    }
}

/// Which chats to list.
#[derive(Debug, Clone, Default)]
pub struct ChatFilter {
    /// Only chats whose title or message text has words starting with each word of this text.
    pub search: Option<String>,
    /// Only chats with this scope key.
    pub scope: Option<String>,
    /// Which chats by their place in the sidebar.
    pub section: Section,
}

/// The chats of one part of the sidebar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Section {
    /// Every chat not archived (the default, and the only choice with search or a scope).
    #[default]
    Listed,
    /// Pinned chats not archived.
    Pinned,
    /// Chats neither pinned nor archived (the sidebar's list below the pinned ones).
    Unpinned,
    /// Archived chats.
    Archived,
}

/// Inserts a chat, or returns `None` if the id is taken (by this owner or another).
pub async fn insert_chat(
    db: impl PgExecutor<'_>,
    chat_id: Uuid,
    owner_id: &str,
    title: &str,
    model: Option<&str>,
    scope: Option<&str>,
) -> sqlx::Result<Option<ChatRow>> {
    sqlx::query_as!(
        ChatRow,
        // language=PostgreSQL
        r#"
        insert into chat.chats (chat_id, owner_id, title, model, scope)
        values ($1, $2, $3, $4, $5)
        on conflict (chat_id) do nothing
        returning chat_id, title, title_source, model, scope, created_at, updated_at, tool_sources,
                  pinned_at is not null as "pinned!", archived_at is not null as "archived!",
                  null::uuid as "matched_message_id?"
        "#,
        chat_id,
        owner_id,
        title,
        model,
        scope
    )
    .fetch_optional(db)
    .await
}

/// One chat of the owner.
pub async fn fetch_chat(db: impl PgExecutor<'_>, owner_id: &str, chat_id: Uuid) -> sqlx::Result<Option<ChatRow>> {
    sqlx::query_as!(
        ChatRow,
        // language=PostgreSQL
        r#"
        select chat_id, title, title_source, model, scope, created_at, updated_at, tool_sources,
               pinned_at is not null as "pinned!", archived_at is not null as "archived!",
               null::uuid as "matched_message_id?"
        from chat.chats
        where chat_id = $1 and owner_id = $2
        "#,
        chat_id,
        owner_id
    )
    .fetch_optional(db)
    .await
}

/// Sets a title the user chose; a generated title will never replace it. Does not count as activity.
pub async fn rename_chat(
    db: impl PgExecutor<'_>,
    owner_id: &str,
    chat_id: Uuid,
    title: &str,
) -> sqlx::Result<Option<ChatRow>> {
    sqlx::query_as!(
        ChatRow,
        // language=PostgreSQL
        r#"
        update chat.chats set title = $3, title_source = 'user'
        where chat_id = $1 and owner_id = $2
        returning chat_id, title, title_source, model, scope, created_at, updated_at, tool_sources,
                  pinned_at is not null as "pinned!", archived_at is not null as "archived!",
                  null::uuid as "matched_message_id?"
        "#,
        chat_id,
        owner_id,
        title
    )
    .fetch_optional(db)
    .await
}

/// Sets the sources of tools a chat uses (`None`: all). Does not count as activity.
pub async fn set_tool_sources(
    db: impl PgExecutor<'_>,
    owner_id: &str,
    chat_id: Uuid,
    sources: Option<&[String]>,
) -> sqlx::Result<Option<ChatRow>> {
    sqlx::query_as!(
        ChatRow,
        // language=PostgreSQL
        r#"
        update chat.chats set tool_sources = $3
        where chat_id = $1 and owner_id = $2
        returning chat_id, title, title_source, model, scope, created_at, updated_at, tool_sources,
                  pinned_at is not null as "pinned!", archived_at is not null as "archived!",
                  null::uuid as "matched_message_id?"
        "#,
        chat_id,
        owner_id,
        sources
    )
    .fetch_optional(db)
    .await
}

/// Pins or unpins, archives or brings back a chat (`None`: unchanged). Does not count as activity.
pub async fn set_place(
    db: impl PgExecutor<'_>,
    owner_id: &str,
    chat_id: Uuid,
    pinned: Option<bool>,
    archived: Option<bool>,
) -> sqlx::Result<Option<ChatRow>> {
    sqlx::query_as!(
        ChatRow,
        // language=PostgreSQL
        r#"
        update chat.chats
        set pinned_at = case when $3::boolean is null then pinned_at when $3 then coalesce(pinned_at, now()) end,
            archived_at = case when $4::boolean is null then archived_at when $4 then coalesce(archived_at, now()) end
        where chat_id = $1 and owner_id = $2
        returning chat_id, title, title_source, model, scope, created_at, updated_at, tool_sources,
                  pinned_at is not null as "pinned!", archived_at is not null as "archived!",
                  null::uuid as "matched_message_id?"
        "#,
        chat_id,
        owner_id,
        pinned,
        archived
    )
    .fetch_optional(db)
    .await
}

/// Deletes a chat and (by cascade) its messages. Returns whether the owner had such a chat.
pub async fn delete_chat(db: impl PgExecutor<'_>, owner_id: &str, chat_id: Uuid) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        // language=PostgreSQL
        "delete from chat.chats where chat_id = $1 and owner_id = $2",
        chat_id,
        owner_id
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// A page of the owner's chats, most recently active first, strictly after `after`.
///
/// Three statements rather than one with `$n is null or ...` guards: each keeps its keyset condition an index
/// condition under PostgreSQL's generic plans, so deep pages cost the same as the first.
pub async fn list_chats(
    db: impl PgExecutor<'_>,
    owner_id: &str,
    filter: &ChatFilter,
    after: Option<ChatCursor>,
    limit: i64,
) -> sqlx::Result<Vec<ChatRow>> {
    // "Before the start" of the order: later than any real time (the last second of year 9999), larger
    // than any id.
    let after = after.unwrap_or(ChatCursor {
        updated_at: DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default(),
        chat_id: Uuid::max(),
    });
    if let Some(search) = &filter.search {
        return search_chats(db, owner_id, search, filter.scope.as_deref(), after, limit).await;
    }
    match &filter.scope {
        None if filter.section == Section::Pinned => {
            sqlx::query_as!(
                ChatRow,
                // language=PostgreSQL
                r#"
                select chat_id, title, title_source, model, scope, created_at, updated_at, tool_sources,
                       true as "pinned!", false as "archived!", null::uuid as "matched_message_id?"
                from chat.chats
                where owner_id = $1 and pinned_at is not null and archived_at is null
                  and (updated_at, chat_id) < ($2, $3)
                order by updated_at desc, chat_id desc
                limit $4
                "#,
                owner_id,
                after.updated_at,
                after.chat_id,
                limit
            )
            .fetch_all(db)
            .await
        }
        None if filter.section == Section::Archived => {
            sqlx::query_as!(
                ChatRow,
                // language=PostgreSQL
                r#"
                select chat_id, title, title_source, model, scope, created_at, updated_at, tool_sources,
                       pinned_at is not null as "pinned!", true as "archived!", null::uuid as "matched_message_id?"
                from chat.chats
                where owner_id = $1 and archived_at is not null and (updated_at, chat_id) < ($2, $3)
                order by updated_at desc, chat_id desc
                limit $4
                "#,
                owner_id,
                after.updated_at,
                after.chat_id,
                limit
            )
            .fetch_all(db)
            .await
        }
        None => {
            sqlx::query_as!(
                ChatRow,
                // language=PostgreSQL
                r#"
                select chat_id, title, title_source, model, scope, created_at, updated_at, tool_sources,
                       pinned_at is not null as "pinned!", false as "archived!", null::uuid as "matched_message_id?"
                from chat.chats
                where owner_id = $1 and archived_at is null and (updated_at, chat_id) < ($2, $3)
                  and ($5 or pinned_at is null)
                order by updated_at desc, chat_id desc
                limit $4
                "#,
                owner_id,
                after.updated_at,
                after.chat_id,
                limit,
                filter.section == Section::Listed
            )
            .fetch_all(db)
            .await
        }
        Some(scope) => {
            sqlx::query_as!(
                ChatRow,
                // language=PostgreSQL
                r#"
                select chat_id, title, title_source, model, scope, created_at, updated_at, tool_sources,
               pinned_at is not null as "pinned!", archived_at is not null as "archived!",
               null::uuid as "matched_message_id?"
                from chat.chats
                where owner_id = $1 and scope = $2 and archived_at is null and (updated_at, chat_id) < ($3, $4)
                order by updated_at desc, chat_id desc
                limit $5
                "#,
                owner_id,
                scope,
                after.updated_at,
                after.chat_id,
                limit
            )
            .fetch_all(db)
            .await
        }
    }
}

/// Chats whose title or message text contains words starting with every word of `search`.
///
/// The words are split by PostgreSQL's own text parser (the same one that built the indexed vectors) and
/// each becomes a quoted prefix term, so no user input is ever parsed as tsquery syntax.
///
/// The message match is an uncorrelated `in (...)`: PostgreSQL runs it once through the GIN index and hashes the
/// chat ids. (A correlated `exists` probed the index once per chat: seconds for a user with 10,000 chats.) Only the
/// chats of the page then look up their newest matching message (which may be on a branch the chat does not show:
/// the client opens that branch); collecting it for every hit doubled the time of a word found everywhere.
async fn search_chats(
    db: impl PgExecutor<'_>,
    owner_id: &str,
    search: &str,
    scope: Option<&str>,
    after: ChatCursor,
    limit: i64,
) -> sqlx::Result<Vec<ChatRow>> {
    sqlx::query_as!(
        ChatRow,
        // language=PostgreSQL
        r#"
        with query as (
            select to_tsquery('simple', string_agg(
                       '''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || ''':*', ' & ')) as q
            from unnest(to_tsvector('simple', $2::text))
        )
        select c.chat_id, c.title, c.title_source, c.model, c.scope, c.created_at, c.updated_at, c.tool_sources,
               c.pinned_at is not null as "pinned!", c.archived_at is not null as "archived!",
               (select m.message_id from chat.messages m
                where m.chat_id = c.chat_id and m.content_search @@ query.q
                order by m.seq desc limit 1) as "matched_message_id?"
        from chat.chats c, query
        where c.owner_id = $1 and c.archived_at is null
          and ($3::text is null or c.scope = $3)
          and (c.updated_at, c.chat_id) < ($4, $5)
          and (c.title_search @@ query.q
               or c.chat_id in (select m.chat_id from chat.messages m, query mq where m.content_search @@ mq.q))
        order by c.updated_at desc, c.chat_id desc
        limit $6
        "#,
        owner_id,
        search,
        scope,
        after.updated_at,
        after.chat_id,
        limit
    )
    .fetch_all(db)
    .await
}

/// Replaces an automatic title, unless the user renamed the chat (or the title changed) meanwhile.
pub async fn replace_auto_title(
    db: impl PgExecutor<'_>,
    chat_id: Uuid,
    expected: &str,
    title: &str,
) -> sqlx::Result<bool> {
    let result = sqlx::query!(
        // language=PostgreSQL
        "update chat.chats set title = $3 where chat_id = $1 and title = $2 and title_source = 'auto'",
        chat_id,
        expected,
        title
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// The row of a chat locked for the duration of a turn-start transaction.
#[derive(Debug)]
pub struct LockedChat {
    /// Owner.
    pub owner_id: String,
    /// Title.
    pub title: String,
    /// Model last used.
    pub model: Option<String>,
    /// The sources of tools it uses; `None`: all.
    pub tool_sources: Option<Vec<String>>,
}

/// Locks the chat row, serialising turn starts on one chat across every process; `None` if the chat does not
/// exist. Check for a streaming answer with a separate statement afterwards: one in the same statement would
/// use the snapshot taken before the lock wait and miss the answer the previous lock holder just committed.
pub async fn lock_chat(conn: &mut PgConnection, chat_id: Uuid) -> sqlx::Result<Option<LockedChat>> {
    sqlx::query_as!(
        LockedChat,
        // language=PostgreSQL
        "select owner_id, title, model, tool_sources from chat.chats where chat_id = $1 for update",
        chat_id
    )
    .fetch_optional(conn)
    .await
}
