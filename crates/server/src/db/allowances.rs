//! The statements behind the per-user turn limits (`crate::limits`): a row per user in `chat.turn_allowances`,
//! locked by the transaction that stores a turn, and the count of that user's streaming answers read after the lock.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// A user's allowance as it stands once their row is locked and, tentatively, charged with one more turn.
#[derive(Debug, Clone, Copy)]
pub struct Charged {
    /// The turn-rate bucket after this turn (the instant by which every turn so far is paid for).
    pub next_turn_at: DateTime<Utc>,
    /// The database's clock when charging.
    pub now: DateTime<Utc>,
    /// The user's answers stored as streaming, in every process, before this turn.
    pub streaming: i64,
}

/// Locks `owner_id`'s row (creating it on their first turn), then charges it `interval_secs` and counts their
/// streaming answers. Two statements: the count must come after the lock, in a statement of its own, to see what a
/// process that held the lock committed (one statement's snapshot is taken before it waits). The caller's
/// transaction rolls the charge back when it refuses the turn.
pub async fn charge(conn: &mut PgConnection, owner_id: &str, interval_secs: f64) -> sqlx::Result<Charged> {
    sqlx::query!(
        // language=PostgreSQL
        "insert into chat.turn_allowances (owner_id, next_turn_at) values ($1, '-infinity')
         on conflict (owner_id) do update set owner_id = excluded.owner_id",
        owner_id
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query_as!(
        Charged,
        // language=PostgreSQL
        r#"update chat.turn_allowances
           set next_turn_at = greatest(next_turn_at, statement_timestamp()) + make_interval(secs => $2)
           where owner_id = $1
           returning next_turn_at, statement_timestamp() as "now!",
               (select count(*) from chat.messages m join chat.chats c on c.chat_id = m.chat_id
                where m.status = 'streaming' and c.owner_id = $1) as "streaming!""#,
        owner_id,
        interval_secs
    )
    .fetch_one(conn)
    .await
}
