//! One step of a turn: one model call, whose events go to the turn's log, ending with the tool calls (if any) that
//! this server must run before the next step.

use futures::StreamExt;
use shared::{ToolPart, TurnState, UiChunk, Usage};

use super::live::LiveTurn;
use crate::llm::{ChatModel, ModelEvent, ModelRequest};

/// How a step ended.
#[derive(Debug)]
pub(super) enum StepEnd {
    /// The model finished and asked for nothing more.
    Answered,
    /// The model finished with tool calls this server must run, in order.
    ToolCalls(Vec<ToolPart>),
    /// The model failed; the message is safe to show.
    Failed(String),
    /// The turn was asked to end (see [`LiveTurn::cancel_reason`]).
    Cancelled,
}

/// What a step reported besides its content.
#[derive(Debug, Default)]
pub(super) struct StepReport {
    /// Token usage (the latest the model reported).
    pub usage: Option<Usage>,
    /// The MLflow trace of the call, when the model (an agent) returned one.
    pub trace: Option<String>,
}

/// Runs one model call to its end; returns how it ended and what it reported.
pub(super) async fn run(turn: &LiveTurn, model: &dyn ChatModel, request: Box<ModelRequest>) -> (StepEnd, StepReport) {
    let mut report = StepReport::default();
    let mut stream = model.stream(*request);
    // One cancellation future for the whole step: creating one per token would register a waiter each time.
    let cancelled = turn.cancelled();
    tokio::pin!(cancelled);
    let end = loop {
        tokio::select! {
            biased;
            () = &mut cancelled => break StepEnd::Cancelled,
            event = stream.next() => match event {
                Some(Ok(ModelEvent::Content(content))) => turn.push(content),
                Some(Ok(ModelEvent::Usage(reported))) => report.usage = Some(reported),
                Some(Ok(ModelEvent::Trace(trace))) => report.trace = Some(trace),
                Some(Ok(ModelEvent::Upstream { run, content })) => turn.update(|log| {
                    content.into_iter().for_each(|content| log.push(content));
                    log.set_upstream(run);
                }),
                Some(Ok(ModelEvent::Finished(_))) => {}
                Some(Ok(ModelEvent::Retrying { after })) => {
                    turn.push_control(UiChunk::status(TurnState::Retrying { after_secs: after.as_secs_f64().ceil() as u64 }));
                }
                Some(Ok(ModelEvent::Queued { position })) => turn.push_control(UiChunk::status(TurnState::Queued { position })),
                Some(Ok(ModelEvent::Loading { progress })) => turn.push_control(UiChunk::status(TurnState::Loading { progress })),
                Some(Ok(ModelEvent::Running)) => turn.push_control(UiChunk::status(TurnState::Running)),
                Some(Err(error)) => break StepEnd::Failed(error.to_string()),
                None => {
                    // Calls that already failed (arguments that were not JSON) still go back to the model.
                    let (calls, called) = turn.read(|log| (log.pending_tool_calls(), log.step_called_tools()));
                    break if called { StepEnd::ToolCalls(calls) } else { StepEnd::Answered };
                }
            },
        }
    };
    // Dropping the stream closes the upstream request, so a stopped model stops generating (and billing).
    drop(stream);
    (end, report)
}
