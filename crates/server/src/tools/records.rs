//! The built-in tools over the user's own records: their chats. Each acts as the calling user only, through the
//! same queries and checks as the HTTP API (`/api/chats`, `/api/chats/{id}/messages`): another user's chat is "chat
//! not found", exactly as the API says, and titles are checked by the same rules. The writes (create, rename,
//! delete) ask the user first unless approvals are configured off; read-only mode leaves them out.
//!
//! Results carry the text of messages, never their tool payloads: a chat read back is what the user saw written.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use shared::{ChatSummary, text_of};
use sqlx::PgPool;
use uuid::Uuid;

use super::{SourceTool, ToolContext, ToolSource};
use crate::db::chats::{self, ChatFilter};
use crate::db::cursor::ChatCursor;
use crate::db::thread;
use crate::error::ApiError;
use crate::validate;

/// The source's name in `CHAT_TOOLS`.
pub const SOURCE_NAME: &str = crate::config::RECORDS_SOURCE;

/// Most chats one call lists.
const MAX_LIST: i64 = 50;
/// Most messages one call reads.
const MAX_READ: i64 = 100;
/// Longest message text returned by `read_chat`; the model is told when a message was cut.
const MAX_MESSAGE_CHARS: usize = 4000;

/// The user's chats as tools.
pub struct RecordsTools {
    db: PgPool,
    tools: Arc<[SourceTool]>,
}

impl RecordsTools {
    /// The tools, acting on this database.
    pub fn new(db: PgPool) -> Self {
        Self { db, tools: definitions().into() }
    }
}

fn definitions() -> Vec<SourceTool> {
    let chat_id = json!({"type": "string", "description": "The chat's id, as list_chats or search_chats gave it."});
    let title = json!({"type": "string", "minLength": 1, "maxLength": shared::MAX_TITLE_CHARS,
                       "description": "The chat's title: one line."});
    let limit = |max: i64, what: &str| json!({"type": "integer", "minimum": 1, "maximum": max, "description": format!("How many {what} at most.")});
    let object = |properties: Value, required: &[&str]| json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});
    let tools = [
        ("current_user", "Who the user is (their email).", object(json!({}), &[]), true),
        (
            "list_chats",
            "Lists the user's chats, most recently active first, with their ids and titles.",
            object(
                json!({"limit": limit(MAX_LIST, "chats"),
                       "cursor": {"type": "string", "description": "next_cursor of the previous page."}}),
                &[],
            ),
            true,
        ),
        (
            "search_chats",
            "Finds the user's chats whose title or messages contain words starting with each word of the query.",
            object(
                json!({"query": {"type": "string", "minLength": 1, "maxLength": 200}, "limit": limit(MAX_LIST, "chats")}),
                &["query"],
            ),
            true,
        ),
        (
            "read_chat",
            "Reads the text of a chat's latest messages, oldest first.",
            object(json!({"chat_id": chat_id, "limit": limit(MAX_READ, "messages")}), &["chat_id"]),
            true,
        ),
        (
            "create_chat",
            "Creates a new, empty chat with this title.",
            object(json!({"title": title}), &["title"]),
            false,
        ),
        (
            "rename_chat",
            "Gives a chat a new title.",
            object(json!({"chat_id": chat_id, "title": title}), &["chat_id", "title"]),
            false,
        ),
        (
            "delete_chat",
            "Deletes a chat and all its messages, for good. Not the chat this conversation is in.",
            object(json!({"chat_id": chat_id}), &["chat_id"]),
            false,
        ),
    ];
    tools
        .into_iter()
        .filter_map(|(name, description, schema, read_only)| {
            // Writes ask the user first (the policy may say otherwise).
            SourceTool::new(name, description, schema, read_only, !read_only)
                .inspect_err(|error| tracing::error!(%error, "a built-in tool's schema is invalid"))
                .ok()
        })
        .collect()
}

impl ToolSource for RecordsTools {
    fn name(&self) -> &str {
        SOURCE_NAME
    }

    fn unprefixed(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "records"
    }

    fn tools(&self) -> Arc<[SourceTool]> {
        self.tools.clone()
    }

    fn call<'a>(
        &'a self,
        tool: &'a SourceTool,
        input: Value,
        context: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move { self.dispatch(&tool.name, &input, context).await.map_err(|error| tool_error(&error)) })
    }
}

impl RecordsTools {
    async fn dispatch(&self, tool: &str, input: &Value, context: &ToolContext) -> Result<Value, ApiError> {
        let owner = context.owner_id.as_str();
        match tool {
            "current_user" => Ok(json!({"user": owner})),
            "list_chats" => self.list(owner, None, input).await,
            "search_chats" => {
                let query = validate::search_text(input["query"].as_str().map(str::to_owned))?
                    .ok_or_else(|| ApiError::bad_request("query must not be blank"))?;
                self.list(owner, Some(query), input).await
            }
            "read_chat" => self.read(owner, chat_id(input)?, input).await,
            "create_chat" => {
                let title = validate::title(input["title"].as_str().unwrap_or_default())?;
                let row = chats::insert_chat(&self.db, Uuid::now_v7(), owner, &title, None, None)
                    .await?
                    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a fresh chat id was taken")))?;
                tracing::info!(chat.id = %row.chat_id, "created chat (tool)");
                Ok(json!({"chat": summary(row.into())}))
            }
            "rename_chat" => {
                let id = chat_id(input)?;
                let title = validate::title(input["title"].as_str().unwrap_or_default())?;
                let row = chats::rename_chat(&self.db, owner, id, &title).await?.ok_or(ApiError::NotFound("chat"))?;
                tracing::info!(chat.id = %id, "renamed chat (tool)");
                Ok(json!({"chat": summary(row.into())}))
            }
            "delete_chat" => {
                let id = chat_id(input)?;
                if id == context.chat_id {
                    return Err(ApiError::Conflict(
                        "this is the chat the conversation is in; the user can delete it from the sidebar".into(),
                    ));
                }
                if !chats::delete_chat(&self.db, owner, id).await? {
                    return Err(ApiError::NotFound("chat"));
                }
                tracing::info!(chat.id = %id, "deleted chat (tool)");
                Ok(json!({"deleted": id}))
            }
            other => Err(ApiError::bad_request(format!("there is no tool named `{other}`"))),
        }
    }

    async fn list(&self, owner: &str, search: Option<String>, input: &Value) -> Result<Value, ApiError> {
        let limit = input["limit"].as_i64().unwrap_or(20).clamp(1, MAX_LIST);
        let after = input["cursor"]
            .as_str()
            .map(ChatCursor::decode)
            .transpose()
            .map_err(|_| ApiError::bad_request("cursor is not a next_cursor this tool gave"))?;
        let filter = ChatFilter { search, ..ChatFilter::default() };
        let mut rows = chats::list_chats(&self.db, owner, &filter, after, limit + 1).await?;
        let next_cursor = (rows.len() as i64 > limit).then(|| {
            rows.truncate(limit as usize);
            rows.last().map(|last| ChatCursor { updated_at: last.updated_at, chat_id: last.chat_id }.encode())
        });
        let chats: Vec<Value> = rows.into_iter().map(|row| summary(row.into())).collect();
        Ok(json!({"chats": chats, "next_cursor": next_cursor.flatten()}))
    }

    async fn read(&self, owner: &str, id: Uuid, input: &Value) -> Result<Value, ApiError> {
        let chat = chats::fetch_chat(&self.db, owner, id).await?.ok_or(ApiError::NotFound("chat"))?;
        let limit = input["limit"].as_i64().unwrap_or(30).clamp(1, MAX_READ);
        let rows = thread::page(&self.db, id, thread::PageStart::Leaf(None), limit).await?;
        let messages: Vec<Value> = rows
            .into_iter()
            .rev()
            .map(|row| {
                let text = text_of(&row.parts.0);
                let text = match text.char_indices().nth(MAX_MESSAGE_CHARS) {
                    Some((end, _)) => format!("{}… (cut)", &text[..end]),
                    None => text,
                };
                json!({"role": row.role, "text": text, "created_at": row.created_at})
            })
            .collect();
        Ok(json!({"chat": summary(chat.into()), "messages": messages}))
    }
}

fn chat_id(input: &Value) -> Result<Uuid, ApiError> {
    // A malformed id is no chat of the user's: the same answer as for another user's chat.
    input["chat_id"].as_str().and_then(|id| Uuid::parse_str(id.trim()).ok()).ok_or(ApiError::NotFound("chat"))
}

fn summary(chat: ChatSummary) -> Value {
    json!({"id": chat.id, "title": chat.title, "model": chat.model, "updated_at": chat.updated_at})
}

/// What the model and the user are told: the API's own message for a client error; a generic one for a
/// server error, whose details go to the log only.
fn tool_error(error: &ApiError) -> String {
    match error {
        ApiError::BadRequest(_) | ApiError::NotFound(_) | ApiError::Conflict(_) => error.to_string(),
        other => {
            tracing::error!(error = ?other, "a built-in tool failed");
            "the chats cannot be reached right now; try again later".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_tool_has_a_valid_schema_and_only_writes_ask_first() {
        let tools = definitions();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["current_user", "list_chats", "search_chats", "read_chat", "create_chat", "rename_chat", "delete_chat"]
        );
        for tool in &tools {
            assert_eq!(tool.read_only, !tool.needs_approval, "{}", tool.name);
        }
        let rename = tools.iter().find(|t| t.name == "rename_chat").expect("rename");
        assert!(rename.validate(&json!({"chat_id": "x", "title": "New"})).is_ok());
        assert!(rename.validate(&json!({"chat_id": "x"})).is_err(), "title is required");
        assert!(rename.validate(&json!({"chat_id": "x", "title": "", "more": 1})).is_err());
    }

    #[test]
    fn a_malformed_chat_id_is_not_found_like_another_users_chat() {
        assert_eq!(chat_id(&json!({"chat_id": "nope"})).map_err(|e| e.to_string()), Err("chat not found".into()));
        let id = Uuid::now_v7();
        assert_eq!(chat_id(&json!({"chat_id": id.to_string()})).ok(), Some(id));
    }
}
