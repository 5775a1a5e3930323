//! Liveness of server processes ("workers") and recovery of the answers of dead ones.
//!
//! Each process picks a random 64-bit worker id and holds `pg_advisory_lock(worker_id)` on a dedicated
//! connection for its whole life. PostgreSQL releases the lock when that connection ends, so another process
//! that can take the lock knows the worker is gone (killed, crashed, or cut off for good).

use shared::MessagePart;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

/// Takes the worker's lock for the life of this connection.
pub async fn hold_worker_lock(conn: &mut PgConnection, worker_id: i64) -> sqlx::Result<()> {
    sqlx::query!("select pg_advisory_lock($1)", worker_id).execute(conn).await?;
    Ok(())
}

/// Workers other than `me` with streaming answers whose last heartbeat is older than `grace_secs`.
pub async fn suspect_workers(conn: &mut PgConnection, me: i64, grace_secs: f64) -> sqlx::Result<Vec<i64>> {
    let workers = sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        select distinct worker_id as "worker_id!" from chat.messages
        where status = 'streaming' and worker_id is not null and worker_id <> $1
          and heartbeat_at < now() - make_interval(secs => $2)
        "#,
        me,
        grace_secs
    )
    .fetch_all(conn)
    .await?;
    Ok(workers)
}

/// Inside a transaction: whether the worker's lock is free (the worker is gone). Held until the transaction ends.
pub async fn try_lock_worker(conn: &mut PgConnection, worker_id: i64) -> sqlx::Result<bool> {
    let locked =
        sqlx::query_scalar!(r#"select pg_try_advisory_xact_lock($1) as "locked!""#, worker_id).fetch_one(conn).await?;
    Ok(locked)
}

/// Whether a worker's heartbeat stopped so long ago that it is presumed hung even if its lock is held.
pub async fn has_ancient_heartbeat(conn: &mut PgConnection, worker_id: i64, limit_secs: f64) -> sqlx::Result<bool> {
    let ancient = sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        select coalesce(max(heartbeat_at) < now() - make_interval(secs => $2), false) as "ancient!"
        from chat.messages where worker_id = $1 and status = 'streaming'
        "#,
        worker_id,
        limit_secs
    )
    .fetch_one(conn)
    .await?;
    Ok(ancient)
}

/// A streaming answer of a dead worker, with its last checkpoint.
#[derive(Debug)]
pub struct Orphan {
    /// Generation (= assistant message) id.
    pub generation_id: Uuid,
    /// Highest stored event.
    pub last_event_seq: i64,
    /// Content at the last checkpoint.
    pub parts: Json<Vec<MessagePart>>,
    /// The chat.
    pub chat_id: Uuid,
    /// The chat's owner.
    pub owner_id: String,
    /// The model (agent) writing it.
    pub model: Option<String>,
    /// Where the agent's background run stood at the last checkpoint, for an answer from one.
    pub upstream_run: Option<serde_json::Value>,
}

/// The streaming answers of a worker, locked for update.
pub async fn orphans_of(conn: &mut PgConnection, worker_id: i64) -> sqlx::Result<Vec<Orphan>> {
    sqlx::query_as!(
        Orphan,
        // language=PostgreSQL
        r#"
        select m.message_id as generation_id, m.last_event_seq, m.parts as "parts: Json<Vec<MessagePart>>",
               m.chat_id, c.owner_id, m.model, m.upstream_run
        from chat.messages m
        join chat.chats c on c.chat_id = m.chat_id
        where m.worker_id = $1 and m.status = 'streaming'
        for update of m skip locked
        "#,
        worker_id
    )
    .fetch_all(conn)
    .await
}

/// Takes over a streaming answer of a dead worker, to re-attach it to its agent's background run.
pub async fn adopt(conn: &mut PgConnection, answer_id: Uuid, worker_id: i64) -> sqlx::Result<bool> {
    let adopted = sqlx::query!(
        // language=PostgreSQL
        r#"
        update chat.messages set worker_id = $2, heartbeat_at = now(), cancel_requested = false
        where message_id = $1 and status = 'streaming'
        "#,
        answer_id,
        worker_id
    )
    .execute(conn)
    .await?;
    Ok(adopted.rows_affected() > 0)
}
