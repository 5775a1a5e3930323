//! The in-process local model (crate `local-model`) behind the [`ChatModel`] seam, so turns on it are stored,
//! streamed, resumed and stopped exactly like turns on a remote endpoint.
//!
//! - **Getting ready.** At start a background task finds the weights (downloading and checking them on first
//!   use), prepares them once and loads them. Until then the model is offered with its progress; a turn sent
//!   meanwhile waits and tells its client so (`data-status` `loading`). If the weights cannot be had, the model
//!   is withdrawn and the log and the picker's hint say how to configure a model.
//! - **Serving.** One loaded copy is shared. Generation is CPU-bound and runs on the blocking thread pool, never
//!   on the async workers, so every other request stays fast. `LOCAL_MODEL_CONCURRENCY` answers run at once
//!   (one by default: a single answer already keeps both cores busy); further turns wait first in, first out,
//!   told their place (`data-status` `queued`), up to `LOCAL_MODEL_QUEUE`; beyond that the model is busy (429,
//!   which the engine retries with backoff before the first token).
//! - **Stopping.** Dropping the stream (stop, shutdown) sets a flag the generation loop checks between steps.
//! - **Continuing.** The attention caches of the last answers are kept (one per slot, about 46 KB per token),
//!   so a chat's next turn reads only its new tokens instead of the whole conversation again.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use local_model::prepare::Plan;
use local_model::{ChatMessage, ChatRole, GenerationSettings, LoadedModel, ModelSpec, Session};
use shared::Usage;
use tokio::sync::{Semaphore, mpsc, watch};

use super::directory::InProcessModel;
use super::{ChatModel, ModelEntry, ModelError, ModelEvent, ModelRequest, ModelStream, PromptRole, Protocol};
use crate::config::LocalModelConfig;

/// What the local model is doing.
#[derive(Clone)]
pub enum LocalStatus {
    /// Downloading the weights.
    Downloading {
        /// Bytes received.
        received: u64,
        /// Bytes expected, when known.
        total: Option<u64>,
    },
    /// Re-encoding the weights for speed (first start only).
    Preparing,
    /// Reading the weights into memory.
    Loading,
    /// Answering.
    Ready(Arc<LoadedModel>),
    /// Cannot be used; the message says why and what to do.
    Failed(String),
}

impl LocalStatus {
    fn progress(&self) -> Option<u8> {
        match self {
            LocalStatus::Downloading { received, total: Some(total) } if *total > 0 => {
                Some((received.saturating_mul(100) / total).min(100) as u8)
            }
            _ => None,
        }
    }

    /// A few words for the model picker while the model is not ready.
    pub fn describe(&self) -> Option<String> {
        match self {
            LocalStatus::Downloading { .. } => {
                Some(self.progress().map_or("downloading…".to_owned(), |p| format!("downloading, {p} %…")))
            }
            LocalStatus::Preparing => Some("preparing (first start only)…".to_owned()),
            LocalStatus::Loading => Some("loading…".to_owned()),
            LocalStatus::Ready(_) | LocalStatus::Failed(_) => None,
        }
    }
}

/// The local model: its readiness, its generation slots and its waiting line.
pub struct LocalModel {
    spec: ModelSpec,
    settings: LocalModelConfig,
    status: watch::Receiver<LocalStatus>,
    slots: Arc<Semaphore>,
    line: Arc<WaitingLine>,
    sessions: Arc<Sessions>,
}

impl LocalModel {
    /// Starts getting the model ready in the background and returns at once.
    pub fn start(settings: LocalModelConfig, http: reqwest::Client) -> Arc<Self> {
        let spec = local_model::SMOLLM2_135M;
        let (status_tx, status) = watch::channel(LocalStatus::Loading);
        let model = Arc::new(Self {
            spec,
            slots: Arc::new(Semaphore::new(settings.concurrency)),
            line: Arc::new(WaitingLine::default()),
            sessions: Arc::new(Sessions::new(settings.concurrency)),
            settings,
            status,
        });
        let settings = model.settings.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            match get_ready(&spec, &settings, &http, &status_tx).await {
                Ok((loaded, path)) => {
                    tracing::info!(
                        model = spec.id,
                        path = %path.display(),
                        secs = format!("{:.2}", started.elapsed().as_secs_f64()),
                        context = settings.context.min(loaded.context_length()),
                        "local model ready"
                    );
                    let _ = status_tx.send(LocalStatus::Ready(Arc::new(loaded)));
                }
                Err(reason) => {
                    let message = format!(
                        "The built-in local model is not available: {reason}. To chat, configure a model endpoint \
                         (DATABRICKS_HOST with a CLI profile or token, or LLM_BASE_URL and \
                         DATABRICKS_SERVING_ENDPOINT), or put {} at LOCAL_MODEL_PATH",
                        spec.file_name
                    );
                    tracing::error!("{message}");
                    let _ = status_tx.send(LocalStatus::Failed(message));
                }
            }
        });
        model
    }

    /// The id users pick it by.
    pub fn id(&self) -> &'static str {
        self.spec.id
    }

    /// The name shown in the picker.
    pub fn display_name(&self) -> &'static str {
        self.spec.display_name
    }

    /// What it is doing now.
    pub fn status(&self) -> LocalStatus {
        self.status.borrow().clone()
    }

    /// Answers being generated now.
    pub fn running(&self) -> usize {
        self.settings.concurrency - self.slots.available_permits()
    }

    /// Turns waiting for a free slot.
    pub fn waiting(&self) -> usize {
        self.line.len()
    }

    /// Waits until the model is ready or has failed (tests, and tools that want to warm up first).
    pub async fn ready(&self) -> Result<Arc<LoadedModel>, String> {
        let mut status = self.status.clone();
        loop {
            match status.borrow_and_update().clone() {
                LocalStatus::Ready(model) => return Ok(model),
                LocalStatus::Failed(message) => return Err(message),
                _ => {}
            }
            if status.changed().await.is_err() {
                return Err("the local model's loader stopped".to_owned());
            }
        }
    }
}

impl InProcessModel for LocalModel {
    fn entry(&self) -> Option<ModelEntry> {
        let status = self.status.borrow();
        if matches!(*status, LocalStatus::Failed(_)) {
            return None;
        }
        let about = "Runs on this server's CPU: fine for trying the app, too small for real work";
        let description = match status.describe() {
            Some(doing) => format!("{about} ({doing})"),
            None => about.to_owned(),
        };
        Some(ModelEntry {
            id: self.spec.id.to_owned(),
            display_name: self.spec.display_name.to_owned(),
            description: Some(description),
            protocol: Protocol::Local,
            task: None,
            // One answer at a time on this machine's CPU: a title would delay the answer.
            writes_titles: false,
        })
    }

    fn unavailable_reason(&self) -> Option<String> {
        match &*self.status.borrow() {
            LocalStatus::Failed(message) => Some(message.clone()),
            _ => None,
        }
    }
}

impl ChatModel for LocalModel {
    fn stream(&self, request: ModelRequest) -> ModelStream {
        let mut status = self.status.clone();
        let slots = self.slots.clone();
        let line = self.line.clone();
        let queue_limit = self.settings.queue_limit;
        let context = self.settings.context;
        let sessions = self.sessions.clone();
        Box::pin(async_stream::stream! {
            // 1. The model must be ready.
            let mut reported = None;
            let loaded = loop {
                let current = status.borrow_and_update().clone();
                match current {
                    LocalStatus::Ready(loaded) => break loaded,
                    LocalStatus::Failed(message) => {
                        yield Err(ModelError::Unavailable(message));
                        return;
                    }
                    waiting => {
                        let progress = waiting.progress();
                        if reported != Some(progress) {
                            reported = Some(progress);
                            yield Ok(ModelEvent::Loading { progress });
                        }
                    }
                }
                if status.changed().await.is_err() {
                    yield Err(ModelError::Unavailable("the local model's loader stopped".to_owned()));
                    return;
                }
            };
            // 2. A generation slot, first come first served.
            if slots.available_permits() == 0 && line.len() >= queue_limit {
                yield Err(ModelError::RateLimited { retry_after: None });
                return;
            }
            let ticket = line.join();
            let mut changes = line.changes.subscribe();
            let mut reported_position = None;
            let permit = loop {
                let position = line.position(ticket.0);
                if position == 0
                    && let Ok(permit) = slots.clone().try_acquire_owned()
                {
                    break permit;
                }
                // Say how many answers must end before this one starts, whenever that changes.
                let ahead = position as u32 + 1;
                if reported_position != Some(ahead) {
                    reported_position = Some(ahead);
                    yield Ok(ModelEvent::Queued { position: ahead });
                }
                if changes.changed().await.is_err() {
                    return;
                }
            };
            drop(ticket);
            if reported_position.is_some() || reported.is_some() {
                yield Ok(ModelEvent::Running);
            }
            // 3. Generate on the blocking pool; text comes back through a channel.
            let (settings, prompt_budget) = generation_settings(context, &request, &loaded);
            let messages: Vec<ChatMessage> =
                request.messages.iter().map(|m| ChatMessage::new(role(m.role), m.text_content())).collect();
            let (tx, mut rx) = mpsc::channel::<Result<ModelEvent, ModelError>>(64);
            let cancel = Arc::new(AtomicBool::new(false));
            let _cancel_on_drop = CancelOnDrop(cancel.clone());
            let line_for_release = line.clone();
            tokio::task::spawn_blocking(move || {
                let _slot = SlotRelease { permit: Some(permit), line: line_for_release };
                generate(&loaded, &sessions, &messages, prompt_budget, &settings, &cancel, &tx);
            });
            while let Some(event) = rx.recv().await {
                let failed = event.is_err();
                yield event;
                if failed {
                    return;
                }
            }
        })
    }
}

/// Sampling settings for a request, and the tokens left for the prompt.
///
/// The answer gets what it asked for (`LLM_MAX_TOKENS`), up to half the window, else a quarter of it (this
/// model's answers are short, and the conversation is worth more room); the prompt gets the rest.
fn generation_settings(context: usize, request: &ModelRequest, loaded: &LoadedModel) -> (GenerationSettings, usize) {
    let context = context.min(loaded.context_length());
    let defaults = GenerationSettings::default();
    let max_tokens = request.max_tokens.map_or(context / 4, |n| n as usize).clamp(1, context / 2);
    let settings = GenerationSettings {
        max_tokens,
        temperature: request.temperature.map_or(defaults.temperature, f64::from),
        seed: random_seed(),
        ..defaults
    };
    (settings, context - max_tokens)
}

/// Runs one generation, sending text, usage and the finish reason (or an error) to `tx`.
fn generate(
    loaded: &LoadedModel,
    sessions: &Sessions,
    messages: &[ChatMessage],
    prompt_budget: usize,
    settings: &GenerationSettings,
    cancel: &AtomicBool,
    tx: &mpsc::Sender<Result<ModelEvent, ModelError>>,
) {
    let prompt = match loaded.prompt(messages, prompt_budget) {
        Ok(prompt) => prompt,
        Err(error) => {
            let _ = tx.blocking_send(Err(ModelError::Unavailable(error.to_string())));
            return;
        }
    };
    let session = sessions.take_continued_by(&prompt);
    let result = loaded.continue_session(session, &prompt, settings, cancel, |text| {
        tx.blocking_send(Ok(ModelEvent::text(text))).is_ok()
    });
    match result {
        Ok((stats, session)) => {
            sessions.keep(session);
            tracing::debug!(
                prompt_tokens = stats.prompt_tokens,
                reused_tokens = stats.reused_tokens,
                completion_tokens = stats.completion_tokens,
                prompt_ms = stats.prompt_time.as_millis() as u64,
                tokens_per_second = format!("{:.1}", stats.tokens_per_second()),
                finish = stats.finish.as_str(),
                "local generation"
            );
            let usage = Usage {
                input_tokens: Some(stats.prompt_tokens as i64),
                output_tokens: Some(stats.completion_tokens as i64),
            };
            let _ = tx.blocking_send(Ok(ModelEvent::Usage(usage)));
            let _ = tx.blocking_send(Ok(ModelEvent::Finished(Some(stats.finish.as_str().to_owned()))));
        }
        Err(error) => {
            tracing::warn!(error = %error, "local generation failed");
            let _ = tx.blocking_send(Err(ModelError::Unavailable(error.to_string())));
        }
    }
}

fn role(role: PromptRole) -> ChatRole {
    match role {
        PromptRole::System => ChatRole::System,
        PromptRole::User => ChatRole::User,
        PromptRole::Assistant => ChatRole::Assistant,
    }
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// Sets the generation's cancel flag when the stream is dropped (stop, shutdown, or the turn failing).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Frees a generation slot when the generation has really stopped, and wakes the waiting line.
struct SlotRelease {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    line: Arc<WaitingLine>,
}

impl Drop for SlotRelease {
    fn drop(&mut self) {
        // Release first, then wake: a waiter woken before the release would find no slot and sleep on.
        drop(self.permit.take());
        self.line.changed();
    }
}

/// The attention caches of the latest generations, newest last.
struct Sessions {
    kept: Mutex<VecDeque<Session>>,
    capacity: usize,
}

impl Sessions {
    fn new(capacity: usize) -> Self {
        Self { kept: Mutex::new(VecDeque::new()), capacity }
    }

    /// Takes the session that `prompt` continues furthest, if any.
    fn take_continued_by(&self, prompt: &[u32]) -> Option<Session> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let best = kept
            .iter()
            .enumerate()
            .filter(|(_, session)| session.continues(prompt))
            .max_by_key(|(_, session)| session.ids().len())
            .map(|(index, _)| index)?;
        kept.remove(best)
    }

    /// Keeps a session, dropping the oldest beyond capacity.
    fn keep(&self, session: Session) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.push_back(session);
        while kept.len() > self.capacity {
            kept.pop_front();
        }
    }
}

/// Turns waiting for a slot, in arrival order.
#[derive(Default)]
struct WaitingLine {
    state: Mutex<LineState>,
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct LineState {
    next: u64,
    waiting: VecDeque<u64>,
}

/// A place in the line, given up when dropped.
struct Ticket(u64, Arc<WaitingLine>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.1.leave(self.0);
    }
}

impl WaitingLine {
    fn join(self: &Arc<Self>) -> Ticket {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = state.next;
        state.next += 1;
        state.waiting.push_back(ticket);
        Ticket(ticket, self.clone())
    }

    fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).waiting.len()
    }

    fn position(&self, ticket: u64) -> usize {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.waiting.iter().position(|t| *t == ticket).unwrap_or(0)
    }

    fn leave(&self, ticket: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.waiting.retain(|t| *t != ticket);
        drop(state);
        self.changed();
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}

/// Finds, fetches, prepares and loads the weights; reports each phase.
async fn get_ready(
    spec: &ModelSpec,
    settings: &LocalModelConfig,
    http: &reqwest::Client,
    status: &watch::Sender<LocalStatus>,
) -> Result<(LoadedModel, PathBuf), String> {
    let cache_dir = local_model::fetch::default_cache_dir();
    let source = settings.path.clone().unwrap_or_else(|| cache_dir.join(spec.file_name));
    if !source.exists() {
        let url = settings.url.as_deref().unwrap_or(spec.url);
        tracing::info!(url, path = %source.display(), "downloading the local model (about 100 MB, once)");
        let _ = status.send(LocalStatus::Downloading { received: 0, total: None });
        let progress = |received: u64, total: Option<u64>| {
            let _ = status.send(LocalStatus::Downloading { received, total });
        };
        local_model::fetch::fetch(http, spec, url, &source, &progress).await.map_err(|e| e.to_string())?;
    }
    let _ = status.send(LocalStatus::Preparing);
    let to_load = prepared(&source, &cache_dir).await?;
    let _ = status.send(LocalStatus::Loading);
    let path = to_load.clone();
    let loaded = tokio::task::spawn_blocking(move || LoadedModel::load(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok((loaded, to_load))
}

/// The file to load: the prepared copy (made now if missing; next to the source, else in the cache directory),
/// or the source itself if it needs no preparation or no copy can be written.
async fn prepared(source: &Path, cache_dir: &Path) -> Result<PathBuf, String> {
    let source = source.to_owned();
    let cache_dir = cache_dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let next_to_source = source.parent().map_or_else(|| cache_dir.clone(), Path::to_owned);
        let mut last_error = None;
        for dir in [next_to_source, cache_dir] {
            let dest = match local_model::prepare::plan(&source, &dir).map_err(|e| e.to_string())? {
                Plan::AsIs => return Ok(source),
                Plan::Prepared(dest) => dest,
            };
            if dest.exists() {
                return Ok(dest);
            }
            let started = Instant::now();
            match local_model::prepare::prepare(&source, &dest) {
                Ok(()) => {
                    tracing::info!(path = %dest.display(), secs = format!("{:.1}", started.elapsed().as_secs_f64()), "prepared the local model for fast generation (once)");
                    return Ok(dest);
                }
                Err(error) => last_error = Some(error),
            }
        }
        tracing::warn!(error = ?last_error.map(|e| e.to_string()), "cannot write the prepared local model; using the original file (slower)");
        Ok(source)
    })
    .await
    .map_err(|e| e.to_string())?
}
