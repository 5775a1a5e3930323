//! The end of a turn: its terminal chunks (`error`, `finish-step`, `abort`, `finish`) and the final write of its
//! status, text and last events. Clients see `finish` only once the end is stored.

use std::sync::Arc;
use std::time::Duration;

use shared::{MessageStatus, StreamMetadata, UiChunk, Usage};
use tokio::time::Instant;

use super::checkpoint::write_timeout;
use super::live::{CancelReason, LiveTurn};
use super::step::StepReport;
use super::{Inner, lock};
use crate::db::answers::{self, FinalWrite};
use crate::db::events::StoredEvent;

/// How a turn ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Complete,
    Stopped,
    Failed(String),
    /// Checkpoints kept failing for the whole failure limit.
    NotSaved,
    Interrupted(String),
    /// Another process already stored this generation as interrupted.
    Abandoned,
}

const NOT_SAVED: &str = "the answer could not be saved; the database is unreachable";
const SHUTTING_DOWN: &str = "the server restarted before the answer was finished";

impl Outcome {
    /// The outcome of a turn asked to end for `reason`.
    pub(super) fn cancelled(reason: Option<CancelReason>) -> Self {
        match reason {
            Some(CancelReason::Stopped) | None => Outcome::Stopped,
            Some(CancelReason::ShuttingDown) => Outcome::Interrupted(SHUTTING_DOWN.to_owned()),
            Some(CancelReason::NotSaved) => Outcome::NotSaved,
            Some(CancelReason::Abandoned) => Outcome::Abandoned,
        }
    }
}

/// Stores the turn's end and tells its clients. Never panics on expected failures.
pub(super) async fn finish(inner: Arc<Inner>, turn: Arc<LiveTurn>, outcome: Outcome, report: StepReport) {
    if matches!(outcome, Outcome::Interrupted(_))
        && turn.cancel_reason() == Some(CancelReason::ShuttingDown)
        && turn.read(|log| log.upstream().is_some())
    {
        return hand_over(&inner, &turn).await;
    }
    let StepReport { usage, trace } = report;
    let (status, error) = match &outcome {
        Outcome::Complete => (MessageStatus::Complete, None),
        Outcome::Stopped => (MessageStatus::Stopped, None),
        Outcome::Failed(message) => (MessageStatus::Error, Some(message.clone())),
        Outcome::NotSaved => (MessageStatus::Error, Some(NOT_SAVED.to_owned())),
        Outcome::Interrupted(message) => (MessageStatus::Interrupted, Some(message.clone())),
        Outcome::Abandoned => (MessageStatus::Interrupted, Some(SHUTTING_DOWN.to_owned())),
    };
    let mut terminal = Vec::with_capacity(4);
    if let Some(message) = &error {
        terminal.push(UiChunk::Error { error_text: message.clone() });
    }
    // The last step's end, unless it ended already (an answer that stopped to wait for an approval).
    if turn.read(|log| log.step_open()) {
        terminal.push(UiChunk::FinishStep);
    }
    if status == MessageStatus::Stopped {
        terminal.push(UiChunk::Abort);
    }
    terminal.push(UiChunk::Finish {
        message_metadata: Some(Box::new(StreamMetadata {
            status: Some(status),
            usage,
            error: error.clone(),
            trace_id: trace.clone(),
            ..StreamMetadata::default()
        })),
    });
    // Waits for a checkpoint batch in flight, and keeps the next ones away from this turn.
    let mut saved_guard = turn.saved.lock().await;
    let saved = saved_guard.seq;
    // Clients see `finish` only once the end is stored, so a client that sends its next message right away
    // never finds this turn still "running" (409) nor an answer still "streaming" after a reload.
    let (parts, unsaved) = turn.update(|log| {
        log.seal();
        let mut unsaved = log.stored_events(saved + 1, log.len());
        unsaved.extend(log.closing_chunks(&terminal).into_iter().map(StoredEvent::from));
        (log.parts(), unsaved)
    });
    let write = OwnedFinalWrite {
        answer_id: turn.answer_id,
        parts,
        status,
        error: error.clone(),
        usage,
        trace,
        first_seq: saved as i64 + 1,
        events: unsaved,
    };
    // After failing checkpoints the database has had the whole limit already: one attempt, then the client is told
    // and the write goes on in the background (retrying here made the client wait for the limit a second time).
    let foreground_limit = match outcome {
        Outcome::NotSaved => Duration::ZERO,
        _ => inner.config.checkpoint_failure_limit,
    };
    let stored = matches!(outcome, Outcome::Abandoned) || store_final(&inner, &write, foreground_limit).await;
    turn.update(|log| log.finish_with(terminal));
    saved_guard.seq = turn.read(|log| log.len());
    drop(saved_guard);
    if !stored {
        // The client has its answer; keep trying to store it for a while (a restart's recovery otherwise
        // keeps the last checkpoint, as interrupted).
        let inner = inner.clone();
        tokio::spawn(async move {
            store_final(&inner, &write, Duration::from_secs(600)).await;
        });
    }
    turn.mark_stored();
    lock(&inner.live).remove(&turn.answer_id);
    let _ = inner.to_announce.send(turn.answer_id);
    tracing::info!(answer.id = %turn.answer_id, status = status.as_str(), "turn ended");
}

/// The final write of a turn, owned so it can be retried from a background task.
struct OwnedFinalWrite {
    answer_id: uuid::Uuid,
    parts: Vec<shared::MessagePart>,
    status: MessageStatus,
    error: Option<String>,
    usage: Option<Usage>,
    trace: Option<String>,
    first_seq: i64,
    events: Vec<StoredEvent>,
}

/// Writes the terminal status and the events not yet stored, retrying while the database is unreachable, for
/// at most `limit` (3 s while shutting down; one attempt for a zero limit). Each attempt may take at most the
/// checkpoints' write timeout, so a stalled database fails it instead of holding the turn's end. Returns whether
/// the end is stored (or was stored by someone else).
async fn store_final(inner: &Inner, owned: &OwnedFinalWrite, limit: Duration) -> bool {
    let write = FinalWrite {
        answer_id: owned.answer_id,
        parts: &owned.parts,
        status: owned.status,
        error: owned.error.as_deref(),
        usage: owned.usage,
        trace_id: owned.trace.as_deref(),
        first_seq: owned.first_seq,
        events: &owned.events,
    };
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    let attempt_limit = write_timeout(inner.config.checkpoint_failure_limit);
    loop {
        let attempt = match tokio::time::timeout(attempt_limit, answers::finalize(&inner.db, &write)).await {
            Ok(result) => result.map_err(|error| {
                inner.refusals.observe(&error);
                error.to_string()
            }),
            Err(_) => Err(format!("no answer from the database within {} ms", attempt_limit.as_millis())),
        };
        match attempt {
            Ok(true) => return true,
            Ok(false) => {
                tracing::warn!(answer.id = %owned.answer_id, "the answer was already finished elsewhere");
                return true;
            }
            Err(error) => {
                let shutting_down = !inner.accepting.load(std::sync::atomic::Ordering::SeqCst);
                let limit = if shutting_down { limit.min(Duration::from_secs(3)) } else { limit };
                if started.elapsed() >= limit {
                    tracing::error!(answer.id = %owned.answer_id, error = %error, "could not store the end of a turn yet");
                    return false;
                }
                tracing::warn!(answer.id = %owned.answer_id, error = %error, "storing the end of a turn failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A server shutting down leaves an answer from an agent's background run streaming instead of interrupted: what it
/// has is stored with the run's position, and the next process to look (this one restarted, or another replica)
/// re-attaches it to the run. Its clients' streams end here; they resume it there.
async fn hand_over(inner: &Arc<Inner>, turn: &Arc<LiveTurn>) {
    super::checkpoint::write_now(inner, turn).await;
    turn.update(|log| log.seal());
    turn.release();
    turn.mark_stored();
    lock(&inner.live).remove(&turn.answer_id);
    tracing::info!(answer.id = %turn.answer_id, "left the answer to its agent's background run, to re-attach after the restart");
}
