//! A turn running in this process: its log, its subscribers, and how it is told to stop.

use std::sync::{Arc, Mutex, MutexGuard};

use futures::Stream;
use shared::UiChunk;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use shared::Content;

use super::log::TurnLog;

/// Why a running turn was cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelReason {
    /// The user pressed stop.
    Stopped,
    /// The server is shutting down and the drain deadline passed.
    ShuttingDown,
    /// The answer could not be saved for too long.
    NotSaved,
    /// Another process recovered (interrupted) this answer: it must not be written any more.
    Abandoned,
}

impl CancelReason {
    /// What a tool call still running when the turn ended says.
    pub fn tool_error(&self) -> &'static str {
        match self {
            CancelReason::Stopped => "stopped by the user before the tool answered",
            CancelReason::ShuttingDown | CancelReason::Abandoned => {
                "the server restarted before the tool answered; it may or may not have run"
            }
            CancelReason::NotSaved => "the answer could not be saved; the tool may or may not have run",
        }
    }
}

/// A turn running in this process.
pub struct LiveTurn {
    /// The answer's (assistant message's) id.
    pub answer_id: Uuid,
    /// Chat id.
    pub chat_id: Uuid,
    log: Mutex<TurnLog>,
    /// Number of events in the log; subscribers wait on changes.
    len: watch::Sender<u64>,
    cancel: CancellationToken,
    reason: Mutex<Option<CancelReason>>,
    /// Set once the final status is stored (or storing it was given up).
    stored: watch::Sender<bool>,
    /// Set when this process lets the answer go on elsewhere (see [`LiveTurn::release`]).
    released: std::sync::atomic::AtomicBool,
    /// What is stored. Held while writing, so a checkpoint batch and the final write never store the same
    /// events twice.
    pub(super) saved: tokio::sync::Mutex<Saved>,
}

/// How much of a turn is stored, and when it was last written.
#[derive(Debug, Clone, Copy)]
pub struct Saved {
    /// The last sequence number stored.
    pub seq: u64,
    /// When the turn was last checkpointed (or started).
    pub at: tokio::time::Instant,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a plain append or read; a panic inside one cannot leave half an update.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LiveTurn {
    /// A turn with an empty log.
    pub fn new(answer_id: Uuid, chat_id: Uuid) -> Arc<Self> {
        Self::with_log(answer_id, chat_id, TurnLog::default())
    }

    /// A turn that goes on from `log` (a stored answer being continued: its events up to the log's base are
    /// stored already).
    pub fn with_log(answer_id: Uuid, chat_id: Uuid, log: TurnLog) -> Arc<Self> {
        let (base, len) = (log.base(), log.len());
        Arc::new(Self {
            answer_id,
            chat_id,
            log: Mutex::new(log),
            len: watch::channel(len).0,
            cancel: CancellationToken::new(),
            reason: Mutex::new(None),
            stored: watch::channel(false).0,
            released: std::sync::atomic::AtomicBool::new(false),
            saved: tokio::sync::Mutex::new(Saved { seq: base, at: tokio::time::Instant::now() }),
        })
    }

    /// Appends a control chunk and wakes subscribers.
    pub fn push_control(&self, chunk: UiChunk) {
        self.update(|log| log.push_control(chunk));
    }

    /// Appends what the model said and wakes subscribers.
    pub fn push(&self, content: Content) {
        self.update(|log| log.push(content));
    }

    /// Runs `f` on the log, then wakes subscribers.
    pub fn update<R>(&self, f: impl FnOnce(&mut TurnLog) -> R) -> R {
        let (result, len) = {
            let mut log = lock(&self.log);
            let result = f(&mut log);
            (result, log.len())
        };
        self.len.send_replace(len);
        result
    }

    /// Reads the log.
    pub fn read<R>(&self, f: impl FnOnce(&TurnLog) -> R) -> R {
        f(&lock(&self.log))
    }

    /// Asks the turn to end; the first reason wins.
    pub fn cancel(&self, reason: CancelReason) {
        lock(&self.reason).get_or_insert(reason);
        self.cancel.cancel();
    }

    /// Resolves when the turn is asked to end.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    /// Why the turn was asked to end, if it was.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        lock(&self.reason).clone()
    }

    /// Marks the final write as done.
    pub fn mark_stored(&self) {
        self.stored.send_replace(true);
    }

    /// Ends every subscription without a `finish`: the answer goes on in another process (or after a restart),
    /// and its clients resume it there.
    pub fn release(&self) {
        self.released.store(true, std::sync::atomic::Ordering::SeqCst);
        self.len.send_modify(|_| {});
    }

    /// Waits until the final status is stored.
    pub async fn wait_stored(&self) {
        let mut rx = self.stored.subscribe();
        let _ = rx.wait_for(|stored| *stored).await;
    }

    /// Waits until the log holds the final chunk.
    pub async fn wait_finished(&self) {
        let mut rx = self.len.subscribe();
        loop {
            if self.read(TurnLog::is_finished) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// The events after `after` (a sequence number), then every new one until the turn finishes.
    pub fn subscribe(self: &Arc<Self>, after: u64) -> impl Stream<Item = (u64, UiChunk)> + Send + 'static {
        let turn = self.clone();
        let mut rx = self.len.subscribe();
        async_stream::stream! {
            let mut cursor = after;
            loop {
                rx.borrow_and_update();
                let (chunks, finished) = turn.read(|log| (log.numbered_chunks(cursor + 1, log.len()), log.is_finished()));
                for (seq, chunk) in chunks {
                    cursor = seq;
                    yield (seq, chunk);
                }
                if finished || turn.released.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
        }
    }
}
