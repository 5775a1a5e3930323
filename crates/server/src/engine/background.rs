//! The engine's background tasks: this process's liveness lock, recovery of dead processes' turns,
//! announcing checkpoints to other processes (PostgreSQL `NOTIFY`), receiving their announcements and stop
//! requests (`LISTEN`), and deleting expired event logs.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use shared::{MessagePart, MessageStatus, StreamMetadata, ToolState, UiChunk};
use sqlx::postgres::PgListener;
use sqlx::{ConnectOptions, PgConnection, PgPool};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::live::CancelReason;
use super::{Inner, lock, reattach};
use crate::db::answers::{self, FinalWrite};
use crate::db::events::{self, StoredEvent};
use crate::db::workers;

/// Channel announcing that an answer's events were stored (payload: comma-separated answer ids).
const EVENTS_CHANNEL: &str = "chat_generation_events";
/// Channel asking the worker of an answer to stop it (payload: the answer id).
const CANCEL_CHANNEL: &str = "chat_generation_cancel";
/// How long checkpoint announcements are batched; one `NOTIFY` per batch keeps the global notify lock cold.
const ANNOUNCE_BATCH: Duration = Duration::from_millis(50);
/// A worker is only suspected once its answers missed heartbeats for this long.
const HEARTBEAT_GRACE_SECS: f64 = 3.0;
/// A worker whose answers have not beaten for this long is presumed hung, lock or not.
const HUNG_AFTER_SECS: f64 = 180.0;
/// After (re)connecting, this process waits this long before judging others: a database restart drops every
/// worker's lock at once, and they need a moment to take them back.
const JUDGE_AFTER: Duration = Duration::from_secs(20);
/// How often dead workers are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How often expired event logs are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(300);
/// The message stored on a recovered answer.
pub const INTERRUPTED_MESSAGE: &str = "the server stopped before the answer was finished";

/// A random, non-negative worker id (63 random bits): collisions with other advisory-lock keys are negligible.
pub fn new_worker_id() -> i64 {
    (Uuid::new_v4().as_u64_pair().0 >> 1) as i64
}

/// Handles of the background tasks, stopped at shutdown.
#[derive(Default)]
pub(super) struct Handles(Mutex<Vec<JoinHandle<()>>>);

impl Handles {
    fn add(&self, handle: JoinHandle<()>) {
        lock(&self.0).push(handle);
    }

    /// Stops every task (the liveness connection closes, releasing the worker lock).
    pub async fn stop(&self) {
        let handles: Vec<JoinHandle<()>> = lock(&self.0).drain(..).collect();
        for handle in handles {
            handle.abort();
            let _ = handle.await;
        }
    }
}

/// Takes the worker lock, recovers what dead workers left, and starts the loops.
pub(super) async fn start(inner: &Arc<Inner>, announce_rx: mpsc::UnboundedReceiver<Uuid>) -> anyhow::Result<()> {
    let liveness = connect_liveness(&inner.db, inner.worker_id).await?;
    let connected_since = Arc::new(Mutex::new(Instant::now()));
    sweep(inner, false).await;
    inner.background.add(tokio::spawn(keep_alive(inner.clone(), liveness, connected_since.clone())));
    inner.background.add(tokio::spawn(sweep_loop(inner.clone(), connected_since)));
    inner.background.add(tokio::spawn(announce_loop(inner.db.clone(), announce_rx)));
    inner.background.add(tokio::spawn(listen_loop(inner.clone())));
    inner.background.add(tokio::spawn(purge_loop(inner.clone())));
    inner.background.add(tokio::spawn(super::checkpoint::checkpoint_loop(inner.clone())));
    Ok(())
}

async fn connect_liveness(db: &PgPool, worker_id: i64) -> sqlx::Result<PgConnection> {
    let mut conn = db.connect_options().connect().await?;
    workers::hold_worker_lock(&mut conn, worker_id).await?;
    Ok(conn)
}

/// Keeps the liveness connection (and so the worker lock) alive, reconnecting after database restarts.
async fn keep_alive(inner: Arc<Inner>, mut conn: PgConnection, connected_since: Arc<Mutex<Instant>>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if sqlx::Connection::ping(&mut conn).await.is_ok() {
            continue;
        }
        tracing::warn!("lost the liveness connection; reconnecting");
        let mut pause = Duration::from_millis(200);
        conn = loop {
            match connect_liveness(&inner.db, inner.worker_id).await {
                Ok(conn) => break conn,
                Err(error) => {
                    inner.refusals.observe(&error);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        };
        *lock(&connected_since) = Instant::now();
        tracing::info!("liveness connection restored");
    }
}

async fn sweep_loop(inner: Arc<Inner>, connected_since: Arc<Mutex<Instant>>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let settled = lock(&connected_since).elapsed() >= JUDGE_AFTER;
        if settled {
            sweep(&inner, true).await;
        }
    }
}

/// Finds workers that died with running answers and stores those as interrupted, keeping their text; an answer
/// from an agent's background run is adopted and re-attached to the run instead.
async fn sweep(inner: &Arc<Inner>, periodic: bool) {
    let result = async {
        let mut conn = inner.db.acquire().await?;
        // At start the lock alone decides: this process was not around, so nobody's lock can be "on its way
        // back" from its point of view unless the database restarted this very moment.
        let grace = if periodic { HEARTBEAT_GRACE_SECS } else { 0.0 };
        let suspects = workers::suspect_workers(&mut conn, inner.worker_id, grace).await?;
        let mut recovered = 0usize;
        let mut adopted = Vec::new();
        for worker in suspects {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let dead = workers::try_lock_worker(&mut tx, worker).await?
                || workers::has_ancient_heartbeat(&mut tx, worker, HUNG_AFTER_SECS).await?;
            if !dead {
                continue;
            }
            let mut reattaching = Vec::new();
            for orphan in workers::orphans_of(&mut tx, worker).await? {
                // An agent's background run outlives the process that streamed it: take it up instead.
                let orphan = match reattach::reattachable(inner, orphan).await {
                    Ok(reattachable) => {
                        if workers::adopt(&mut tx, reattachable.answer_id(), inner.worker_id).await? {
                            reattaching.push(reattachable);
                        }
                        continue;
                    }
                    Err(orphan) => orphan,
                };
                // Calls this server was running died with it: their cards fail, in the parts and in the events.
                let mut parts = orphan.parts.0.clone();
                let failed = fail_running_calls(&mut parts);
                let events: Vec<StoredEvent> = failed
                    .into_iter()
                    .map(StoredEvent::Chunk)
                    .chain([StoredEvent::Chunk(UiChunk::Error { error_text: INTERRUPTED_MESSAGE.to_owned() })])
                    .chain([StoredEvent::Chunk(UiChunk::Finish {
                        message_metadata: Some(Box::new(StreamMetadata {
                            status: Some(MessageStatus::Interrupted),
                            error: Some(INTERRUPTED_MESSAGE.to_owned()),
                            ..StreamMetadata::default()
                        })),
                    })])
                    .collect();
                let write = FinalWrite {
                    answer_id: orphan.generation_id,
                    parts: &parts,
                    status: MessageStatus::Interrupted,
                    error: Some(INTERRUPTED_MESSAGE),
                    usage: None,
                    trace_id: None,
                    first_seq: orphan.last_event_seq + 1,
                    events: &events,
                };
                if answers::finalize(&mut *tx, &write).await? {
                    recovered += 1;
                }
            }
            tx.commit().await?;
            adopted.extend(reattaching);
        }
        for reattachable in adopted {
            reattach::resume(inner, reattachable);
        }
        Ok::<usize, sqlx::Error>(recovered)
    }
    .await;
    match result {
        Ok(0) => {}
        Ok(count) => tracing::warn!(turns = count, periodic, "stored turns of a stopped server process as interrupted"),
        Err(error) => tracing::warn!(error = %error, "recovery sweep failed"),
    }
}

/// What a call this server was running says when the process died under it.
const CALL_INTERRUPTED: &str = "the server stopped before the tool answered; it may or may not have run";

/// Fails the calls this server was running in an answer whose process died (not an agent's own calls, and not a
/// call waiting for the user's approval, which any process can still continue); returns their chunks.
pub(super) fn fail_running_calls(parts: &mut [MessagePart]) -> Vec<UiChunk> {
    let waiting: Vec<String> = parts
        .iter()
        .filter_map(|part| match part {
            MessagePart::Data(data) if data.kind == crate::llm::APPROVAL_PART && data.data["state"] == "requested" => {
                data.data["toolCallId"].as_str().map(str::to_owned)
            }
            _ => None,
        })
        .collect();
    let mut chunks = Vec::new();
    for part in parts.iter_mut() {
        let MessagePart::Tool(tool) = part else { continue };
        let running = matches!(tool.state, ToolState::InputStreaming | ToolState::InputAvailable)
            && tool.provider_executed != Some(true)
            && !waiting.contains(&tool.tool_call_id);
        if !running {
            continue;
        }
        tool.state = ToolState::OutputError;
        tool.error_text = Some(CALL_INTERRUPTED.to_owned());
        chunks.push(UiChunk::ToolOutputError {
            tool_call_id: tool.tool_call_id.clone(),
            error_text: CALL_INTERRUPTED.to_owned(),
            provider_executed: None,
            dynamic: Some(true),
        });
    }
    chunks
}

/// Batches checkpoint announcements into few `NOTIFY`s.
async fn announce_loop(db: PgPool, mut rx: mpsc::UnboundedReceiver<Uuid>) {
    let mut batch: Vec<Uuid> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        tokio::time::sleep(ANNOUNCE_BATCH).await;
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        batch.sort_unstable();
        batch.dedup();
        // NOTIFY payloads are limited to 8000 bytes: 200 ids of 36 characters fit comfortably.
        for ids in batch.chunks(200) {
            let payload = ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
            if let Err(error) = sqlx::query!("select pg_notify($1, $2)", EVENTS_CHANNEL, payload).execute(&db).await {
                tracing::debug!(error = %error, "announcing checkpoints failed (followers fall back to polling)");
            }
        }
        batch.clear();
    }
}

/// Asks whichever process runs an answer to stop it.
pub(super) async fn announce_cancel(db: &PgPool, answer_id: Uuid) {
    let payload = answer_id.to_string();
    if let Err(error) = sqlx::query!("select pg_notify($1, $2)", CANCEL_CHANNEL, payload).execute(db).await {
        tracing::warn!(error = %error, "announcing a stop failed (the worker sees it at its next checkpoint)");
    }
}

/// Receives announcements from every process (this one included).
async fn listen_loop(inner: Arc<Inner>) {
    loop {
        let mut listener = match PgListener::connect_with(&inner.db).await {
            Ok(listener) => listener,
            Err(error) => {
                inner.refusals.observe(&error);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if listener.listen_all([EVENTS_CHANNEL, CANCEL_CHANNEL]).await.is_err() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match notification.channel() {
                    EVENTS_CHANNEL => {
                        for id in notification.payload().split(',').filter_map(|id| Uuid::parse_str(id).ok()) {
                            let _ = inner.flushed.send(id);
                        }
                    }
                    CANCEL_CHANNEL => {
                        if let Ok(id) = Uuid::parse_str(notification.payload())
                            && let Some(turn) = lock(&inner.live).get(&id).cloned()
                        {
                            turn.cancel(CancelReason::Stopped);
                        }
                    }
                    _ => {}
                },
                // The connection dropped; sqlx reconnects on the next call and notifications in between are lost,
                // which followers cover by polling.
                Ok(None) => continue,
                Err(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn purge_loop(inner: Arc<Inner>) {
    loop {
        tokio::time::sleep(PURGE_EVERY).await;
        match events::purge_events(&inner.db, inner.config.stream_retention.as_secs_f64()).await {
            Ok(0) => {}
            Ok(count) => tracing::debug!(answers = count, "deleted expired event logs"),
            Err(error) => tracing::warn!(error = %error, "deleting expired event logs failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::{Answer, DataPart, ToolPart};

    use super::*;

    fn call(id: &str, state: ToolState, provider_executed: Option<bool>) -> MessagePart {
        MessagePart::Tool(ToolPart {
            tool_call_id: id.into(),
            tool_name: "t".into(),
            state,
            input: (state != ToolState::InputStreaming).then(|| json!({})),
            output: (state == ToolState::OutputAvailable).then(|| json!(1)),
            error_text: None,
            provider_executed,
            call_provider_metadata: None,
        })
    }

    #[test]
    fn a_dead_process_fails_the_calls_it_was_running_and_nothing_else() {
        let mut parts = vec![
            call("running", ToolState::InputAvailable, None),
            call("streaming", ToolState::InputStreaming, None),
            call("done", ToolState::OutputAvailable, None),
            call("agents", ToolState::InputAvailable, Some(true)),
            call("waiting", ToolState::InputAvailable, None),
            MessagePart::Data(DataPart {
                kind: crate::llm::APPROVAL_PART.into(),
                id: Some("approval-waiting".into()),
                data: json!({"approvalId": "waiting", "toolCallId": "waiting", "state": "requested"}),
            }),
        ];
        let before = parts.clone();
        let chunks = fail_running_calls(&mut parts);
        let failed: Vec<&str> = parts
            .iter()
            .filter_map(|p| match p {
                MessagePart::Tool(t) if t.state == ToolState::OutputError => Some(t.tool_call_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(failed, ["running", "streaming"]);
        // A client that had the parts before sees the same parts after the chunks.
        let mut client = Answer::from_parts(before);
        chunks.iter().for_each(|chunk| {
            client.apply(chunk);
        });
        assert_eq!(client.parts, parts);
    }
}
