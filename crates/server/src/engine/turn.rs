//! A running turn: a loop of steps (a model call, then the tool calls it asked for, fed back to the next call)
//! until the model answers, fails, is stopped, waits for the user's approval of a call, or uses up its steps
//! ([`ToolLimits::max_steps`]); then its end is stored.
//!
//! A call that needs the user's approval ends the turn with the call waiting (its card and a `data-approval` part,
//! as an agent's request does): the answer is complete until the user answers, on any replica, after any reload
//! or restart; the answer then goes on as a continuation ([`super::approval`]) that first runs the approved calls.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use shared::{Content, MessagePart, ToolPart, Usage};

use super::finish::{self, Outcome};
use super::live::{CancelReason, LiveTurn};
use super::log::TurnLog;
use super::step::{self, StepEnd, StepReport};
use super::{Inner, checkpoint};
use crate::llm::{APPROVAL_PART, ChatModel, ModelRequest, PromptMessage, PromptRole};
use crate::tools::{Checked, ToolCall, ToolContext, ToolRunner};

/// How far a turn may go with tools.
#[derive(Debug, Clone, Copy)]
pub struct ToolLimits {
    /// Most model calls one turn may take (the first, and one after each round of tool calls).
    pub max_steps: usize,
    /// How long a call waits for the user's approval before it counts as denied.
    pub approval_timeout: Duration,
}

impl Default for ToolLimits {
    fn default() -> Self {
        Self { max_steps: 5, approval_timeout: Duration::from_secs(600) }
    }
}

/// Runs the turn to its end. Never panics on expected failures; every path stores a terminal status.
pub(super) async fn run(
    inner: Arc<Inner>,
    turn: Arc<LiveTurn>,
    model: Arc<dyn ChatModel>,
    request: Box<ModelRequest>,
    context: ToolContext,
) {
    // The futures of what happens rarely (a step boundary, the end) are boxed when they happen, so the turn's task
    // holds only the streaming step while the answer streams: every running turn's memory is this task's size.
    let boundary = |wait: bool| -> futures::future::BoxFuture<'_, ()> {
        if wait {
            Box::pin(checkpoint::write_now(&inner, &turn))
        } else {
            let (inner, turn) = (inner.clone(), turn.clone());
            inner.tasks.clone().spawn(async move { checkpoint::write_now(&inner, &turn).await });
            Box::pin(std::future::ready(()))
        }
    };
    let (outcome, mut report) =
        run_steps(&turn, model.as_ref(), inner.tools.as_ref(), inner.tool_limits, request, &context, boundary).await;
    // A continued answer's usage counts the model calls made before it went on.
    report.usage = add_usage(turn.read(|log| log.prior_usage()), report.usage);
    Box::pin(finish::finish(inner.clone(), turn.clone(), outcome, report)).await;
}

/// The loop of steps; `at_boundary(wait)` runs between two steps: a checkpoint, so a replica that takes over sees
/// every finished step. It is waited for before calls that may change something (a process that dies while one runs
/// leaves its card stored, and marked failed); calls that only read run while it is written.
///
/// `request` holds the prompt up to the answer; when the answer already has parts (a continuation), they follow it
/// as the assistant's message.
pub(super) async fn run_steps<F, Fut>(
    turn: &LiveTurn,
    model: &dyn ChatModel,
    tools: &dyn ToolRunner,
    limits: ToolLimits,
    request: Box<ModelRequest>,
    context: &ToolContext,
    at_boundary: F,
) -> (Outcome, StepReport)
where
    F: Fn(bool) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut total = StepReport::default();
    // A continuation after approvals: nothing happens while a call of the step still waits for the user; then the
    // allowed calls run before the model is asked again.
    if turn.read(|log| waiting_for_approval(&log.parts())) {
        return (Outcome::Complete, total);
    }
    let approved = turn.read(|log| log.pending_tool_calls());
    if !approved.is_empty() {
        let calls: Vec<ToolCall> = approved.iter().map(tool_call).collect();
        if let Some(reason) = Box::pin(run_tools(turn, tools, calls, context)).await {
            return (Outcome::cancelled(Some(reason)), total);
        }
    }
    // The model's next call is a step of its own, after the one whose calls were just answered (run or denied).
    if turn.read(TurnLog::step_called_tools) {
        turn.update(|log| log.start_step());
    }
    let answer_so_far = turn.read(|log| log.parts());
    let continues = answer_so_far.iter().any(|part| !matches!(part, MessagePart::StepStart) && !is_about_context(part));
    // The prompt is only kept for later steps when tools were offered: a plain answer has one step, and holding a
    // long history for as long as the answer streams would cost every running turn its size in memory. Requests
    // are boxed for the same reason: the task holds a pointer, not the request.
    let template = (!request.tools.is_empty()).then(|| request.clone());
    let mut next = Some(if continues { continued(&request, answer_so_far) } else { request });
    let max_steps = limits.max_steps.max(1);
    for step in 1..=max_steps {
        let Some(request) = next.take() else { break };
        let (end, report) = step::run(turn, model, request).await;
        total.usage = add_usage(total.usage, report.usage);
        total.trace = report.trace.or(total.trace);
        let calls = match end {
            StepEnd::Answered => return (Outcome::Complete, total),
            StepEnd::Failed(message) => return (Outcome::Failed(message), total),
            StepEnd::Cancelled => return (Outcome::cancelled(turn.cancel_reason()), total),
            StepEnd::ToolCalls(calls) => calls,
        };
        turn.update(|log| log.finish_step());
        let Some(template) = &template else {
            at_boundary(true).await;
            // Tools the server never offered: their calls fail, and the model is not asked again.
            turn.update(|log| {
                for call in &calls {
                    log.push(Content::tool_error(
                        &call.tool_call_id,
                        format!("there is no tool named `{}`", call.tool_name),
                    ));
                }
            });
            return (Outcome::Complete, total);
        };
        let (runnable, asked) = check_calls(turn, tools, &calls, context, limits.approval_timeout);
        let reads_only = !asked && runnable.iter().all(|call| tools.reads_only(call, context));
        at_boundary(!reads_only).await;
        if let Some(reason) = Box::pin(run_tools(turn, tools, runnable, context)).await {
            return (Outcome::cancelled(Some(reason)), total);
        }
        if asked {
            // The answer waits for the user; their answer continues it.
            return (Outcome::Complete, total);
        }
        if step == max_steps {
            break;
        }
        let answer_so_far = turn.read(|log| log.parts());
        next = Some(continued(template, answer_so_far));
        turn.update(|log| log.start_step());
    }
    let message = format!(
        "the answer used all {max_steps} model calls it may take with tools (TOOL_MAX_STEPS); ask again to go on"
    );
    (Outcome::Failed(message), total)
}

/// Whether the answer's latest step has a call still waiting for the user.
fn waiting_for_approval(parts: &[MessagePart]) -> bool {
    let step = parts.iter().rposition(|part| matches!(part, MessagePart::StepStart)).map_or(0, |at| at + 1);
    parts[step..].iter().any(|part| {
        matches!(part, MessagePart::Data(data) if data.kind == APPROVAL_PART && data.data["state"] == "requested")
    })
}

fn tool_call(part: &ToolPart) -> ToolCall {
    ToolCall {
        id: part.tool_call_id.clone(),
        name: part.tool_name.clone(),
        input: part.input.clone().unwrap_or_default(),
    }
}

/// Checks a step's calls: the ones to run now are returned; a call that fails its check gets its error; a call that
/// needs the user's approval gets its request (returned `true` when any did).
fn check_calls(
    turn: &LiveTurn,
    tools: &dyn ToolRunner,
    calls: &[ToolPart],
    context: &ToolContext,
    approval_timeout: Duration,
) -> (Vec<ToolCall>, bool) {
    let mut runnable = Vec::with_capacity(calls.len());
    let mut asked = false;
    for part in calls {
        let call = tool_call(part);
        match tools.check(&call, context) {
            Ok(Checked::Run) => runnable.push(call),
            Ok(Checked::NeedsApproval) => {
                asked = true;
                let expires_at = chrono::Utc::now()
                    + chrono::Duration::from_std(approval_timeout).unwrap_or(chrono::Duration::minutes(10));
                let request = json!({
                    "approvalId": call.id,
                    "toolCallId": call.id,
                    "toolName": call.name,
                    "source": tools.source_of(&call.name).unwrap_or_default(),
                    "arguments": call.input,
                    "state": "requested",
                    "expiresAt": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                });
                turn.push(Content::data(APPROVAL_PART, format!("approval-{}", call.id), request));
            }
            Err(error) => turn.push(Content::tool_error(&call.id, error)),
        }
    }
    (runnable, asked)
}

/// The request for the next step: the prompt, then the answer so far with its tool calls and their results.
fn continued(template: &ModelRequest, mut answer: Vec<MessagePart>) -> Box<ModelRequest> {
    answer.retain(|part| !is_about_context(part));
    let mut request = Box::new(template.clone());
    request.messages.push(PromptMessage { role: PromptRole::Assistant, parts: answer });
    request
}

/// The part that says the prompt was summarised: about the answer's context, not part of what the model said.
fn is_about_context(part: &MessagePart) -> bool {
    matches!(part, MessagePart::Data(data) if data.kind == super::context::SUMMARY_PART)
}

/// Runs calls together, logging each result as it comes; returns why the turn must end if it was asked to. Calls
/// still running then are cancelled and fail with the reason, and the ones that finished keep their results.
async fn run_tools(
    turn: &LiveTurn,
    tools: &dyn ToolRunner,
    calls: Vec<ToolCall>,
    context: &ToolContext,
) -> Option<CancelReason> {
    if calls.is_empty() {
        return None;
    }
    let mut running: futures::stream::FuturesUnordered<_> =
        calls.iter().map(|call| async move { (call.id.as_str(), tools.run(call, context).await) }).collect();
    let mut done = Vec::with_capacity(calls.len());
    let cancelled = turn.cancelled();
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            biased;
            () = &mut cancelled => break,
            finished = running.next() => match finished {
                Some((id, result)) => {
                    done.push(id.to_owned());
                    turn.push(match result {
                        Ok(output) => Content::tool_output(id, output),
                        Err(error_text) => Content::tool_error(id, error_text),
                    });
                }
                None => return None,
            },
        }
    }
    drop(running);
    let reason = turn.cancel_reason().unwrap_or(CancelReason::Stopped);
    for call in calls.iter().filter(|call| !done.contains(&call.id)) {
        turn.push(Content::tool_error(&call.id, reason.tool_error()));
    }
    Some(reason)
}

/// Usage of several model calls: their sums.
fn add_usage(total: Option<Usage>, step: Option<Usage>) -> Option<Usage> {
    let sum = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    match (total, step) {
        (Some(total), Some(step)) => Some(Usage {
            input_tokens: sum(total.input_tokens, step.input_tokens),
            output_tokens: sum(total.output_tokens, step.output_tokens),
        }),
        (total, step) => total.or(step),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::future::BoxFuture;
    use serde_json::{Value, json};
    use shared::{Answer, ToolState, UiChunk};
    use uuid::Uuid;

    use super::*;
    use crate::llm::{ModelError, ModelEvent, ModelStream, Protocol, ToolDefinition};

    /// A model that answers each call with the next script, and records the requests it got.
    struct Scripted {
        scripts: Mutex<Vec<Vec<Result<ModelEvent, ModelError>>>>,
        requests: Mutex<Vec<ModelRequest>>,
    }

    impl Scripted {
        fn new(mut scripts: Vec<Vec<Result<ModelEvent, ModelError>>>) -> Self {
            scripts.reverse();
            Self { scripts: Mutex::new(scripts), requests: Mutex::new(Vec::new()) }
        }
    }

    impl ChatModel for Scripted {
        fn stream(&self, request: ModelRequest) -> ModelStream {
            self.requests.lock().expect("lock").push(request);
            let script = self.scripts.lock().expect("lock").pop().unwrap_or_default();
            Box::pin(futures::stream::iter(script))
        }
    }

    /// Tools that echo their input, except `broken`, which fails.
    struct Echo;

    impl ToolRunner for Echo {
        fn definitions(&self, _context: &ToolContext) -> Vec<ToolDefinition> {
            vec![ToolDefinition {
                name: "echo".into(),
                description: "Echoes.".into(),
                input_schema: json!({"type": "object"}),
            }]
        }

        fn check(&self, call: &ToolCall, _context: &ToolContext) -> Result<Checked, String> {
            match call.name.as_str() {
                "ask" => Ok(Checked::NeedsApproval),
                _ => Ok(Checked::Run),
            }
        }

        fn run<'a>(&'a self, call: &'a ToolCall, _context: &'a ToolContext) -> BoxFuture<'a, Result<Value, String>> {
            Box::pin(async move {
                match call.name.as_str() {
                    "echo" | "ask" => Ok(json!({"echo": call.input})),
                    "hang" => futures::future::pending().await,
                    other => Err(format!("{other} failed")),
                }
            })
        }

        fn source_of(&self, _tool_name: &str) -> Option<String> {
            Some("echoes".into())
        }
    }

    fn call(id: &str, name: &str) -> Result<ModelEvent, ModelError> {
        Ok(ModelEvent::Content(Content::tool_input(id, name, json!({"n": id}), false)))
    }

    fn request_with(tools: Vec<ToolDefinition>) -> ModelRequest {
        request(tools)
    }

    fn request(tools: Vec<ToolDefinition>) -> ModelRequest {
        ModelRequest {
            model: "m".into(),
            protocol: Protocol::ChatCompletions,
            messages: vec![PromptMessage::text(PromptRole::User, "What is it?")],
            tools,
            temperature: None,
            max_tokens: None,
            user_token: None,
            context: None,
            resume: None,
        }
    }

    fn context() -> ToolContext {
        ToolContext::new("u@example.com", Uuid::nil())
    }

    async fn run(model: &Scripted, tools: Vec<ToolDefinition>) -> (Outcome, Arc<LiveTurn>, usize) {
        let turn = LiveTurn::new(Uuid::nil(), Uuid::nil());
        turn.update(|log| log.start_step());
        let boundaries = std::sync::atomic::AtomicUsize::new(0);
        let boundary = |_wait: bool| {
            boundaries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async {}
        };
        let limits = ToolLimits::default();
        let (outcome, _) = run_steps(&turn, model, &Echo, limits, Box::new(request(tools)), &context(), boundary).await;
        (outcome, turn, boundaries.into_inner())
    }

    #[tokio::test]
    async fn tool_calls_run_between_steps_and_their_results_reach_the_next_call() {
        let model = Scripted::new(vec![
            vec![Ok(ModelEvent::text("Looking.")), call("a", "echo"), call("b", "broken")],
            vec![Ok(ModelEvent::text("It is a."))],
        ]);
        let (outcome, turn, boundaries) = run(&model, Echo.definitions(&context())).await;

        assert!(matches!(outcome, Outcome::Complete), "{outcome:?}");
        assert_eq!(boundaries, 1, "a checkpoint between the two steps");
        let chunks = turn.read(|log| log.chunks(1, log.len()));
        let steps = chunks.iter().filter(|c| matches!(c, UiChunk::StartStep)).count();
        let finished = chunks.iter().filter(|c| matches!(c, UiChunk::FinishStep)).count();
        assert_eq!((steps, finished), (2, 1), "the last step's finish comes with the turn's end");
        let mut answer = Answer::default();
        chunks.iter().for_each(|chunk| {
            answer.apply(chunk);
        });
        assert_eq!(answer.parts, turn.read(|log| log.parts()));
        assert_eq!(answer.text(), "Looking.It is a.");
        let states: Vec<ToolState> = answer
            .parts
            .iter()
            .filter_map(|p| match p {
                MessagePart::Tool(tool) => Some(tool.state),
                _ => None,
            })
            .collect();
        assert_eq!(states, [ToolState::OutputAvailable, ToolState::OutputError]);

        let requests = model.requests.lock().expect("lock");
        assert_eq!(requests.len(), 2);
        let echoed = &requests[1].messages[1];
        assert_eq!(echoed.role, PromptRole::Assistant, "the second call sees the first step's calls and results");
        assert!(
            echoed
                .parts
                .iter()
                .any(|p| matches!(p, MessagePart::Tool(t) if t.output == Some(json!({"echo": {"n": "a"}}))))
        );
    }

    #[tokio::test]
    async fn a_model_that_keeps_calling_tools_is_stopped_at_the_step_cap() {
        let max = ToolLimits::default().max_steps;
        let scripts = (0..max + 2).map(|i| vec![call(&format!("c{i}"), "echo")]).collect();
        let model = Scripted::new(scripts);
        let (outcome, _, boundaries) = run(&model, Echo.definitions(&context())).await;
        assert!(matches!(&outcome, Outcome::Failed(message) if message.contains("TOOL_MAX_STEPS")), "{outcome:?}");
        assert_eq!(model.requests.lock().expect("lock").len(), max);
        assert_eq!(boundaries, max);
    }

    #[tokio::test]
    async fn without_offered_tools_a_plain_answer_takes_one_step_and_keeps_no_prompt() {
        let model = Scripted::new(vec![vec![Ok(ModelEvent::text("Hi."))], vec![Ok(ModelEvent::text("never"))]]);
        let (outcome, turn, boundaries) = run(&model, Vec::new()).await;
        assert!(matches!(outcome, Outcome::Complete));
        assert_eq!((boundaries, model.requests.lock().expect("lock").len()), (0, 1));
        assert_eq!(turn.read(|log| log.text()), "Hi.");
    }

    #[tokio::test]
    async fn a_failure_in_a_later_step_keeps_what_the_earlier_ones_wrote() {
        let model = Scripted::new(vec![
            vec![Ok(ModelEvent::text("First.")), call("a", "echo")],
            vec![Ok(ModelEvent::text("Sec")), Err(ModelError::Timeout)],
        ]);
        let (outcome, turn, _) = run(&model, Echo.definitions(&context())).await;
        assert!(matches!(outcome, Outcome::Failed(_)));
        assert_eq!(turn.read(|log| log.text()), "First.Sec");
    }

    #[tokio::test]
    async fn a_call_that_needs_approval_ends_the_turn_waiting_and_the_others_run() {
        let model = Scripted::new(vec![vec![call("a", "echo"), call("w", "ask")], vec![Ok(ModelEvent::text("never"))]]);
        let (outcome, turn, _) = run(&model, Echo.definitions(&context())).await;
        assert!(matches!(outcome, Outcome::Complete));
        assert_eq!(model.requests.lock().expect("lock").len(), 1, "the model is not asked again yet");
        let parts = turn.read(|log| log.parts());
        assert!(waiting_for_approval(&parts));
        let request = parts
            .iter()
            .find_map(|p| match p {
                MessagePart::Data(data) if data.kind == APPROVAL_PART => Some(data.data.clone()),
                _ => None,
            })
            .expect("an approval request");
        assert_eq!((request["toolCallId"].as_str(), request["source"].as_str()), (Some("w"), Some("echoes")));
        assert!(request["expiresAt"].as_str().is_some_and(|at| at.ends_with('Z')));
        let states: Vec<(String, ToolState)> = parts
            .iter()
            .filter_map(|p| match p {
                MessagePart::Tool(tool) => Some((tool.tool_call_id.clone(), tool.state)),
                _ => None,
            })
            .collect();
        assert_eq!(states, [("a".into(), ToolState::OutputAvailable), ("w".into(), ToolState::InputAvailable)]);

        // The user allows it: the continuation runs the call first, then asks the model with both results.
        let mut answered = parts.clone();
        for part in &mut answered {
            if let MessagePart::Data(data) = part {
                data.data["state"] = json!("approved");
            }
        }
        let log = crate::engine::log::TurnLog::continuing(&answered, 10);
        let turn = LiveTurn::with_log(Uuid::nil(), Uuid::nil(), log);
        let model = Scripted::new(vec![vec![Ok(ModelEvent::text("Both done."))]]);
        let limits = ToolLimits::default();
        let tools = Echo.definitions(&context());
        let (outcome, _) =
            run_steps(&turn, &model, &Echo, limits, Box::new(request_with(tools)), &context(), |_| async {}).await;
        assert!(matches!(outcome, Outcome::Complete), "{outcome:?}");
        let parts = turn.read(|log| log.parts());
        assert!(parts.iter().any(|p| matches!(p, MessagePart::Tool(t) if t.tool_call_id == "w"
            && t.state == ToolState::OutputAvailable)));
        let requests = model.requests.lock().expect("lock");
        let answer = requests[0].messages.last().expect("the answer so far");
        assert_eq!(answer.role, PromptRole::Assistant);
        assert_eq!(shared::text_of(&parts), "Both done.");
    }

    #[tokio::test]
    async fn stop_during_a_tool_call_cancels_it_and_keeps_the_finished_ones() {
        let model = Scripted::new(vec![vec![call("a", "echo"), call("h", "hang")]]);
        let turn = LiveTurn::new(Uuid::nil(), Uuid::nil());
        turn.update(|log| log.start_step());
        let stopper = {
            let turn = turn.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                turn.cancel(CancelReason::Stopped);
            })
        };
        let tools = Echo.definitions(&context());
        let (outcome, _) =
            run_steps(&turn, &model, &Echo, ToolLimits::default(), Box::new(request(tools)), &context(), |_| async {})
                .await;
        stopper.await.expect("stopper");
        assert!(matches!(outcome, Outcome::Stopped), "{outcome:?}");
        let tools: Vec<(String, ToolState, Option<String>)> = turn
            .read(|log| log.parts())
            .into_iter()
            .filter_map(|p| match p {
                MessagePart::Tool(t) => Some((t.tool_call_id, t.state, t.error_text)),
                _ => None,
            })
            .collect();
        assert_eq!(tools[0].1, ToolState::OutputAvailable, "the finished call keeps its result");
        assert_eq!(
            (tools[1].1, tools[1].2.as_deref()),
            (ToolState::OutputError, Some("stopped by the user before the tool answered"))
        );
    }
}
