//! Queries on `chat.shares`: the owner makes, lists and revokes links to a branch of a chat; anyone signed in
//! reads one by its id.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// A link as its owner sees it.
#[derive(Debug, Clone)]
pub struct ShareRow {
    /// The link's id.
    pub share_id: Uuid,
    /// The chat.
    pub chat_id: Uuid,
    /// The last message shown.
    pub leaf_id: Uuid,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl From<ShareRow> for shared::Share {
    fn from(row: ShareRow) -> Self {
        shared::Share {
            id: row.share_id,
            chat_id: row.chat_id,
            leaf_id: row.leaf_id,
            url: format!("/share/{}", row.share_id),
            created_at: row.created_at,
        }
    }
}

/// Makes a link to the branch ending at `leaf_id` (a message of the chat, checked by the caller).
pub async fn insert(
    db: impl PgExecutor<'_>,
    share_id: Uuid,
    chat_id: Uuid,
    leaf_id: Uuid,
    owner_name: &str,
) -> sqlx::Result<ShareRow> {
    sqlx::query_as!(
        ShareRow,
        // language=PostgreSQL
        r#"
        insert into chat.shares (share_id, chat_id, leaf_id, owner_name) values ($1, $2, $3, $4)
        returning share_id, chat_id, leaf_id, created_at
        "#,
        share_id,
        chat_id,
        leaf_id,
        owner_name
    )
    .fetch_one(db)
    .await
}

/// The links of one of the owner's chats, newest first.
pub async fn list(db: impl PgExecutor<'_>, owner_id: &str, chat_id: Uuid) -> sqlx::Result<Vec<ShareRow>> {
    sqlx::query_as!(
        ShareRow,
        // language=PostgreSQL
        r#"
        select s.share_id, s.chat_id, s.leaf_id, s.created_at
        from chat.shares s join chat.chats c on c.chat_id = s.chat_id
        where s.chat_id = $1 and c.owner_id = $2
        order by s.created_at desc, s.share_id
        "#,
        chat_id,
        owner_id
    )
    .fetch_all(db)
    .await
}

/// Revokes one of the owner's links. Returns whether there was one.
pub async fn delete(db: impl PgExecutor<'_>, owner_id: &str, share_id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query!(
        // language=PostgreSQL
        r#"
        delete from chat.shares s using chat.chats c
        where s.share_id = $1 and c.chat_id = s.chat_id and c.owner_id = $2
        "#,
        share_id,
        owner_id
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected() > 0)
}

/// A link as a viewer opens it.
#[derive(Debug, Clone)]
pub struct OpenedShare {
    /// The chat.
    pub chat_id: Uuid,
    /// The last message shown.
    pub leaf_id: Uuid,
    /// Who shared it.
    pub owner_name: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The chat's title now.
    pub title: String,
}

/// A link by its id, whoever asks; `None` when unknown or revoked.
pub async fn open(db: impl PgExecutor<'_>, share_id: Uuid) -> sqlx::Result<Option<OpenedShare>> {
    sqlx::query_as!(
        OpenedShare,
        // language=PostgreSQL
        r#"
        select s.chat_id, s.leaf_id, s.owner_name, s.created_at, c.title
        from chat.shares s join chat.chats c on c.chat_id = s.chat_id
        where s.share_id = $1
        "#,
        share_id
    )
    .fetch_optional(db)
    .await
}
