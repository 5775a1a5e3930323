//! Re-attaching an answer to its agent's background run (AGENTS-PROTOCOL.md §H) after the process that streamed it
//! went away: the run lives on the agent's side, so instead of storing the answer as interrupted, a surviving (or
//! restarted) process adopts it and reads the rest of the run from where the stored answer ends.

use std::sync::Arc;

use uuid::Uuid;

use super::live::LiveTurn;
use super::log::TurnLog;
use super::{Inner, lock, turn};
use crate::db::workers::Orphan;
use crate::llm::{CallContext, ModelRequest, UpstreamRun};
use crate::tools::ToolContext;

/// An answer of a dead worker that can be re-attached: its agent runs it in background mode.
pub(super) struct Reattachable {
    orphan: Orphan,
    run: UpstreamRun,
    model: crate::llm::ModelEntry,
}

/// Whether this orphan's agent run can be taken up again by this process: it was stored with its run's position,
/// and its agent is still offered.
pub(super) async fn reattachable(inner: &Inner, orphan: Orphan) -> Result<Reattachable, Orphan> {
    let Some(run) = orphan.upstream_run.clone().and_then(|value| serde_json::from_value::<UpstreamRun>(value).ok())
    else {
        return Err(orphan);
    };
    if inner.model.is_none() || !inner.accepting.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(orphan);
    }
    let catalog = inner.models.catalog().await;
    match orphan.model.as_deref().and_then(|model| catalog.get(model)).cloned() {
        Some(model) => Ok(Reattachable { orphan, run, model }),
        None => Err(orphan),
    }
}

impl Reattachable {
    /// The answer.
    pub(super) fn answer_id(&self) -> Uuid {
        self.orphan.generation_id
    }
}

/// Runs the adopted answer on: its stored content continues (the open text part included), fed by the agent's run
/// from the stored position.
pub(super) fn resume(inner: &Arc<Inner>, adopted: Reattachable) {
    let Some(client) = inner.model.clone() else { return };
    let Reattachable { orphan, run, model } = adopted;
    let log = TurnLog::resuming(&orphan.parts.0, orphan.last_event_seq.max(0) as u64);
    let turn = LiveTurn::with_log(orphan.generation_id, orphan.chat_id, log);
    lock(&inner.live).insert(orphan.generation_id, turn.clone());
    let context = ToolContext::new(orphan.owner_id.clone(), orphan.chat_id);
    let request = ModelRequest {
        model: model.id.clone(),
        protocol: model.protocol,
        // The run is read, not asked again: no prompt.
        messages: Vec::new(),
        tools: Vec::new(),
        temperature: None,
        max_tokens: None,
        user_token: None,
        context: Some(CallContext { conversation_id: orphan.chat_id.to_string(), user_id: orphan.owner_id }),
        resume: Some(run.clone()),
    };
    tracing::info!(
        answer.id = %orphan.generation_id, response.id = %run.response_id, after = run.seq,
        "re-attaching an answer to its agent's background run"
    );
    inner.tasks.spawn(turn::run(inner.clone(), turn, client, Box::new(request), context));
}
