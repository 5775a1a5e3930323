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
use crate::db::generations::{self, NewMessage};
use crate::error::ApiError;
use crate::llm::ModelRequest;

/// How many stored messages at most are read to build the prompt.
const HISTORY_ROWS: i64 = 500;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct TurnInput {
    /// The new message; `None` to regenerate the answer to the last user message.
    pub text: Option<String>,
    /// The client's id for the message, making retries idempotent.
    pub client_id: Option<String>,
    /// The model to answer with (already resolved against the catalog).
    pub model: String,
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
    assistant_seq: i64,
    created_at: DateTime<Utc>,
    title: String,
    chat_is_new: bool,
    history: Vec<(Role, Vec<MessagePart>)>,
}

enum Begun {
    New(Box<Stored>),
    Existing { generation_id: Uuid, user_message_id: Uuid },
}

impl Engine {
    /// Stores the turn and starts answering it in the background.
    pub async fn start_turn(&self, owner_id: &str, chat_id: Uuid, input: TurnInput) -> Result<StartedTurn, ApiError> {
        let inner = &self.inner;
        if !inner.accepting.load(Ordering::SeqCst) {
            return Err(ApiError::ShuttingDown);
        }
        let Some(model) = inner.model.clone() else { return Err(ApiError::NoModel) };
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
                    model: Some(input.model.clone()),
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
            model: input.model.clone(),
            messages: build_prompt(
                inner.prompt.system_prompt.as_deref(),
                &stored.history,
                inner.prompt.history_token_budget,
            ),
            temperature: inner.prompt.temperature,
            max_tokens: inner.prompt.max_tokens,
        };
        tracing::info!(chat.id = %chat_id, generation.id = %stored.generation_id, model = %input.model, "turn started");
        inner.tasks.spawn(producer::run(self.inner.clone(), turn.clone(), model.clone(), request));
        if stored.chat_is_new && inner.prompt.title_generation {
            let title_model = inner.prompt.title_model.clone().unwrap_or_else(|| input.model.clone());
            inner.tasks.spawn(producer::retitle(
                self.inner.clone(),
                turn,
                model,
                title_model,
                stored.title,
                stored.user_text,
            ));
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
        let mut tx = inner.db.begin().await?;
        let derived =
            input.text.as_deref().map(derive_title).unwrap_or_else(|| crate::routes::chats::DEFAULT_TITLE.to_owned());
        let created = chats::insert_chat(&mut *tx, chat_id, owner_id, &derived, Some(&input.model), None).await?;
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

        let generation_id = Uuid::now_v7();
        let (user_message_id, user_text, assistant_seq) = match &input.text {
            Some(text) => {
                let last = generations::reserve_seqs(&mut tx, chat_id, 2, &input.model).await?;
                let user_message_id = Uuid::now_v7();
                let parts = [MessagePart::Text { text: text.clone() }];
                generations::insert_message(
                    &mut tx,
                    NewMessage {
                        message_id: user_message_id,
                        chat_id,
                        seq: last - 1,
                        role: "user",
                        parts: &parts,
                        status: MessageStatus::Complete,
                        model: None,
                        client_id: input.client_id.as_deref(),
                    },
                )
                .await?;
                (user_message_id, text.clone(), last)
            }
            None => {
                let (user_message_id, user_seq) = generations::last_user_message(&mut tx, chat_id)
                    .await?
                    .ok_or_else(|| ApiError::bad_request("there is no message to answer again in this chat"))?;
                generations::delete_messages_after(&mut tx, chat_id, user_seq).await?;
                let last = generations::reserve_seqs(&mut tx, chat_id, 1, &input.model).await?;
                (user_message_id, String::new(), last)
            }
        };
        let created_at = generations::insert_message(
            &mut tx,
            NewMessage {
                message_id: generation_id,
                chat_id,
                seq: assistant_seq,
                role: "assistant",
                parts: &[],
                status: MessageStatus::Streaming,
                model: Some(&input.model),
                client_id: None,
            },
        )
        .await?;
        generations::insert_generation(&mut tx, generation_id, chat_id, user_message_id, inner.worker_id).await?;
        let history = generations::history(&mut *tx, chat_id, assistant_seq, HISTORY_ROWS)
            .await?
            .into_iter()
            .filter_map(|row| Role::parse(&row.role).map(|role| (role, row.parts.0)))
            .collect();
        tx.commit().await?;
        Ok(Begun::New(Box::new(Stored {
            generation_id,
            user_message_id,
            user_text,
            assistant_seq,
            created_at,
            title: chat.title,
            chat_is_new: created.is_some(),
            history,
        })))
    }
}
