//! The turn engine: runs each turn (a user message and its answer) as its own task, detached from the HTTP request
//! that started it.
//!
//! A turn is stored before the model is called (user message + an answer with status `streaming`, in one
//! transaction; [`start`]). It then runs as a loop of steps ([`turn`]): a model call ([`step`]), and, when the
//! model asks for tools, their calls ([`crate::tools`]) before the next call. Its events go to an in-memory
//! [`log::TurnLog`] that local subscribers read, and are checkpointed to PostgreSQL at least once a second and at
//! every step boundary, so any process can replay them (resume after a refresh, a proxy cut, or on another
//! replica; [`follow`]). Every exit writes a terminal status ([`finish`]): `complete`, `stopped`, `error`, or —
//! when the process dies — `interrupted`, set by whichever process notices first (see [`background`]).

mod approval;
mod background;
mod checkpoint;
pub mod context;
mod finish;
mod follow;
pub mod history;
mod limits;
mod live;
pub mod log;
mod reattach;
mod start;
mod step;
pub mod title;
mod turn;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::Stream;
use shared::{GenerationView, MessageStatus, StopResponse, UiChunk};
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::{Config, EngineConfig};
use crate::db::{PasswordRefusals, answers, chats, thread};
use crate::error::ApiError;
use crate::llm::{ChatModel, ModelCatalog, ModelDirectory, ModelEntry};
use crate::tools::{NoTools, ToolContext, ToolRunner};

pub use approval::ApprovalDecision;
use limits::TurnLimits;
pub use live::{CancelReason, LiveTurn};
use log::TurnLog;
pub use start::TurnInput;

/// A stream of `(sequence number, chunk)` that ends after the turn's `finish` chunk.
pub type ChunkStream = Pin<Box<dyn Stream<Item = (u64, UiChunk)> + Send>>;

/// How prompts are built and sampled.
#[derive(Clone, Debug)]
pub struct PromptSettings {
    /// System prompt.
    pub system_prompt: Option<String>,
    /// Temperature.
    pub temperature: Option<f32>,
    /// Output token limit.
    pub max_tokens: Option<u32>,
    /// History budget in tokens (a cap over every model's window).
    pub history_token_budget: usize,
    /// Configured context windows by model.
    pub context_tokens: std::collections::BTreeMap<String, usize>,
    /// The local model's window.
    pub local_context: usize,
    /// Model that writes summaries of long chats; the chat's own when unset.
    pub summary_model: Option<String>,
    /// Generate titles for new chats.
    pub title_generation: bool,
    /// Model for titles.
    pub title_model: Option<String>,
}

impl PromptSettings {
    /// From the model configuration.
    pub fn from_config(config: &Config) -> Self {
        let models = &config.models;
        Self {
            system_prompt: models.system_prompt.clone(),
            temperature: models.temperature,
            max_tokens: models.max_tokens,
            history_token_budget: models.history_token_budget,
            context_tokens: models.context_tokens.clone(),
            local_context: models.local.context,
            summary_model: models.summary_model.clone(),
            title_generation: models.title_generation,
            title_model: models.title_model.clone(),
        }
    }
}

impl PromptSettings {
    /// A model's context window: configured (`MODEL_CONTEXT_TOKENS`), else the local model's own, else the default.
    pub fn window_tokens(&self, model: &ModelEntry) -> usize {
        match self.context_tokens.get(&model.id) {
            Some(tokens) => *tokens,
            None if model.protocol == crate::llm::Protocol::Local => self.local_context,
            None => crate::config::DEFAULT_CONTEXT_TOKENS,
        }
    }

    /// A model's window with the room its answers need.
    pub fn window(&self, model: &ModelEntry) -> context::Window {
        context::Window::new(self.window_tokens(model), self.max_tokens, self.history_token_budget)
    }
}

/// The turn engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    /// Where failed writes note a refused database password.
    refusals: PasswordRefusals,
    config: EngineConfig,
    prompt: PromptSettings,
    models: Arc<ModelDirectory>,
    model: Option<Arc<dyn ChatModel>>,
    /// Tools the models may call.
    tools: Arc<dyn ToolRunner>,
    /// How far a turn may go with them.
    tool_limits: turn::ToolLimits,
    worker_id: i64,
    live: Mutex<HashMap<Uuid, Arc<LiveTurn>>>,
    /// Turns each user may start per minute and answers they may have streaming at once (in every process).
    turn_limits: TurnLimits,
    /// Generations whose events were just stored (by any process), from PostgreSQL notifications.
    flushed: broadcast::Sender<Uuid>,
    /// Generations this process just checkpointed, to announce to other processes.
    to_announce: mpsc::UnboundedSender<Uuid>,
    accepting: AtomicBool,
    /// Running turns (what a shutdown drains).
    tasks: TaskTracker,
    /// Stops background loops and ends followers of other processes' answers at shutdown.
    closing: CancellationToken,
    background: background::Handles,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Engine {
    /// Starts the engine: takes this process's worker lock, recovers turns of dead processes, and starts the
    /// background tasks (checkpoint announcements, notifications, recovery sweeps, retention). `closing` is
    /// cancelled when the engine shuts down (background tasks of the tools end with it).
    pub async fn start(
        db: PgPool,
        refusals: PasswordRefusals,
        config: &Config,
        models: Arc<ModelDirectory>,
        model: Option<Arc<dyn ChatModel>>,
        tools: Arc<dyn ToolRunner>,
        closing: CancellationToken,
    ) -> anyhow::Result<Self> {
        let worker_id = background::new_worker_id();
        let (to_announce, announce_rx) = mpsc::unbounded_channel();
        let background = background::Handles::default();
        let inner = Arc::new(Inner {
            db,
            refusals,
            config: config.engine.clone(),
            prompt: PromptSettings::from_config(config),
            models,
            model,
            tools,
            tool_limits: turn::ToolLimits {
                max_steps: config.tools.max_steps,
                approval_timeout: config.tools.approval_timeout,
            },
            worker_id,
            live: Mutex::new(HashMap::new()),
            turn_limits: TurnLimits::new(config.engine.turns_per_minute, config.engine.max_concurrent_turns_per_user),
            flushed: broadcast::channel(4096).0,
            to_announce,
            accepting: AtomicBool::new(true),
            tasks: TaskTracker::new(),
            closing,
            background,
        });
        background::start(&inner, announce_rx).await?;
        Ok(Self { inner })
    }

    /// An engine with no model and no background tasks: it serves reads (stored answers) but starts no
    /// turns. For tools and tests that run the read routes without a reachable database.
    pub fn detached(db: PgPool, config: &Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                refusals: PasswordRefusals::default(),
                config: config.engine.clone(),
                prompt: PromptSettings::from_config(config),
                models: Arc::new(ModelDirectory::fixed(ModelCatalog::default())),
                model: None,
                tools: Arc::new(NoTools),
                tool_limits: turn::ToolLimits::default(),
                worker_id: background::new_worker_id(),
                live: Mutex::new(HashMap::new()),
                turn_limits: TurnLimits::new(
                    config.engine.turns_per_minute,
                    config.engine.max_concurrent_turns_per_user,
                ),
                flushed: broadcast::channel(16).0,
                to_announce: mpsc::unbounded_channel().0,
                accepting: AtomicBool::new(false),
                tasks: TaskTracker::new(),
                closing: CancellationToken::new(),
                background: background::Handles::default(),
            }),
        }
    }

    /// The tools offered with a request to this model: this server's tools go to chat-completion models only (an
    /// agent brings its own tools; the local model has none).
    pub(crate) fn tools_for(&self, model: &ModelEntry, context: &ToolContext) -> Vec<crate::llm::ToolDefinition> {
        if model.offers_tools() { self.inner.tools.definitions(context) } else { Vec::new() }
    }

    /// The sources of tools and whether each works now.
    pub fn tool_sources(&self) -> Vec<shared::ToolSourceInfo> {
        self.inner.tools.sources()
    }

    /// A chat's choice of tool sources, checked: each a source this server has (one that is down counts: it may
    /// come back), each once, in the server's order.
    pub fn check_tool_sources(&self, names: Vec<String>) -> Result<Vec<String>, ApiError> {
        let known: Vec<String> = self.inner.tools.sources().into_iter().map(|source| source.name).collect();
        if let Some(unknown) = names.iter().find(|name| !known.contains(name)) {
            let offered = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            let unknown: String = unknown.chars().take(64).collect();
            return Err(ApiError::bad_request(format!(
                "`{unknown}` is not a source of tools here; the sources are: {offered}"
            )));
        }
        Ok(known.into_iter().filter(|name| names.contains(name)).collect())
    }

    /// The models users may pick.
    pub async fn catalog(&self) -> Arc<ModelCatalog> {
        self.inner.models.catalog().await
    }

    /// How prompts are built (the models' context windows among it).
    pub fn prompt_settings(&self) -> &PromptSettings {
        &self.inner.prompt
    }

    /// What to tell users when no model is offered.
    pub fn models_hint(&self) -> String {
        self.inner.models.hint()
    }

    /// The model for a turn: the requested one (which must be offered), else the chat's, else the default.
    pub fn resolve_model(
        &self,
        catalog: &ModelCatalog,
        requested: Option<&str>,
        chat_model: Option<&str>,
    ) -> Result<ModelEntry, ApiError> {
        if self.inner.model.is_none() || catalog.is_empty() {
            return Err(ApiError::NoModel(self.models_hint()));
        }
        if let Some(requested) = requested {
            return catalog.get(requested).cloned().ok_or_else(|| {
                let offered: Vec<&str> = catalog.entries().iter().map(|e| e.id.as_str()).collect();
                ApiError::bad_request(format!("unknown model `{requested}`; offered: {}", offered.join(", ")))
            });
        }
        let chosen = chat_model.and_then(|m| catalog.get(m)).or_else(|| catalog.default_model());
        chosen.cloned().ok_or_else(|| ApiError::NoModel(self.models_hint()))
    }

    /// The answer streaming in a chat of this owner (404 if the chat is not theirs).
    pub async fn running_in_chat(&self, owner_id: &str, chat_id: Uuid) -> Result<Option<Uuid>, ApiError> {
        chats::fetch_chat(&self.inner.db, owner_id, chat_id).await?.ok_or(ApiError::NotFound("chat"))?;
        Ok(answers::running_answer(&self.inner.db, chat_id).await?)
    }

    /// The latest answer of a chat: (id, streaming).
    pub async fn latest_in_chat(&self, chat_id: Uuid) -> Result<Option<(Uuid, bool)>, ApiError> {
        Ok(thread::latest_answer(&self.inner.db, chat_id).await?)
    }

    /// Events of an answer after `after` (0: from the start), then live ones until it finishes — from this
    /// process's memory when it runs here, else from the stored log.
    pub async fn follow(&self, answer_id: Uuid, after: u64) -> Result<ChunkStream, ApiError> {
        if let Some(turn) = self.live_turn(answer_id)
            // A continued answer holds only its new events in memory; the earlier ones are read from storage.
            && after >= turn.read(TurnLog::base)
        {
            return Ok(Box::pin(turn.subscribe(after)));
        }
        follow::stored(&self.inner, answer_id, after).await
    }

    /// Stops the chat's streaming answer and waits (up to 5 s) until its partial answer is stored.
    pub async fn stop(&self, owner_id: &str, chat_id: Uuid) -> Result<StopResponse, ApiError> {
        let Some(answer_id) = self.running_in_chat(owner_id, chat_id).await? else {
            return Ok(StopResponse { generation_id: None, status: None });
        };
        let wait = Duration::from_secs(5);
        if let Some(turn) = self.live_turn(answer_id) {
            turn.cancel(CancelReason::Stopped);
            let _ = tokio::time::timeout(wait, turn.wait_stored()).await;
        } else if answers::request_cancel(&self.inner.db, answer_id).await? {
            background::announce_cancel(&self.inner.db, answer_id).await;
            let deadline = tokio::time::Instant::now() + wait;
            while tokio::time::Instant::now() < deadline {
                match answers::answer_state(&self.inner.db, answer_id).await? {
                    Some(state) if state.running => tokio::time::sleep(Duration::from_millis(50)).await,
                    _ => break,
                }
            }
        }
        let row = thread::answer(&self.inner.db, owner_id, answer_id).await?;
        Ok(StopResponse { generation_id: Some(answer_id), status: row.and_then(|r| MessageStatus::parse(&r.status)) })
    }

    /// An answer of this owner as `GET /api/generations/{id}` shows it; live text when it runs in this process.
    pub async fn generation_view(&self, owner_id: &str, answer_id: Uuid) -> Result<GenerationView, ApiError> {
        let row = thread::answer(&self.inner.db, owner_id, answer_id).await?.ok_or(ApiError::NotFound("generation"))?;
        let (status, usage) = (row.status(), row.usage());
        let mut parts = row.parts.0;
        if status == MessageStatus::Streaming
            && let Some(turn) = self.live_turn(answer_id)
        {
            parts = turn.read(|log| log.parts());
        }
        Ok(GenerationView {
            id: row.message_id,
            chat_id: row.chat_id,
            status,
            text: shared::text_of(&parts),
            parts,
            model: row.model,
            usage,
            error: row.error,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// Number of turns running in this process.
    pub fn live_count(&self) -> usize {
        lock(&self.inner.live).len()
    }

    fn live_turn(&self, answer_id: Uuid) -> Option<Arc<LiveTurn>> {
        lock(&self.inner.live).get(&answer_id).cloned()
    }

    /// Stops accepting turns, lets running ones finish within the drain deadline, stores the rest as
    /// interrupted, and stops the background tasks.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.accepting.store(false, Ordering::SeqCst);
        inner.tasks.close();
        let running = self.live_count();
        if running > 0 {
            tracing::info!(
                turns = running,
                drain_secs = inner.config.shutdown_drain.as_secs(),
                "waiting for running turns to finish"
            );
        }
        if tokio::time::timeout(inner.config.shutdown_drain, inner.tasks.wait()).await.is_err() {
            let turns: Vec<Arc<LiveTurn>> = lock(&inner.live).values().cloned().collect();
            tracing::warn!(turns = turns.len(), "drain deadline reached; storing running turns as interrupted");
            for turn in turns {
                turn.cancel(CancelReason::ShuttingDown);
            }
            let _ = tokio::time::timeout(Duration::from_secs(4), inner.tasks.wait()).await;
        }
        inner.closing.cancel();
        inner.background.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every running turn holds its task's future for as long as it streams: what happens rarely (a step boundary,
    /// the end) must not be part of it. Holding them made the task 2,288 bytes and every turn 2.5 KiB bigger.
    #[tokio::test]
    async fn a_running_turns_task_holds_only_what_streaming_needs() {
        let db = sqlx::postgres::PgPoolOptions::new().connect_lazy("postgres://x@127.0.0.1/x").expect("lazy pool");
        let config = Config::from_map(&crate::config::EnvMap::default()).expect("configuration");
        let engine = Engine::detached(db, &config);
        let turn = LiveTurn::new(Uuid::nil(), Uuid::nil());
        let model: Arc<dyn ChatModel> = Arc::new(crate::llm::routing::ModelRouter::new());
        let request = crate::llm::ModelRequest {
            model: "m".into(),
            protocol: crate::llm::Protocol::ChatCompletions,
            messages: Vec::new(),
            tools: Vec::new(),
            temperature: None,
            max_tokens: None,
            user_token: None,
            context: None,
            resume: None,
        };
        let context = crate::tools::ToolContext::new("a", Uuid::nil());
        let running = turn::run(engine.inner.clone(), turn, model, Box::new(request), context);
        let size = std::mem::size_of_val(&running);
        assert!(size <= 1600, "a turn's task is {size} bytes");
        assert!(std::mem::size_of::<UiChunk>() <= 96, "a chunk is moved several times per token");
    }
}
