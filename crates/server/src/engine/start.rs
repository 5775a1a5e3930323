//! Starting a turn: one transaction stores the user message and the streaming answer, after checking ownership,
//! idempotency and that no other turn runs in the chat; then the turn runs as a task of its own.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use shared::{MessagePart, MessageStatus, ModelKind, Role, StreamMetadata, TurnState, UiChunk};
use uuid::Uuid;

use super::context::{self, Branch, Summariser, Window};
use super::live::LiveTurn;
use super::title::{self, DEFAULT_TITLE, TitleModel, derive_title};
use super::{Engine, lock, turn};
use crate::db::thread::{self, NewTurn};
use crate::db::{answers, chats};
use crate::error::ApiError;
use crate::llm::{CONVERSATION_PART, CallContext, ModelEntry, ModelRequest, Protocol};
use crate::tools::ToolContext;
use secrecy::SecretString;

/// How many stored messages at most are read to build the prompt.
pub(super) const HISTORY_ROWS: i64 = 500;

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct TurnInput {
    /// The new message; `None` to answer again (a new version of an answer).
    pub text: Option<String>,
    /// The message edited (with `text`: the new message is a version of it) or answered again (without: an answer,
    /// which gets a new version, or a question, which gets a new answer); a server id or a client id. `None`: a new
    /// message continues the branch, answering again takes the branch's last answer.
    pub target: Option<String>,
    /// The message the client shows just before the new one: when it is an answer of the chat, the new message
    /// follows it (the client's branch, even if another tab switched the chat to another one). Else the chat's
    /// active branch is continued.
    pub after: Option<String>,
    /// The client's id for the message, making retries idempotent.
    pub client_id: Option<String>,
    /// The model the client asked for; the chat's (or the default) when `None`. Must be offered.
    pub model: Option<String>,
    /// The signed-in user's own token for the model calls (`MODEL_AUTH=user`); `None`: the app's identity.
    pub user_token: Option<SecretString>,
    /// The sources of tools the chat uses from now on (checked names); `None`: the chat's choice stays.
    pub tools: Option<Vec<String>>,
}

/// A started (or, for an idempotent retry, already existing) turn.
#[derive(Debug, Clone)]
pub struct StartedTurn {
    /// The answer's (assistant message's) id; on the wire, the generation id.
    pub answer_id: Uuid,
    /// The stored user message.
    pub user_message_id: Uuid,
    /// Chat id.
    pub chat_id: Uuid,
    /// Whether this request started it (false: a retry of an earlier request).
    pub is_new: bool,
}

struct Stored {
    answer_id: Uuid,
    user_message_id: Uuid,
    user_text: String,
    model: ModelEntry,
    /// The model that titles a new chat, when one does.
    title_model: Option<(String, Protocol)>,
    assistant_seq: i64,
    created_at: DateTime<Utc>,
    title: String,
    /// The sources of tools the chat uses (`None`: all).
    tool_sources: Option<Vec<String>>,
    /// The branch the turn continues, from its stored summary.
    branch: Branch,
    /// The model that summarises the branch when it outgrows the window, with its window.
    summary_model: Option<(String, Protocol, Window)>,
}

enum Begun {
    New(Box<Stored>),
    Existing { answer_id: Uuid, user_message_id: Uuid },
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
            Begun::Existing { answer_id, user_message_id } => {
                return Ok(StartedTurn { answer_id, user_message_id, chat_id, is_new: false });
            }
            Begun::New(stored) => stored,
        };
        let turn = LiveTurn::new(stored.answer_id, chat_id);
        turn.update(|log| {
            log.push_control(UiChunk::Start {
                message_id: Some(stored.answer_id.to_string()),
                message_metadata: Some(Box::new(StreamMetadata {
                    status: Some(MessageStatus::Streaming),
                    model: Some(stored.model.id.clone()),
                    created_at: Some(stored.created_at),
                    chat_id: Some(chat_id),
                    seq: Some(stored.assistant_seq),
                    ..StreamMetadata::default()
                })),
            });
            log.push_control(UiChunk::chat(chat_id, stored.title.clone()));
            log.push_control(UiChunk::status(TurnState::Running));
            log.start_step();
        });
        lock(&inner.live).insert(stored.answer_id, turn.clone());
        let context = ToolContext {
            owner_id: owner_id.to_owned(),
            chat_id,
            user_token: input.user_token.clone(),
            sources: stored.tool_sources.clone(),
        };
        let mut request = ModelRequest {
            model: stored.model.id.clone(),
            protocol: stored.model.protocol,
            messages: Vec::new(),
            tools: self.tools_for(&stored.model, &context),
            temperature: inner.prompt.temperature,
            max_tokens: inner.prompt.max_tokens,
            user_token: input.user_token.clone(),
            context: (stored.model.kind() == ModelKind::Agent).then(|| CallContext {
                conversation_id: conversation_id(chat_id, &stored.branch.history()),
                user_id: owner_id.to_owned(),
            }),
            resume: None,
        };
        tracing::info!(chat.id = %chat_id, answer.id = %stored.answer_id, model = %stored.model.id, "turn started");
        let summariser = stored.summary_model.map(|(name, protocol, window)| Summariser {
            client: model.clone(),
            name,
            protocol,
            window,
            user_token: input.user_token.clone(),
        });
        let budget = inner.prompt.window(&stored.model).budget();
        let (engine, live, client, branch) = (self.inner.clone(), turn.clone(), model.clone(), stored.branch);
        inner.tasks.spawn(async move {
            // The prompt is made in the turn's task: summarising a long branch is a model call of its own, which the
            // answer shows while it runs.
            let system = engine.prompt.system_prompt.as_deref();
            request.messages = context::prepare(&engine.db, &live, system, branch, budget, summariser).await;
            turn::run(engine, live, client, Box::new(request), context).await;
        });
        if let Some((name, protocol)) = stored.title_model {
            let retitle = title::retitle(
                self.inner.clone(),
                turn,
                TitleModel { client: model, name, protocol },
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
        Ok(StartedTurn { answer_id: stored.answer_id, user_message_id: stored.user_message_id, chat_id, is_new: true })
    }

    async fn begin(&self, owner_id: &str, chat_id: Uuid, input: &TurnInput) -> Result<Begun, ApiError> {
        let inner = &self.inner;
        let catalog = inner.models.catalog().await;
        let requested = input.model.as_deref().map(|m| self.resolve_model(&catalog, Some(m), None)).transpose()?;
        let mut tx = inner.db.begin().await?;
        let derived = input.text.as_deref().map(derive_title).unwrap_or_else(|| DEFAULT_TITLE.to_owned());
        let initial_model = match &requested {
            Some(model) => model.clone(),
            None => self.resolve_model(&catalog, None, None)?,
        };
        let created = chats::insert_chat(&mut *tx, chat_id, owner_id, &derived, Some(&initial_model.id), None).await?;
        let mut chat = chats::lock_chat(&mut tx, chat_id)
            .await?
            .filter(|c| c.owner_id == owner_id)
            .ok_or(ApiError::NotFound("chat"))?;

        // An AI SDK edit sends the new version under the id of the message it replaces: that id names the edited
        // message, not a retry of this request.
        let client_id =
            input.client_id.as_deref().filter(|id| input.text.is_some() && input.target.as_deref() != Some(*id));
        if let Some(client_id) = client_id
            && let Some(existing) = thread::find_client_message(&mut tx, chat_id, client_id).await?
        {
            tx.rollback().await?;
            return match existing.answer_id {
                Some(answer_id) => Ok(Begun::Existing { answer_id, user_message_id: existing.message_id }),
                None => Err(ApiError::Conflict("this message was already sent and its answer was deleted".into())),
            };
        }
        if let Some(running) = answers::running_answer(&mut *tx, chat_id).await? {
            return Err(ApiError::GenerationInProgress(running));
        }
        // Limits apply to turns that would really start (not to retries or conflicts); failing here rolls back.
        inner.turn_limits.take(&mut tx, owner_id).await?;
        let model = match requested {
            Some(model) => model,
            None => self.resolve_model(&catalog, None, chat.model.as_deref())?,
        };

        if let Some(sources) = &input.tools {
            chats::set_tool_sources(&mut *tx, owner_id, chat_id, Some(sources)).await?;
            chat.tool_sources = Some(sources.clone());
        }

        let answer_id = Uuid::now_v7();
        let (parent, user_message_id, user_text, parts) = match &input.text {
            Some(text) => {
                let parent = question_parent(&mut tx, chat_id, input).await?;
                (parent, Uuid::now_v7(), text.clone(), vec![MessagePart::Text { text: text.clone() }])
            }
            None => {
                let question = question_to_answer_again(&mut tx, chat_id, input.target.as_deref()).await?;
                (Some(question), question.0, String::new(), Vec::new())
            }
        };
        let (assistant_seq, created_at) = thread::insert_turn(
            &mut tx,
            NewTurn {
                chat_id,
                parent,
                user: input.text.as_ref().map(|_| (user_message_id, parts.as_slice(), client_id)),
                answer_id,
                model: &model.id,
                worker_id: inner.worker_id,
            },
        )
        .await
        .map_err(|error| match &error {
            // The chat lock makes this unreachable; kept so a violation can never surface as a 500.
            sqlx::Error::Database(db) if db.constraint() == Some(thread::ONE_STREAMING_PER_CHAT) => {
                ApiError::Conflict("a reply is already being generated in this chat".into())
            }
            _ => ApiError::from(error),
        })?;
        // A chat created by this turn has no history but the message itself.
        let branch = if created.is_some() {
            let question = context::BranchMessage {
                id: user_message_id,
                role: Role::User,
                parts,
                depth: 1,
                pinned: false,
                usage: None,
            };
            Branch { recent: vec![question], summary: None }
        } else {
            context::load(&mut tx, user_message_id, HISTORY_ROWS).await?
        };
        tx.commit().await?;
        let chat_is_new = created.is_some();
        let title_model = (chat_is_new && inner.prompt.title_generation)
            .then(|| title_model_for(&catalog, inner.prompt.title_model.as_deref(), &model))
            .flatten();
        let summary_model = summary_model_for(&catalog, inner.prompt.summary_model.as_deref(), &model).map(|entry| {
            let window = inner.prompt.window(&entry);
            (entry.id, entry.protocol, window)
        });
        Ok(Begun::New(Box::new(Stored {
            answer_id,
            user_message_id,
            user_text,
            model,
            assistant_seq,
            created_at,
            title_model,
            title: chat.title,
            tool_sources: chat.tool_sources,
            branch,
            summary_model,
        })))
    }
}

/// What a new question follows: for an edit, the edited question's parent (the new one is a version of it); else the
/// answer the client shows last, when it is one of the chat's; else the end of the chat's active branch. `None`: a
/// root (the chat's first question, or an edit of it). Returned as (message id, depth).
async fn question_parent(
    conn: &mut sqlx::PgConnection,
    chat_id: Uuid,
    input: &TurnInput,
) -> Result<Option<(Uuid, i32)>, ApiError> {
    if let Some(target) = &input.target {
        let edited = thread::find_node(conn, chat_id, target)
            .await?
            .filter(|node| node.role == Role::User.as_str())
            .ok_or_else(|| ApiError::bad_request("`messageId` names no question of this chat to edit"))?;
        return Ok(edited.parent_id.map(|parent| (parent, edited.depth - 1)));
    }
    if let Some(after) = &input.after
        && let Some(shown) = thread::find_node(conn, chat_id, after).await?
        && shown.role == Role::Assistant.as_str()
    {
        return Ok(Some((shown.message_id, shown.depth)));
    }
    Ok(thread::active_leaf(conn, chat_id).await?.map(|leaf| (leaf.message_id, leaf.depth)))
}

/// The question a new answer answers: the one before the named answer (a new version of it), the named question
/// itself, or, with no name, the question before the end of the active branch (or that end, when it is a question).
async fn question_to_answer_again(
    conn: &mut sqlx::PgConnection,
    chat_id: Uuid,
    target: Option<&str>,
) -> Result<(Uuid, i32), ApiError> {
    let node = match target {
        Some(target) => thread::find_node(conn, chat_id, target)
            .await?
            .ok_or_else(|| ApiError::bad_request("`messageId` names no message of this chat"))?,
        None => thread::active_leaf(conn, chat_id)
            .await?
            .ok_or_else(|| ApiError::bad_request("there is no message to answer again in this chat"))?,
    };
    if node.role == Role::User.as_str() {
        return Ok((node.message_id, node.depth));
    }
    match node.parent_id {
        Some(question) if node.role == Role::Assistant.as_str() => Ok((question, node.depth - 1)),
        _ => Err(ApiError::bad_request("there is no question before this message to answer again")),
    }
}

/// The conversation id an agent knows the chat by: the one a long-running agent moved it to when it resumed a
/// crashed run (the newest `data-conversation` part of the history, given newest first), else the chat's id.
pub(super) fn conversation_id<'a>(
    chat_id: Uuid,
    newest_first: impl IntoIterator<Item = &'a (Role, Vec<MessagePart>)>,
) -> String {
    newest_first
        .into_iter()
        .filter(|(role, _)| *role == Role::Assistant)
        .flat_map(|(_, parts)| parts.iter().rev())
        .find_map(|part| match part {
            MessagePart::Data(data) if data.kind == CONVERSATION_PART => data.data["conversationId"].as_str(),
            _ => None,
        })
        .map_or_else(|| chat_id.to_string(), str::to_owned)
}

/// The model that summarises a long branch: `SUMMARY_MODEL` when set (an endpoint of the configured server when the
/// picker does not offer it); else the chat's own model; else, for an agent (which answers in its own way, not with
/// a summary), the default model or the first offered one. `None` when no model can.
fn summary_model_for(
    catalog: &crate::llm::ModelCatalog,
    configured: Option<&str>,
    chat_model: &ModelEntry,
) -> Option<ModelEntry> {
    if let Some(name) = configured {
        return Some(catalog.get(name).cloned().unwrap_or_else(|| ModelEntry::named(name)));
    }
    if chat_model.kind() == ModelKind::Model {
        return Some(chat_model.clone());
    }
    catalog
        .default_model()
        .filter(|entry| entry.kind() == ModelKind::Model)
        .or_else(|| catalog.entries().iter().find(|entry| entry.kind() == ModelKind::Model))
        .cloned()
}

/// The model that titles a new chat: `TITLE_MODEL` when set; else the chat's own model when it writes titles; else,
/// for an agent (agents answer in their own way, with tool calls and hand-overs, not with a title), the default
/// model or the first offered one that writes titles. `None` when no model can.
fn title_model_for(
    catalog: &crate::llm::ModelCatalog,
    configured: Option<&str>,
    chat_model: &ModelEntry,
) -> Option<(String, Protocol)> {
    if let Some(name) = configured {
        return match catalog.get(name) {
            Some(entry) => entry.writes_titles.then(|| (name.to_owned(), entry.protocol)),
            // A title model outside the picker is an endpoint of the configured server.
            None => Some((name.to_owned(), Protocol::ChatCompletions)),
        };
    }
    if chat_model.writes_titles {
        return Some((chat_model.id.clone(), chat_model.protocol));
    }
    catalog
        .default_model()
        .filter(|entry| entry.writes_titles)
        .or_else(|| catalog.entries().iter().find(|entry| entry.writes_titles))
        .map(|entry| (entry.id.clone(), entry.protocol))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ModelCatalog;

    fn agent(id: &str) -> ModelEntry {
        ModelEntry {
            protocol: Protocol::Responses,
            task: Some("agent/v1/responses".into()),
            writes_titles: false,
            ..ModelEntry::named(id)
        }
    }

    #[test]
    fn the_conversation_id_is_the_newest_one_an_agent_moved_the_chat_to() {
        let chat_id = Uuid::nil();
        let moved = |id: &str| {
            MessagePart::Data(shared::DataPart {
                kind: CONVERSATION_PART.into(),
                id: Some("conversation".into()),
                data: serde_json::json!({"conversationId": id}),
            })
        };
        let text = |t: &str| MessagePart::Text { text: t.into() };
        assert_eq!(conversation_id(chat_id, &[(Role::User, vec![text("hi")])]), chat_id.to_string());
        let history = vec![
            (Role::User, vec![text("next")]),
            (Role::Assistant, vec![text("b"), moved("c::attempt-3")]),
            (Role::Assistant, vec![moved("c::attempt-2"), text("a")]),
        ];
        assert_eq!(conversation_id(chat_id, &history), "c::attempt-3");
    }

    #[test]
    fn an_agents_chat_is_titled_by_a_model_that_writes_titles() {
        let catalog = ModelCatalog::from_entries(vec![agent("support"), ModelEntry::named("llama"), agent("other")]);
        let title = |configured: Option<&str>, chat: &str| {
            title_model_for(&catalog, configured, catalog.get(chat).expect("offered")).map(|(name, _)| name)
        };
        assert_eq!(title(None, "llama").as_deref(), Some("llama"), "a model titles its own chats");
        assert_eq!(title(None, "support").as_deref(), Some("llama"), "an agent's chat: the first model that titles");
        assert_eq!(title(Some("small"), "support").as_deref(), Some("small"), "TITLE_MODEL wins");
        assert_eq!(title(Some("other"), "llama"), None, "a configured agent never titles");
        let agents_only = ModelCatalog::from_entries(vec![agent("support")]);
        assert_eq!(title_model_for(&agents_only, None, &agent("support")), None);
    }
}
