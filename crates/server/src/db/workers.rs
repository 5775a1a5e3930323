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
}

/// The streaming answers of a worker, locked for update.
pub async fn orphans_of(conn: &mut PgConnection, worker_id: i64) -> sqlx::Result<Vec<Orphan>> {
    sqlx::query_as!(
        Orphan,
        // language=PostgreSQL
        r#"
        select message_id as generation_id, last_event_seq, parts as "parts: Json<Vec<MessagePart>>"
        from chat.messages
        where worker_id = $1 and status = 'streaming'
        for update skip locked
        "#,
        worker_id
    )
    .fetch_all(conn)
    .await
}
