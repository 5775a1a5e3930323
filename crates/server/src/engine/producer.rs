//! The task that runs one turn: reads the model, appends to the log, checkpoints, and writes the end.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shared::{MessageStatus, StreamMetadata, TurnState, UiChunk, Usage};
use tokio::time::Instant;

use super::checkpoint::write_timeout;
use super::live::{CancelReason, LiveTurn};
use super::log::PartKind;
use super::{Inner, lock, title};
use crate::db::generations::{self, FinalWrite, StoredEvent};
use crate::llm::{ChatModel, ModelEvent, ModelRequest};

/// How a turn ended.
#[derive(Debug)]
enum Outcome {
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

/// Runs the turn to its end. Never panics on expected failures; every path stores a terminal status.
pub(super) async fn run(inner: Arc<Inner>, turn: Arc<LiveTurn>, model: Arc<dyn ChatModel>, request: ModelRequest) {
    let mut usage: Option<Usage> = None;
    let mut stream = model.stream(request);
    // One cancellation future for the whole loop: creating one per token would register a waiter each time.
    let cancelled = turn.cancelled();
    tokio::pin!(cancelled);
    let outcome = loop {
        tokio::select! {
            biased;
            () = &mut cancelled => break match turn.cancel_reason() {
                Some(CancelReason::Stopped) | None => Outcome::Stopped,
                Some(CancelReason::ShuttingDown) => Outcome::Interrupted(SHUTTING_DOWN.to_owned()),
                Some(CancelReason::NotSaved) => Outcome::NotSaved,
                Some(CancelReason::Abandoned) => Outcome::Abandoned,
            },
            event = stream.next() => match event {
                Some(Ok(ModelEvent::Text(text))) => turn.push_content(PartKind::Text, &text),
                Some(Ok(ModelEvent::Reasoning(text))) => turn.push_content(PartKind::Reasoning, &text),
                Some(Ok(ModelEvent::Usage(reported))) => usage = Some(reported),
                Some(Ok(ModelEvent::Finished(_))) => {}
                Some(Ok(ModelEvent::Retrying { after })) => {
                    turn.push_control(UiChunk::status(TurnState::Retrying { after_secs: after.as_secs_f64().ceil() as u64 }));
                }
                Some(Ok(ModelEvent::Queued { position })) => turn.push_control(UiChunk::status(TurnState::Queued { position })),
                Some(Ok(ModelEvent::Loading { progress })) => turn.push_control(UiChunk::status(TurnState::Loading { progress })),
                Some(Ok(ModelEvent::Running)) => turn.push_control(UiChunk::status(TurnState::Running)),
                Some(Err(error)) => break Outcome::Failed(error.to_string()),
                None => break Outcome::Complete,
            },
        }
    };
    // Dropping the stream closes the upstream request, so a stopped model stops generating (and billing).
    drop(stream);
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
    terminal.push(UiChunk::FinishStep);
    if status == MessageStatus::Stopped {
        terminal.push(UiChunk::Abort);
    }
    terminal.push(UiChunk::Finish {
        message_metadata: Some(StreamMetadata {
            status: Some(status),
            usage,
            error: error.clone(),
            ..StreamMetadata::default()
        }),
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
        generation_id: turn.generation_id,
        parts,
        status,
        error: error.clone(),
        usage,
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
    lock(&inner.live).remove(&turn.generation_id);
    let _ = inner.to_announce.send(turn.generation_id);
    tracing::info!(generation.id = %turn.generation_id, status = status.as_str(), "turn ended");
}

/// The final write of a turn, owned so it can be retried from a background task.
struct OwnedFinalWrite {
    generation_id: uuid::Uuid,
    parts: Vec<shared::MessagePart>,
    status: MessageStatus,
    error: Option<String>,
    usage: Option<Usage>,
    first_seq: i64,
    events: Vec<StoredEvent>,
}

/// Writes the terminal status and the events not yet stored, retrying while the database is unreachable, for
/// at most `limit` (3 s while shutting down; one attempt for a zero limit). Each attempt may take at most the
/// checkpoints' write timeout, so a stalled database fails it instead of holding the turn's end. Returns whether
/// the end is stored (or was stored by someone else).
async fn store_final(inner: &Inner, owned: &OwnedFinalWrite, limit: Duration) -> bool {
    let write = FinalWrite {
        generation_id: owned.generation_id,
        parts: &owned.parts,
        status: owned.status,
        error: owned.error.as_deref(),
        usage: owned.usage,
        first_seq: owned.first_seq,
        events: &owned.events,
    };
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    let attempt_limit = write_timeout(inner.config.checkpoint_failure_limit);
    loop {
        let attempt = match tokio::time::timeout(attempt_limit, generations::finalize(&inner.db, &write)).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(_) => Err(format!("no answer from the database within {} ms", attempt_limit.as_millis())),
        };
        match attempt {
            Ok(true) => return true,
            Ok(false) => {
                tracing::warn!(generation.id = %owned.generation_id, "generation was already finished elsewhere");
                return true;
            }
            Err(error) => {
                let shutting_down = !inner.accepting.load(std::sync::atomic::Ordering::SeqCst);
                let limit = if shutting_down { limit.min(Duration::from_secs(3)) } else { limit };
                if started.elapsed() >= limit {
                    tracing::error!(generation.id = %owned.generation_id, error = %error, "could not store the end of a turn yet");
                    return false;
                }
                tracing::warn!(generation.id = %owned.generation_id, error = %error, "storing the end of a turn failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Replaces a new chat's derived title with one written by the model (unless the user renamed it meanwhile),
/// and tells the turn's subscribers.
pub(super) async fn retitle(
    inner: Arc<Inner>,
    turn: Arc<LiveTurn>,
    model: Arc<dyn ChatModel>,
    model_name: String,
    derived: String,
    first_message: String,
    user_token: Option<secrecy::SecretString>,
) {
    let Some(generated) = title::generate_title(model.as_ref(), &model_name, &first_message, user_token).await else {
        return;
    };
    if generated == derived {
        return;
    }
    match crate::db::chats::replace_auto_title(&inner.db, turn.chat_id, &derived, &generated).await {
        Ok(true) => turn.update(|log| {
            // Subscribers stop reading at `finish`; a title found later shows up on the next list refresh.
            if !log.is_sealed() {
                log.push_control(UiChunk::chat(turn.chat_id, generated));
            }
        }),
        Ok(false) => {}
        Err(error) => tracing::warn!(chat.id = %turn.chat_id, error = %error, "storing a generated title failed"),
    }
}
