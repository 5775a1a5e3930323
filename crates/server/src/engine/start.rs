//! Starting a turn: one transaction stores the user message, the streaming assistant message and the
//! generation, after checking ownership, idempotency and that no other turn runs in the chat.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use shared::{MessagePart, MessageStatus, Role, StreamMetadata, TurnState, UiChunk};
use uuid::Uuid;

use super::history::build_prompt;
use super::live::LiveTurn;
use super::title::derive_title;
use super::{Engine, lock, producer};
use crate::db::chats;
use crate::db::generations::{self, NewTurn};
use crate::error::ApiError;
use crate::limits::TurnSlot;
use crate::llm::ModelRequest;
use secrecy::SecretString;

/// How many stored messages at most are read to build the prompt.
const HISTORY_ROWS: i64 = 500;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct TurnInput {
    /// The new message; `None` to regenerate the answer to the last user message.
    pub text: Option<String>,
    /// The client's id for the message, making retries idempotent.
    pub client_id: Option<String>,
    /// The model the client asked for; the chat's (or the default) when `None`. Must be offered.
    pub model: Option<String>,
    /// The signed-in user's own token for the model calls (`MODEL_AUTH=user`); `None`: the app's identity.
    pub user_token: Option<SecretString>,
}

/// A started (or, for an idempotent retry, already existing) turn.
#[derive(Debug, Clone)]
pub struct StartedTurn {
    /// Generation (= assistant message) id.
    pub generation_id: Uuid,
    /// The stored user message.
    pub user_message_id: Uuid,
    /// Chat id.
    pub chat_id: Uuid,
    /// Whether this request started it (false: a retry of an earlier request).
    pub is_new: bool,
}

struct Stored {
    generation_id: Uuid,
    user_message_id: Uuid,
    user_text: String,
    model: String,
    assistant_seq: i64,
    created_at: DateTime<Utc>,
    title: String,
    chat_is_new: bool,
    history: Vec<(Role, Vec<MessagePart>)>,
    /// The user's place among their running answers, held until the answer ends.
    slot: TurnSlot,
}

enum Begun {
    New(Box<Stored>),
    Existing { generation_id: Uuid, user_message_id: Uuid },
}

impl Engine {
    /// Stores the turn and starts answering it in the background.
    ///
    /// The work runs as a task of its own, so the request cannot cancel it halfway: a client that disconnects
    /// drops the request's future, and a turn whose transaction had committed would otherwise be left
    /// `streaming` with nothing running it (and its chat refusing new messages until the process restarts).
    pub async fn start_turn(&self, owner_id: &str, chat_id: Uuid, input: TurnInput) -> Result<StartedTurn, ApiError> {
        let engine = self.clone();
        let owner_id = owner_id.to_owned();
        let starting = self.inner.tasks.spawn(async move { engine.store_and_run(&owner_id, chat_id, input).await });
        starting.await.map_err(|error| ApiError::Internal(anyhow::Error::new(error).context("starting a turn")))?
    }

    async fn store_and_run(&self, owner_id: &str, chat_id: Uuid, input: TurnInput) -> Result<StartedTurn, ApiError> {
        let inner = &self.inner;
        if !inner.accepting.load(Ordering::SeqCst) {
            return Err(ApiError::ShuttingDown);
        }
        let Some(model) = inner.model.clone() else { return Err(ApiError::NoModel(inner.models.hint())) };
        let stored = match self.begin(owner_id, chat_id, &input).await? {
            Begun::Existing { generation_id, user_message_id } => {
                return Ok(StartedTurn { generation_id, user_message_id, chat_id, is_new: false });
            }
            Begun::New(stored) => stored,
        };
        let turn = LiveTurn::new(stored.generation_id, chat_id);
        turn.update(|log| {
            log.push_control(UiChunk::Start {
                message_id: Some(stored.generation_id.to_string()),
                message_metadata: Some(StreamMetadata {
                    status: Some(MessageStatus::Streaming),
                    model: Some(stored.model.clone()),
                    created_at: Some(stored.created_at),
                    chat_id: Some(chat_id),
                    seq: Some(stored.assistant_seq),
                    ..StreamMetadata::default()
                }),
            });
            log.push_control(UiChunk::chat(chat_id, stored.title.clone()));
            log.push_control(UiChunk::status(TurnState::Running));
            log.push_control(UiChunk::StartStep);
        });
        lock(&inner.live).insert(stored.generation_id, turn.clone());
        let request = ModelRequest {
            model: stored.model.clone(),
            messages: build_prompt(
                inner.prompt.system_prompt.as_deref(),
                &stored.history,
                inner.prompt.history_token_budget,
            ),
            temperature: inner.prompt.temperature,
            max_tokens: inner.prompt.max_tokens,
            user_token: input.user_token.clone(),
        };
        tracing::info!(chat.id = %chat_id, generation.id = %stored.generation_id, model = %stored.model, "turn started");
        let producer = producer::run(self.inner.clone(), turn.clone(), model.clone(), request);
        let slot = stored.slot;
        inner.tasks.spawn(async move {
            producer.await;
            drop(slot);
        });
        let title_model = inner.prompt.title_model.clone().unwrap_or_else(|| stored.model.clone());
        if stored.chat_is_new && inner.prompt.title_generation && model.writes_titles(&title_model) {
            let retitle = producer::retitle(
                self.inner.clone(),
                turn,
                model,
                title_model,
                stored.title,
                stored.user_text,
                input.user_token,
            );
            // Not one of the tasks a shutdown drains: a title is a nicety, and a slow title model must not hold
            // a restart for the drain deadline. It ends with the engine.
            let closing = inner.closing.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = closing.cancelled() => {}
                    () = retitle => {}
                }
            });
        }
        Ok(StartedTurn {
            generation_id: stored.generation_id,
            user_message_id: stored.user_message_id,
            chat_id,
            is_new: true,
        })
    }

    async fn begin(&self, owner_id: &str, chat_id: Uuid, input: &TurnInput) -> Result<Begun, ApiError> {
        let inner = &self.inner;
        let catalog = inner.models.catalog().await;
        let requested = input.model.as_deref().map(|m| self.resolve_model(&catalog, Some(m), None)).transpose()?;
        let mut tx = inner.db.begin().await?;
        let derived =
            input.text.as_deref().map(derive_title).unwrap_or_else(|| crate::routes::chats::DEFAULT_TITLE.to_owned());
        let initial_model = match &requested {
            Some(model) => model.clone(),
            None => self.resolve_model(&catalog, None, None)?,
        };
        let created = chats::insert_chat(&mut *tx, chat_id, owner_id, &derived, Some(&initial_model), None).await?;
        let chat = generations::lock_chat(&mut tx, chat_id)
            .await?
            .filter(|c| c.owner_id == owner_id)
            .ok_or(ApiError::NotFound("chat"))?;

        if let Some(client_id) = &input.client_id
            && let Some(existing) = generations::find_client_message(&mut tx, chat_id, client_id).await?
        {
            tx.rollback().await?;
            return match existing.answer_id {
                Some(generation_id) => Ok(Begun::Existing { generation_id, user_message_id: existing.message_id }),
                None => Err(ApiError::Conflict("this message was already sent and its answer was deleted".into())),
            };
        }
        if let Some(running) = generations::running_generation(&mut *tx, chat_id).await? {
            return Err(ApiError::GenerationInProgress(running));
        }
        // Limits apply to turns that would really start (not to retries or conflicts); failing here rolls back.
        // The slot first: a turn refused for lack of one does not use up the user's rate allowance.
        let slot = inner.turn_slots.acquire(owner_id)?;
        inner.turn_rate.check(owner_id)?;
        let model = match requested {
            Some(model) => model,
            None => self.resolve_model(&catalog, None, chat.model.as_deref())?,
        };

        let generation_id = Uuid::now_v7();
        let (user_message_id, user_text, parts) = match &input.text {
            Some(text) => (Uuid::now_v7(), text.clone(), vec![MessagePart::Text { text: text.clone() }]),
            None => {
                let (user_message_id, user_seq) = generations::last_user_message(&mut tx, chat_id)
                    .await?
                    .ok_or_else(|| ApiError::bad_request("there is no message to answer again in this chat"))?;
                generations::delete_messages_after(&mut tx, chat_id, user_seq).await?;
                (user_message_id, String::new(), Vec::new())
            }
        };
        let (assistant_seq, created_at) = generations::insert_turn(
            &mut tx,
            NewTurn {
                chat_id,
                user: input.text.as_ref().map(|_| (user_message_id, parts.as_slice(), input.client_id.as_deref())),
                answer_id: generation_id,
                model: &model,
                worker_id: inner.worker_id,
            },
        )
        .await
        .map_err(|error| match &error {
            // The chat lock makes this unreachable; kept so a violation can never surface as a 500.
            sqlx::Error::Database(db) if db.constraint() == Some(generations::ONE_STREAMING_PER_CHAT) => {
                ApiError::Conflict("a reply is already being generated in this chat".into())
            }
            _ => ApiError::from(error),
        })?;
        // A chat created by this turn has no history but the message itself.
        let history = if created.is_some() {
            vec![(Role::User, parts)]
        } else {
            generations::history(&mut *tx, chat_id, assistant_seq, HISTORY_ROWS)
                .await?
                .into_iter()
                .filter_map(|row| Role::parse(&row.role).map(|role| (role, row.parts.0)))
                .collect()
        };
        tx.commit().await?;
        Ok(Begun::New(Box::new(Stored {
            generation_id,
            user_message_id,
            user_text,
            model,
            assistant_seq,
            created_at,
            title: chat.title,
            chat_is_new: created.is_some(),
            history,
            slot,
        })))
    }
}
