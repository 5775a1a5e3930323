//! A running turn: a loop of steps (a model call, then the tool calls it asked for, fed back to the next call)
//! until the model answers, fails, is stopped, or uses up [`MAX_STEPS`]; then its end is stored.

use std::future::Future;
use std::sync::Arc;

use shared::{Content, MessagePart, Usage};

use super::finish::{self, Outcome};
use super::live::{CancelReason, LiveTurn};
use super::step::{self, StepEnd, StepReport};
use super::{Inner, checkpoint};
use crate::llm::{ChatModel, ModelRequest, PromptMessage, PromptRole};
use crate::tools::{ToolCall, ToolContext, ToolRunner};

/// Most model calls one answer may take (the first, and one after each round of tool calls).
pub(super) const MAX_STEPS: usize = 5;

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
    let boundary = || Box::pin(checkpoint::write_now(&inner, &turn));
    let (outcome, report) = run_steps(&turn, model.as_ref(), inner.tools.as_ref(), request, &context, boundary).await;
    Box::pin(finish::finish(inner.clone(), turn.clone(), outcome, report)).await;
}

/// The loop of steps; `at_boundary` runs between two steps (a checkpoint, so a replica that takes over sees
/// every finished step).
pub(super) async fn run_steps<F, Fut>(
    turn: &LiveTurn,
    model: &dyn ChatModel,
    tools: &dyn ToolRunner,
    request: Box<ModelRequest>,
    context: &ToolContext,
    at_boundary: F,
) -> (Outcome, StepReport)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut total = StepReport::default();
    // The prompt is only kept for later steps when tools were offered: a plain answer has one step, and holding a
    // long history for as long as the answer streams would cost every running turn its size in memory. Requests
    // are boxed for the same reason: the task holds a pointer, not the request.
    let template = (!request.tools.is_empty()).then(|| request.clone());
    let mut next = Some(request);
    for step in 1..=MAX_STEPS {
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
        at_boundary().await;
        if let Some(reason) = Box::pin(run_tools(turn, tools, &calls, context)).await {
            return (Outcome::cancelled(Some(reason)), total);
        }
        let Some(template) = &template else {
            // Tools the server never offered: their errors are shown, and the model is not asked again.
            return (Outcome::Complete, total);
        };
        if step == MAX_STEPS {
            break;
        }
        let answer_so_far = turn.read(|log| log.parts());
        next = Some(continued(template, answer_so_far));
        turn.update(|log| log.start_step());
    }
    let message = format!("the answer took more than {MAX_STEPS} rounds of tool calls; ask again to go on");
    (Outcome::Failed(message), total)
}

/// The request for the next step: the prompt, then the answer so far with its tool calls and their results.
fn continued(template: &ModelRequest, answer: Vec<MessagePart>) -> Box<ModelRequest> {
    let mut request = Box::new(template.clone());
    request.messages.push(PromptMessage { role: PromptRole::Assistant, parts: answer });
    request
}

/// Runs the step's tool calls together and logs each result; returns why the turn must end if it was asked to.
async fn run_tools(
    turn: &LiveTurn,
    tools: &dyn ToolRunner,
    calls: &[shared::ToolPart],
    context: &ToolContext,
) -> Option<CancelReason> {
    let calls: Vec<ToolCall> = calls
        .iter()
        .map(|part| ToolCall {
            id: part.tool_call_id.clone(),
            name: part.tool_name.clone(),
            input: part.input.clone().unwrap_or_default(),
        })
        .collect();
    let running = futures::future::join_all(calls.iter().map(|call| tools.run(call, context)));
    let results = tokio::select! {
        biased;
        () = turn.cancelled() => return Some(turn.cancel_reason().unwrap_or(CancelReason::Stopped)),
        results = running => results,
    };
    for (call, result) in calls.into_iter().zip(results) {
        turn.push(match result {
            Ok(output) => Content::tool_output(call.id, output),
            Err(error_text) => Content::tool_error(call.id, error_text),
        });
    }
    None
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

        fn run<'a>(&'a self, call: &'a ToolCall, _context: &'a ToolContext) -> BoxFuture<'a, Result<Value, String>> {
            Box::pin(async move {
                match call.name.as_str() {
                    "echo" => Ok(json!({"echo": call.input})),
                    other => Err(format!("{other} failed")),
                }
            })
        }
    }

    fn call(id: &str, name: &str) -> Result<ModelEvent, ModelError> {
        Ok(ModelEvent::Content(Content::tool_input(id, name, json!({"n": id}), false)))
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
        ToolContext { owner_id: "u@example.com".into(), chat_id: Uuid::nil() }
    }

    async fn run(model: &Scripted, tools: Vec<ToolDefinition>) -> (Outcome, Arc<LiveTurn>, usize) {
        let turn = LiveTurn::new(Uuid::nil(), Uuid::nil());
        turn.update(|log| log.start_step());
        let boundaries = std::sync::atomic::AtomicUsize::new(0);
        let boundary = || {
            boundaries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async {}
        };
        let (outcome, _) = run_steps(&turn, model, &Echo, Box::new(request(tools)), &context(), boundary).await;
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
        let scripts = (0..MAX_STEPS + 2).map(|i| vec![call(&format!("c{i}"), "echo")]).collect();
        let model = Scripted::new(scripts);
        let (outcome, _, boundaries) = run(&model, Echo.definitions(&context())).await;
        assert!(
            matches!(&outcome, Outcome::Failed(message) if message.contains("rounds of tool calls")),
            "{outcome:?}"
        );
        assert_eq!(model.requests.lock().expect("lock").len(), MAX_STEPS);
        assert_eq!(boundaries, MAX_STEPS);
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
}
