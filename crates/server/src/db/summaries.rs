//! Queries on `chat.summaries`: the stored summaries that stand for the older part of a long branch.

use sqlx::PgExecutor;
use uuid::Uuid;

/// A stored summary.
#[derive(Debug, Clone)]
pub struct SummaryRow {
    /// The last message it covers.
    pub through_id: Uuid,
    /// How many messages it stands for.
    pub covered: i32,
    /// Pinned messages it leaves out, oldest first.
    pub pinned_ids: Vec<Uuid>,
    /// The summary.
    pub text: String,
}

/// The summary through a message, if one is stored.
pub async fn find(db: impl PgExecutor<'_>, through_id: Uuid) -> sqlx::Result<Option<SummaryRow>> {
    sqlx::query_as!(
        SummaryRow,
        // language=PostgreSQL
        "select through_id, covered, pinned_ids, text from chat.summaries where through_id = $1",
        through_id
    )
    .fetch_optional(db)
    .await
}

/// A summary to store.
#[derive(Debug, Clone)]
pub struct NewSummary<'a> {
    /// The chat.
    pub chat_id: Uuid,
    /// The last message it covers, and its depth.
    pub through: (Uuid, i32),
    /// How many messages it stands for.
    pub covered: i32,
    /// Pinned messages it leaves out, oldest first.
    pub pinned_ids: &'a [Uuid],
    /// The summary.
    pub text: &'a str,
    /// The model that wrote it.
    pub model: &'a str,
}

/// Stores a summary (replacing one through the same message: the newer covers the same messages).
pub async fn upsert(db: impl PgExecutor<'_>, summary: NewSummary<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        // language=PostgreSQL
        r#"
        insert into chat.summaries (through_id, chat_id, through_depth, covered, pinned_ids, text, model)
        values ($1, $2, $3, $4, $5, $6, $7)
        on conflict (through_id) do update
        set covered = excluded.covered, pinned_ids = excluded.pinned_ids, text = excluded.text,
            model = excluded.model, created_at = now()
        "#,
        summary.through.0,
        summary.chat_id,
        summary.through.1,
        summary.covered,
        summary.pinned_ids,
        summary.text,
        summary.model
    )
    .execute(db)
    .await?;
    Ok(())
}
