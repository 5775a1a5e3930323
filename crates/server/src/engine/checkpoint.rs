//! Checkpoints: every turn running in this process is stored at least once per interval, many turns per
//! statement. The interval is cut into ten slices and each slice stores the turns that are due, so the work is
//! spread evenly instead of arriving as one burst a second (which stalled token delivery for tens of ms at a
//! thousand turns).

use std::sync::Arc;
use std::time::Duration;

use sqlx::{ConnectOptions, PgConnection};
use tokio::time::{Instant, MissedTickBehavior};

use super::live::{CancelReason, LiveTurn};
use super::{Inner, lock};
use crate::db::answers::{self, CheckpointRow};

/// Turns per statement: keeps one statement's size (new text of each turn) bounded.
const BATCH: usize = 100;
/// Slices per interval.
const SLICES: u32 = 10;
/// The shortest attempt at a write while checkpoints are failing (one that could still succeed).
const MIN_ATTEMPT: Duration = Duration::from_millis(200);

/// Longest a checkpoint or final write may take before it counts as failed: half the failure limit, between 1 and
/// 5 s. A database that stalls (a lock, a network that drops packets) must count as failing, or answers would
/// live only in memory for as long as the stall lasts. The abandoned statement may still commit later, which the
/// writes tolerate (see [`answers::checkpoint_batch`]).
pub(super) fn write_timeout(failure_limit: Duration) -> Duration {
    (failure_limit / 2).clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// Runs until the engine closes.
///
/// Checkpoints use a connection of their own rather than the pool: a connection keeps its send buffer at the size
/// of the largest statement it sent, and batches are large, so through the pool every connection would end up
/// holding one (about 30 KiB of memory per running turn at a few hundred turns).
pub(super) async fn checkpoint_loop(inner: Arc<Inner>) {
    let mut conn: Option<PgConnection> = None;
    let period = inner.config.checkpoint_interval;
    let slice = period / SLICES;
    // A turn is due once its last write is older than this; the slice it is picked in writes it within `period`.
    let due_after = period - slice;
    let mut ticks = tokio::time::interval_at(Instant::now() + slice, slice);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing_since: Option<Instant> = None;
    let failure_limit = inner.config.checkpoint_failure_limit;
    let write_limit = write_timeout(failure_limit);
    loop {
        tokio::select! {
            () = inner.closing.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let turns: Vec<Arc<LiveTurn>> = lock(&inner.live).values().cloned().collect();
        let mut all_ok = true;
        let due: Vec<Arc<LiveTurn>> =
            turns.iter().filter(|t| t.saved.try_lock().is_ok_and(|s| s.at.elapsed() >= due_after)).cloned().collect();
        for batch in due.chunks(BATCH) {
            // A failure counts from when the attempt began: a stalled write has been failing all along.
            let attempt_started = Instant::now();
            let budget = attempt_budget(failing_since, attempt_started, failure_limit, write_limit);
            if conn.is_none() {
                let options = inner.db.connect_options();
                conn = match tokio::time::timeout(budget, options.connect()).await {
                    Ok(Ok(connection)) => Some(connection),
                    Ok(Err(error)) => {
                        inner.refusals.observe(&error);
                        None
                    }
                    Err(_) => None,
                };
            }
            let written = match conn.as_mut() {
                Some(connection) => match tokio::time::timeout(budget, checkpoint(&inner, connection, batch)).await {
                    Ok(written) => written,
                    Err(_) => {
                        tracing::warn!(
                            turns = batch.len(),
                            timeout_ms = budget.as_millis() as u64,
                            "checkpoint got no answer in time; counting it as failed"
                        );
                        false
                    }
                },
                None => false,
            };
            if !written {
                failing_since.get_or_insert(attempt_started);
                all_ok = false;
                // The connection may be broken, or still busy with the abandoned statement: the next attempt opens
                // a fresh one. The other batches wait for the next slice rather than each waiting out a stall.
                conn = None;
                break;
            }
        }
        if all_ok {
            failing_since = None;
        } else if let Some(since) = failing_since
            && since.elapsed() >= failure_limit
        {
            tracing::error!(
                failing_secs = since.elapsed().as_secs(),
                "checkpoints keep failing; ending running turns so their text is not only in memory"
            );
            for turn in turns {
                turn.cancel(CancelReason::NotSaved);
            }
        }
    }
}

/// How long a checkpoint attempt starting at `now` may take: the write limit, but while checkpoints are failing
/// never past the moment the failure limit is reached (the turns must end on time, not a whole stalled attempt
/// later), and never less than [`MIN_ATTEMPT`].
fn attempt_budget(
    failing_since: Option<Instant>,
    now: Instant,
    failure_limit: Duration,
    write_limit: Duration,
) -> Duration {
    failing_since.map_or(write_limit, |since| {
        (since + failure_limit).saturating_duration_since(now).clamp(MIN_ATTEMPT, write_limit)
    })
}

/// Writes one turn's new events now, at a step boundary, through the pool, so another process that takes over sees
/// every finished step. A failure is left to the periodic checkpoints, which retry it and count the failures.
pub(super) async fn write_now(inner: &Inner, turn: &Arc<LiveTurn>) {
    let limit = write_timeout(inner.config.checkpoint_failure_limit);
    let write = async {
        let mut conn = inner.db.acquire().await.ok()?;
        Some(checkpoint(inner, &mut conn, std::slice::from_ref(turn)).await)
    };
    if !matches!(tokio::time::timeout(limit, write).await, Ok(Some(true))) {
        tracing::warn!(answer.id = %turn.answer_id, "checkpoint at a step boundary failed; the next one retries");
    }
}

/// Stores one batch; returns whether the write succeeded.
async fn checkpoint(inner: &Inner, conn: &mut PgConnection, turns: &[Arc<LiveTurn>]) -> bool {
    // Turns whose final write holds their lock are skipped: that write stores everything.
    let mut held = Vec::with_capacity(turns.len());
    let mut rows = Vec::with_capacity(turns.len());
    for turn in turns {
        let Ok(saved) = turn.saved.try_lock() else { continue };
        let snapshot = turn.read(|log| {
            if log.is_sealed() {
                return None;
            }
            let len = log.len();
            let (parts, events) = if len > saved.seq {
                (Some(log.parts()), Some(log.stored_events(saved.seq + 1, len)))
            } else {
                (None, None)
            };
            let upstream = log.upstream().and_then(|run| serde_json::to_string(run).ok());
            Some((len, parts, events, upstream))
        });
        let Some((len, parts, events, upstream_json)) = snapshot else { continue };
        let row = CheckpointRow {
            answer_id: turn.answer_id,
            parts_json: parts.and_then(|p| serde_json::to_string(&p).ok()),
            first_seq: saved.seq as i64 + 1,
            last_seq: if events.is_some() { len as i64 } else { saved.seq as i64 },
            events_json: events.and_then(|e| serde_json::to_string(&e).ok()),
            upstream_json,
        };
        rows.push(row);
        held.push((turn, saved, len));
    }
    if rows.is_empty() {
        return true;
    }
    let started = Instant::now();
    match answers::checkpoint_batch(&mut *conn, &rows).await {
        Ok(running) => {
            let running: std::collections::HashMap<uuid::Uuid, bool> = running.into_iter().collect();
            for ((turn, mut saved, len), row) in held.into_iter().zip(&rows) {
                match running.get(&turn.answer_id) {
                    Some(&cancel_requested) => {
                        saved.at = started;
                        if row.events_json.is_some() {
                            saved.seq = len;
                            let _ = inner.to_announce.send(turn.answer_id);
                        }
                        if cancel_requested {
                            turn.cancel(CancelReason::Stopped);
                        }
                    }
                    None => {
                        tracing::warn!(answer.id = %turn.answer_id, "generation was recovered by another process; abandoning it");
                        turn.cancel(CancelReason::Abandoned);
                    }
                }
            }
            let took = started.elapsed();
            if took > Duration::from_millis(500) {
                tracing::warn!(turns = rows.len(), took_ms = took.as_millis() as u64, "slow checkpoint");
            }
            true
        }
        Err(error) => {
            inner.refusals.observe(&error);
            tracing::warn!(turns = rows.len(), error = %error, "checkpoint failed; retrying at the next interval");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{MIN_ATTEMPT, attempt_budget, write_timeout};

    #[test]
    fn a_write_may_take_half_the_failure_limit_within_bounds() {
        assert_eq!(write_timeout(Duration::from_secs(20)), Duration::from_secs(5));
        assert_eq!(write_timeout(Duration::from_secs(3)), Duration::from_millis(1500));
        assert_eq!(write_timeout(Duration::from_secs(1)), Duration::from_secs(1));
    }

    #[test]
    fn while_failing_an_attempt_ends_when_the_failure_limit_is_reached() {
        let (limit, write) = (Duration::from_secs(3), Duration::from_millis(1500));
        let now = Instant::now();
        assert_eq!(attempt_budget(None, now, limit, write), write, "healthy: the whole write limit");
        let since = now.checked_sub(Duration::from_millis(2500)).unwrap_or(now);
        let budget = attempt_budget(Some(since), now, limit, write);
        assert!(budget <= Duration::from_millis(500) && budget >= MIN_ATTEMPT, "{budget:?}");
        let long_ago = now.checked_sub(Duration::from_secs(10)).unwrap_or(now);
        assert_eq!(attempt_budget(Some(long_ago), now, limit, write), MIN_ATTEMPT);
    }
}
