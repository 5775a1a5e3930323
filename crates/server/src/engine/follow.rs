//! Following an answer that does not run in this process: replay its stored events, then wait for more
//! (announced through PostgreSQL notifications, with a polling fallback) until its `finish` chunk.

use std::sync::Arc;
use std::time::Duration;

use shared::{MessageStatus, StreamMetadata, UiChunk};
use uuid::Uuid;

use super::log::TurnLog;
use super::{ChunkStream, Inner};
use crate::db::{answers, events, thread};
use crate::error::ApiError;

/// Longest wait between two looks at the stored log when no notification arrives.
const POLL_FALLBACK: Duration = Duration::from_secs(1);

/// Events of an answer run elsewhere (or already finished), after `after`.
pub(super) async fn stored(inner: &Arc<Inner>, answer_id: Uuid, after: u64) -> Result<ChunkStream, ApiError> {
    let state = answers::answer_state(&inner.db, answer_id).await?.ok_or(ApiError::NotFound("generation"))?;
    if !state.running && (after as i64) < state.last_event_seq {
        let first_stored = events::events_after(&inner.db, answer_id, after as i64).await?.first().map(|b| b.0);
        if first_stored.is_none_or(|first| first as u64 > after + 1) {
            // The event log expired (retention). From the start the answer can be rebuilt from its message; from
            // an event id it cannot (the ids are gone), so the client is told it is over and reloads the message.
            let chunks = if after == 0 { synthesized(inner, answer_id).await? } else { Vec::new() };
            return Ok(Box::pin(futures::stream::iter(chunks)));
        }
    }
    let inner = inner.clone();
    let mut flushed = inner.flushed.subscribe();
    Ok(Box::pin(async_stream::stream! {
        let mut cursor = after;
        loop {
            let batches = match events::events_after(&inner.db, answer_id, cursor as i64).await {
                Ok(batches) => batches,
                Err(error) => {
                    tracing::warn!(answer.id = %answer_id, error = %error, "reading stored events failed; retrying");
                    tokio::time::sleep(POLL_FALLBACK).await;
                    continue;
                }
            };
            let mut finished = false;
            for (first_seq, events) in batches {
                for (offset, event) in events.into_iter().enumerate() {
                    let seq = first_seq as u64 + offset as u64;
                    if seq <= cursor {
                        continue;
                    }
                    cursor = seq;
                    let chunk = UiChunk::from(event);
                    finished |= chunk.is_finish();
                    yield (seq, chunk);
                }
            }
            if finished {
                break;
            }
            match answers::answer_state(&inner.db, answer_id).await {
                // Ended, and the client is at or past the end of the stored log without having read a `finish` here:
                // it saw events its process never stored (the process died between two checkpoints), and the end
                // written for it by a surviving process (`background.rs`) is numbered after the last stored event,
                // under ids this client already had (at the very end of the log it cannot be told apart from a
                // client that read the stored `finish`, which never resumes: telling that one again costs nothing).
                // It is told the end after its own last id.
                Ok(Some(state)) if !state.running && after > 0 && cursor as i64 >= state.last_event_seq && cursor == after => {
                    if let Ok(end) = stored_end(&inner, answer_id).await {
                        yield (cursor + 1, end);
                    }
                    break;
                }
                // Finished without a stored `finish` (e.g. purged mid-read): nothing more will come.
                Ok(Some(state)) if !state.running && cursor as i64 >= state.last_event_seq => break,
                Ok(None) => break,
                _ => {}
            }
            let wait_for_flush = async {
                loop {
                    match flushed.recv().await {
                        Ok(id) if id == answer_id => return,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            };
            tokio::select! {
                () = inner.closing.cancelled() => break,
                _ = tokio::time::timeout(POLL_FALLBACK, wait_for_flush) => {}
            }
        }
    }))
}

/// The `finish` chunk of a stored answer that ended: its status and, when it failed, why.
async fn stored_end(inner: &Inner, answer_id: Uuid) -> Result<UiChunk, ApiError> {
    let (row, _) = thread::replay_source(&inner.db, answer_id).await?.ok_or(ApiError::NotFound("generation"))?;
    Ok(UiChunk::Finish {
        message_metadata: Some(Box::new(StreamMetadata {
            status: Some(row.status()),
            error: row.error,
            ..StreamMetadata::default()
        })),
    })
}

/// A complete stream rebuilt from a stored answer (its original event log expired).
async fn synthesized(inner: &Inner, answer_id: Uuid) -> Result<Vec<(u64, UiChunk)>, ApiError> {
    let (row, title) = thread::replay_source(&inner.db, answer_id).await?.ok_or(ApiError::NotFound("generation"))?;
    let status = row.status();
    let mut log = TurnLog::default();
    log.push_control(UiChunk::Start {
        message_id: Some(answer_id.to_string()),
        message_metadata: Some(Box::new(StreamMetadata {
            status: Some(MessageStatus::Streaming),
            model: row.model.clone(),
            created_at: Some(row.created_at),
            chat_id: Some(row.chat_id),
            seq: Some(row.seq),
            ..StreamMetadata::default()
        })),
    });
    log.push_control(UiChunk::chat(row.chat_id, title));
    let content = TurnLog::replay(&row.parts.0);
    let mut chunks = log.chunks(1, log.len());
    chunks.extend(content.chunks(1, content.len()));
    if let Some(error) = &row.error {
        chunks.push(UiChunk::Error { error_text: error.clone() });
    }
    chunks.push(UiChunk::FinishStep);
    chunks.push(UiChunk::Finish {
        message_metadata: Some(Box::new(StreamMetadata {
            status: Some(status),
            error: row.error,
            ..StreamMetadata::default()
        })),
    });
    Ok(chunks.into_iter().enumerate().map(|(index, chunk)| (index as u64 + 1, chunk)).collect())
}
