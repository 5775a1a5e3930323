//! Answering an agent's approval request (AGENTS-PROTOCOL.md §G): the agent asked to call a tool and ended its
//! response; the user allows or denies the call, and the answer goes on in the same assistant message. The request
//! and the user's response both reach the agent (`mcp_approval_request` + `mcp_approval_response`, see
//! [`crate::llm::responses`]), on allow and on deny alike.
//!
//! The continuation is a turn like any other (stored before the agent is called, checkpointed, resumable, stoppable,
//! one per chat), whose event log starts after the answer's stored events: a client that follows the answer sees
//! one message going on.

use std::sync::atomic::Ordering;

use serde_json::json;
use shared::{Content, DataPart, MessagePart, MessageStatus, ModelKind, Role, StreamMetadata, UiChunk, Usage};
use uuid::Uuid;

use super::live::LiveTurn;
use super::log::TurnLog;
use super::start::{HISTORY_ROWS, conversation_id};
use super::{Engine, lock, turn};
use crate::db::{answers, approvals, chats};
use crate::error::ApiError;
use crate::llm::{APPROVAL_PART, CallContext, ModelRequest};
use crate::tools::ToolContext;

/// The user's answer to an approval request.
#[derive(Debug, Clone)]
pub struct ApprovalDecision {
    /// Allow (true) or deny (false) the call.
    pub approve: bool,
    /// Why, when the user said (sent to the agent).
    pub reason: Option<String>,
}

/// A continued answer: follow it after `after` to read what the continuation adds.
#[derive(Debug, Clone, Copy)]
pub struct ContinuedTurn {
    /// The answer (assistant message) that goes on.
    pub answer_id: Uuid,
    /// The last event of the answer before the continuation.
    pub after: u64,
}

impl Engine {
    /// Records the user's answer to the approval request `approval_id` in the chat and continues the agent's answer.
    ///
    /// 404 when the chat is not the caller's or holds no such request; 409 when it was already answered, the chat
    /// went on after it, or an answer is being written. Runs as a task of its own, like a turn's start.
    pub async fn answer_approval(
        &self,
        owner_id: &str,
        chat_id: Uuid,
        approval_id: String,
        decision: ApprovalDecision,
        user_token: Option<secrecy::SecretString>,
    ) -> Result<ContinuedTurn, ApiError> {
        let engine = self.clone();
        let owner_id = owner_id.to_owned();
        let task = async move { engine.continue_answer(&owner_id, chat_id, &approval_id, decision, user_token).await };
        self.inner.tasks.spawn(task).await.map_err(|error| {
            ApiError::Internal(anyhow::Error::new(error).context("continuing an answer after an approval"))
        })?
    }

    async fn continue_answer(
        &self,
        owner_id: &str,
        chat_id: Uuid,
        approval_id: &str,
        decision: ApprovalDecision,
        user_token: Option<secrecy::SecretString>,
    ) -> Result<ContinuedTurn, ApiError> {
        let inner = &self.inner;
        if !inner.accepting.load(Ordering::SeqCst) {
            return Err(ApiError::ShuttingDown);
        }
        let Some(client) = inner.model.clone() else { return Err(ApiError::NoModel(inner.models.hint())) };
        let catalog = inner.models.catalog().await;
        let mut tx = inner.db.begin().await?;
        let chat = chats::lock_chat(&mut tx, chat_id)
            .await?
            .filter(|c| c.owner_id == owner_id)
            .ok_or(ApiError::NotFound("chat"))?;
        let answer = approvals::find(&mut tx, chat_id, approval_id).await?.ok_or(ApiError::NotFound("approval"))?;
        let approval = approval_part(&answer.parts.0, approval_id).ok_or(ApiError::NotFound("approval"))?;
        if approval.data["state"] != "requested" {
            return Err(ApiError::Conflict("this approval was already answered".into()));
        }
        if answer.status == MessageStatus::Streaming.as_str() {
            return Err(ApiError::Conflict(
                "the agent is still answering; answer the request once it has finished".into(),
            ));
        }
        if !answer.is_active_leaf {
            return Err(ApiError::Conflict("the chat went on after this request; ask the agent again".into()));
        }
        if let Some(running) = answers::running_answer(&mut *tx, chat_id).await? {
            return Err(ApiError::GenerationInProgress(running));
        }
        inner.turn_limits.take(&mut tx, owner_id).await?;
        let model = match answer.model.as_deref() {
            Some(model) => self.resolve_model(&catalog, Some(model), None)?,
            None => self.resolve_model(&catalog, None, chat.model.as_deref())?,
        };

        // The decision is logged as the continuation's first events; the parts it leaves are stored at once, so a
        // reload shows the answered request even before the agent says more.
        let base = answer.last_event_seq.max(0) as u64;
        let mut log = TurnLog::continuing(&answer.parts.0, base);
        log.set_prior_usage(
            (answer.input_tokens.is_some() || answer.output_tokens.is_some())
                .then_some(Usage { input_tokens: answer.input_tokens, output_tokens: answer.output_tokens }),
        );
        log.push_control(UiChunk::Start {
            message_id: Some(answer.message_id.to_string()),
            message_metadata: Some(Box::new(StreamMetadata {
                status: Some(MessageStatus::Streaming),
                model: Some(model.id.clone()),
                created_at: Some(answer.created_at),
                chat_id: Some(chat_id),
                seq: Some(answer.seq),
                ..StreamMetadata::default()
            })),
        });
        let ran_here = crate::llm::responses::ran_here(&approval.data);
        let decision = if ran_here && expired(&approval.data, chrono::Utc::now()) {
            ApprovalDecision { approve: false, reason: Some(EXPIRED.to_owned()) }
        } else {
            decision
        };
        for content in decided(&approval, &decision, ran_here) {
            log.push(content);
        }
        let parts = log.parts();
        if !approvals::reopen(&mut tx, answer.message_id, &parts, answer.last_event_seq, inner.worker_id).await? {
            return Err(ApiError::Conflict(
                "the agent is still answering; answer the request once it has finished".into(),
            ));
        }
        // The answer itself follows the prompt as the assistant's message (see `turn::run_steps`).
        // The branch up to the answer's question, from its stored summary (a continuation does not summarise: the
        // turn it continues already made the branch fit).
        let branch = match answer.parent_id {
            Some(question) => super::context::load(&mut tx, question, HISTORY_ROWS).await?,
            None => super::context::Branch::default(),
        };
        let history = branch.history();
        tx.commit().await?;

        if !ran_here {
            // The agent goes on in a new step; calls this server runs are run first, in the step that made them.
            log.start_step();
        }
        let turn = LiveTurn::with_log(answer.message_id, chat_id, log);
        lock(&inner.live).insert(answer.message_id, turn.clone());
        let context = ToolContext {
            owner_id: owner_id.to_owned(),
            chat_id,
            user_token: user_token.clone(),
            sources: chat.tool_sources.clone(),
        };
        let answer_so_far = (Role::Assistant, parts);
        let request = ModelRequest {
            model: model.id.clone(),
            protocol: model.protocol,
            messages: branch.prompt(inner.prompt.system_prompt.as_deref(), inner.prompt.window(&model).budget()),
            tools: self.tools_for(&model, &context),
            temperature: inner.prompt.temperature,
            max_tokens: inner.prompt.max_tokens,
            user_token,
            context: (model.kind() == ModelKind::Agent).then(|| CallContext {
                conversation_id: conversation_id(chat_id, std::iter::once(&answer_so_far).chain(&history)),
                user_id: owner_id.to_owned(),
            }),
            resume: None,
        };
        tracing::info!(
            chat.id = %chat_id, answer.id = %answer.message_id, approve = decision.approve,
            "approval answered; the agent goes on"
        );
        inner.tasks.spawn(turn::run(inner.clone(), turn, client, Box::new(request), context));
        Ok(ContinuedTurn { answer_id: answer.message_id, after: base })
    }
}

/// The approval part with this id among an answer's parts.
fn approval_part(parts: &[MessagePart], approval_id: &str) -> Option<DataPart> {
    parts.iter().find_map(|part| match part {
        MessagePart::Data(data) if data.kind == APPROVAL_PART && data.data["approvalId"] == approval_id => {
            Some(data.clone())
        }
        _ => None,
    })
}

/// The reason a call whose approval came too late was denied.
const EXPIRED: &str = "the approval request expired before the user answered";

/// Whether a request of a call this server runs has passed its `expiresAt`.
fn expired(approval: &serde_json::Value, now: chrono::DateTime<chrono::Utc>) -> bool {
    approval["expiresAt"]
        .as_str()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .is_some_and(|at| at < now)
}

/// What the user's decision adds to the answer: the approval part, answered, and the tool call's outcome. Allowed:
/// an agent goes on to run it (the card says so); a call this server runs stays waiting for its result, which the
/// continuation brings. Denied: the card shows the refusal, which is also what the model is told.
fn decided(approval: &DataPart, decision: &ApprovalDecision, ran_here: bool) -> Vec<Content> {
    let mut data = approval.data.clone();
    let state = match (decision.approve, decision.reason.as_deref()) {
        (true, _) => "approved",
        (false, Some(EXPIRED)) => "expired",
        (false, _) => "denied",
    };
    data["state"] = json!(state);
    if let Some(reason) = &decision.reason {
        data["reason"] = json!(reason);
    }
    let call = approval.data["toolCallId"].as_str().unwrap_or_default().to_owned();
    let id = approval.id.clone().unwrap_or_default();
    let mut contents = vec![Content::data(APPROVAL_PART, id, data)];
    if decision.approve {
        if !ran_here {
            contents.push(Content::tool_output(&call, json!({"approved": true})));
        }
    } else if state == "expired" {
        contents.push(Content::tool_error(&call, "Not run: the approval request expired before the user answered"));
    } else {
        let because = decision.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        contents.push(Content::tool_error(&call, format!("Denied by the user{because}")));
    }
    contents
}

#[cfg(test)]
mod tests {
    use shared::{Answer, ToolPart, ToolState};

    use super::*;

    fn answer_with_request() -> Vec<MessagePart> {
        vec![
            MessagePart::Text { text: "I need to send it.".into() },
            MessagePart::Tool(ToolPart {
                tool_call_id: "apr-1".into(),
                tool_name: "send_email".into(),
                state: ToolState::InputAvailable,
                input: Some(json!({"to": "ops@example.com"})),
                output: None,
                error_text: None,
                provider_executed: Some(true),
                call_provider_metadata: Some(json!({"databricks": {"serverLabel": "mail"}})),
            }),
            MessagePart::Data(DataPart {
                kind: APPROVAL_PART.into(),
                id: Some("approval-apr-1".into()),
                data: json!({"approvalId": "apr-1", "toolCallId": "apr-1", "toolName": "send_email",
                             "serverLabel": "mail", "arguments": {"to": "ops@example.com"}, "state": "requested"}),
            }),
        ]
    }

    fn continue_with(decision: ApprovalDecision) -> (TurnLog, Vec<MessagePart>) {
        let parts = answer_with_request();
        let approval = approval_part(&parts, "apr-1").expect("the request");
        let mut log = TurnLog::continuing(&parts, 7);
        decided(&approval, &decision, false).into_iter().for_each(|content| log.push(content));
        let after = log.parts();
        (log, after)
    }

    #[test]
    fn an_allowed_call_updates_the_card_and_the_request_in_place_after_the_stored_events() {
        let (log, parts) = continue_with(ApprovalDecision { approve: true, reason: None });
        assert_eq!(parts.len(), 3, "nothing is added: the request and the card change in place");
        let MessagePart::Tool(tool) = &parts[1] else { panic!("the card") };
        assert_eq!((tool.state, tool.output.clone()), (ToolState::OutputAvailable, Some(json!({"approved": true}))));
        let MessagePart::Data(data) = &parts[2] else { panic!("the request") };
        assert_eq!(data.data["state"], "approved");

        // The new events are numbered after the stored ones, and a client applying them to the stored parts
        // reaches the same parts.
        assert_eq!((log.base(), log.len()), (7, 9));
        assert!(log.chunk(7).is_none(), "stored events are not in memory");
        let mut client = Answer::from_parts(answer_with_request());
        for chunk in log.chunks(1, log.len()) {
            client.apply(&chunk);
        }
        assert_eq!(client.parts, parts);
    }

    #[test]
    fn a_denied_call_fails_its_card_with_the_reason() {
        let (_, parts) = continue_with(ApprovalDecision { approve: false, reason: Some("wrong person".into()) });
        let MessagePart::Tool(tool) = &parts[1] else { panic!("the card") };
        assert_eq!(tool.state, ToolState::OutputError);
        assert_eq!(tool.error_text.as_deref(), Some("Denied by the user: wrong person"));
        let MessagePart::Data(data) = &parts[2] else { panic!("the request") };
        assert_eq!((data.data["state"].as_str(), data.data["reason"].as_str()), (Some("denied"), Some("wrong person")));
    }

    #[test]
    fn an_unknown_approval_is_not_found_among_the_parts() {
        assert!(approval_part(&answer_with_request(), "apr-2").is_none());
        assert_eq!(approval_part(&answer_with_request(), "apr-1").map(|d| d.kind), Some(APPROVAL_PART.to_owned()));
    }
}
