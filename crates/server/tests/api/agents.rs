//! Agents of every kind, against the fake workspace's agents: Responses-API agents on serving endpoints
//! (`agent/v1/responses`, `agent/v2/responses`), ChatAgent (`agent/v2/chat`), chat-completions agents
//! (`agent/v1/chat`), and agents served by Databricks Apps (`CHAT_AGENTS`: an MLflow AgentServer and an Agent Bricks
//! app). What streams is what is stored and what the agent said, once; what the agent is sent (context, trace
//! options, history); tool calls, citations, errors, trace ids, and stopping.

use std::time::{Duration, Instant};

use fake_databricks::agents::content::{TOOL_NAME, citation, tool_input, tool_output};
use fake_databricks::agents::{AgentDirectives, StreamEnd, StreamOutcome, TRACE_HEADER, trace_id_of};
use fake_databricks::scenario::{Directives, numbered_text};
use fake_databricks::{FakeEndpoint, FakeWorkspace, RecordedRequest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::config::EnvMap;
use shared::{Answer, MessagePage, MessagePart, MessageStatus, ToolPart, ToolState, UiChunk, UiMessage};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, TestApp, test_env};
use crate::streams::{Streamed, chunks_of};
use crate::turns::wait_for_answer;

const PAT: &str = "dapi-agents";

/// The kinds of agent the app speaks to, each registered once in the fake workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `agent/v1/responses` on Model Serving.
    ServingResponses,
    /// `agent/v2/responses` on Model Serving (a supervisor).
    ServingSupervisor,
    /// `agent/v2/chat`.
    ChatAgent,
    /// `agent/v1/chat`: chat completions.
    CompletionsAgent,
    /// An MLflow AgentServer served by a Databricks App.
    AppServer,
    /// An Agent Bricks app.
    AppBricks,
}

const EVERY_KIND: [Kind; 6] = [
    Kind::ServingResponses,
    Kind::ServingSupervisor,
    Kind::ChatAgent,
    Kind::CompletionsAgent,
    Kind::AppServer,
    Kind::AppBricks,
];

/// The kinds that speak the Responses API.
const RESPONSES_KINDS: [Kind; 4] = [Kind::ServingResponses, Kind::ServingSupervisor, Kind::AppServer, Kind::AppBricks];

impl Kind {
    /// The id users pick.
    fn model(self) -> &'static str {
        match self {
            Kind::ServingResponses => "support-agent",
            Kind::ServingSupervisor => "supervisor",
            Kind::ChatAgent => "legacy-chat-agent",
            Kind::CompletionsAgent => "chat-model-agent",
            Kind::AppServer => "assistant-app",
            Kind::AppBricks => "bricks-app",
        }
    }

    /// Where the app calls it, on the fake.
    fn path(self) -> &'static str {
        match self {
            Kind::ServingResponses | Kind::ServingSupervisor => "/serving-endpoints/responses",
            Kind::ChatAgent => "/serving-endpoints/legacy-chat-agent/invocations",
            Kind::CompletionsAgent => "/serving-endpoints/chat/completions",
            Kind::AppServer => "/apps/assistant/responses",
            Kind::AppBricks => "/apps/bricks-sales/api/invocations",
        }
    }

    fn speaks_responses(self) -> bool {
        RESPONSES_KINDS.contains(&self)
    }

    /// The text the fake's agent of this kind answers `message` with.
    fn expected_text(self, message: &str) -> String {
        match self {
            Kind::CompletionsAgent => Directives::parse(message).unwrap_or_default().answer_tokens(message).concat(),
            _ => AgentDirectives::parse(message).unwrap_or_default().answer_text(message),
        }
    }
}

/// The app on a fake workspace with an agent endpoint of every task, a chat model, and two agent apps.
async fn agent_app(connect: PgConnectOptions, extra: &[(&str, &str)]) -> TestApp {
    let fake = FakeWorkspace::start().await;
    fake.workspace().add_pat(PAT);
    fake.workspace().set_serving_endpoints(vec![
        FakeEndpoint::chat("databricks-meta-llama-3-3-70b-instruct"),
        FakeEndpoint::new(Kind::ServingResponses.model(), "agent/v1/responses"),
        FakeEndpoint::new(Kind::ServingSupervisor.model(), "agent/v2/responses"),
        FakeEndpoint::new(Kind::ChatAgent.model(), "agent/v2/chat"),
        FakeEndpoint::new(Kind::CompletionsAgent.model(), "agent/v1/chat"),
    ]);
    let apps = format!(
        "{}={url}/apps/assistant,{}={url}/apps/bricks-sales",
        Kind::AppServer.model(),
        Kind::AppBricks.model(),
        url = fake.url()
    );
    let mut env: EnvMap = test_env()
        .with("DATABRICKS_HOST", &fake.url())
        .with("DATABRICKS_TOKEN", PAT)
        .with("CHAT_AGENTS", &apps)
        .with("TITLE_GENERATION", "false")
        .with("CHECKPOINT_INTERVAL_MS", "100")
        .with("LLM_RETRY_BASE_DELAY_MS", "20");
    for (name, value) in extra {
        env = env.with(name, value);
    }
    TestApp::spawn_with_fake(connect, fake, env).await
}

fn ask(chat_id: Uuid, kind: Kind, message: &str) -> Value {
    json!({"id": chat_id, "message": message, "model": kind.model()})
}

/// The answer a client assembles from the stream.
fn streamed_answer(turn: &Streamed) -> Answer {
    let mut answer = Answer::default();
    for chunk in turn.chunks() {
        answer.apply(&chunk);
    }
    answer
}

/// The calls the app made to one kind of agent.
fn calls(app: &TestApp, kind: Kind) -> Vec<RecordedRequest> {
    app.fake()
        .requests()
        .into_iter()
        // A ChatAgent's body names no model: its path does.
        .filter(|r| r.path == kind.path() && (kind == Kind::ChatAgent || r.body["model"] == kind.model()))
        .collect()
}

fn tools(message: &UiMessage) -> Vec<&ToolPart> {
    message
        .parts
        .iter()
        .filter_map(|part| match part {
            MessagePart::Tool(tool) => Some(tool),
            _ => None,
        })
        .collect()
}

async fn messages(app: &TestApp, chat_id: Uuid) -> (MessagePage, Value) {
    let response = app.get(ALICE, &format!("/api/chats/{chat_id}/messages")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json);
    (response.parse(), response.json)
}

/// Asserts an answer completed with `expected` as its text, streamed and stored alike, and returns what was stored.
async fn assert_once(app: &TestApp, chat_id: Uuid, turn: &Streamed, expected: &str, what: &str) -> UiMessage {
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{what}: {}", turn.raw);
    let streamed = streamed_answer(turn);
    let stored = wait_for_answer(app, chat_id).await;
    assert_eq!(streamed.text(), expected, "{what}: the streamed text is the agent's, once");
    assert_eq!(stored.text(), expected, "{what}: the stored text is the agent's, once");
    assert_eq!(streamed.parts, stored.parts, "{what}: the client rebuilds exactly the stored parts");
    stored
}

#[sqlx::test(migrations = false)]
async fn every_kind_of_agent_is_listed_as_an_agent(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = agent_app(connect, &[]).await;

    let list: shared::ModelList = app.get(ALICE, "/api/models").await.parse();

    for kind in EVERY_KIND {
        let entry = list.models.iter().find(|m| m.id == kind.model());
        assert_eq!(entry.map(|m| m.kind), Some(shared::ModelKind::Agent), "{kind:?}: {list:?}");
    }
    let chat = list.models.iter().find(|m| m.id == "databricks-meta-llama-3-3-70b-instruct").map(|m| m.kind);
    assert_eq!(chat, Some(shared::ModelKind::Model));
}

#[sqlx::test(migrations = false)]
async fn every_kind_of_agent_streams_its_answer_once_and_stores_what_streamed(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = agent_app(connect, &[]).await;

    for kind in EVERY_KIND {
        // Act
        let chat_id = Uuid::new_v4();
        let message = "Hello agent [[fake tokens=6 iterations=2]]";
        let turn = app.post_chat(ALICE, ask(chat_id, kind, message)).await;

        // Assert: one call, in the kind's own protocol, and the same text everywhere.
        let expected = kind.expected_text(message);
        assert!(expected.ends_with(&numbered_text(6)), "{kind:?}: {expected}");
        let stored = assert_once(&app, chat_id, &turn, &expected, &format!("{kind:?}")).await;
        assert_eq!(stored.metadata.model.as_deref(), Some(kind.model()));
        // Usage: a Responses agent reports it per iteration; the answer's is their sum.
        let written = match kind {
            Kind::CompletionsAgent => 6,
            _ => {
                let directives = AgentDirectives::parse(message).unwrap_or_default();
                let count = directives.iteration_count();
                (1..=count).map(|index| directives.iteration_tokens(index, count, message).len()).sum::<usize>()
            }
        };
        let output_tokens = stored.metadata.usage.and_then(|usage| usage.output_tokens);
        assert_eq!(output_tokens, Some(written as i64), "{kind:?}: {:?}", stored.metadata.usage);
        assert_eq!(calls(&app, kind).len(), 1, "{kind:?}: one call at {}", kind.path());
    }
}

#[sqlx::test(migrations = false)]
async fn supervisor_and_knowledge_assistant_streams_are_never_doubled(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = agent_app(connect, &[]).await;
    let messages = [
        // Multi-Agent Supervisor: text only in done items, an agent-name item first.
        "Who knows? [[fake done_only=1 agent_name=genie tokens=5 reasoning=2]]",
        // Knowledge Assistant: the done item's text has a footnote the deltas lacked.
        "Cite it [[fake footnote=1 cite=2 tokens=5]]",
        // Several model iterations in one stream, each its own text item.
        "Think hard [[fake iterations=3 tokens=4 reasoning=3]]",
    ];

    for kind in RESPONSES_KINDS {
        for message in messages {
            let chat_id = Uuid::new_v4();
            let turn = app.post_chat(ALICE, ask(chat_id, kind, message)).await;

            let what = format!("{kind:?} / {message}");
            let expected = kind.expected_text(message);
            let stored = assert_once(&app, chat_id, &turn, &expected, &what).await;
            assert!(!stored.text().contains("[^1]"), "{what}: the footnote of the done item is not added");
            let directives = AgentDirectives::parse(message).unwrap_or_default();
            let reasoning: String = stored.parts.iter().filter(|p| p.is_reasoning()).map(MessagePart::text).collect();
            let words = directives.base.reasoning;
            let expected_reasoning: String =
                (1..=words).map(|i| if i == 1 { format!("r{i}") } else { format!(" r{i}") }).collect();
            assert_eq!(reasoning, expected_reasoning, "{what}: reasoning once");
            if let Some(name) = &directives.agent_name {
                // The supervisor's `<name>` item names who answers; it is kept once, and is not answer text.
                let naming: Vec<&MessagePart> = stored
                    .parts
                    .iter()
                    .filter(|p| serde_json::to_string(p).is_ok_and(|json| json.contains(name.as_str())))
                    .collect();
                assert_eq!(naming.len(), 1, "{what}: {:?}", stored.parts);
                assert!(!naming[0].is_text() && !stored.text().contains("<name>"), "{what}: {:?}", naming[0]);
            }
        }
    }
}

#[sqlx::test(migrations = false)]
async fn agents_are_sent_the_chat_the_user_and_the_trace_options(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = agent_app(connect, &[]).await;

    for kind in EVERY_KIND {
        let chat_id = Uuid::new_v4();
        let turn = app.post_chat(ALICE, ask(chat_id, kind, "Who am I? [[fake tokens=2]]")).await;
        assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{kind:?}: {}", turn.raw);

        let call = calls(&app, kind).pop().unwrap_or_else(|| panic!("{kind:?}: no call"));
        match kind {
            Kind::CompletionsAgent => {
                // A chat-completions agent is called like a chat model, with the context added.
                assert_eq!(call.body["model"], kind.model());
                assert_eq!(call.body["context"], json!({"conversation_id": chat_id, "user_id": ALICE}));
                assert_eq!(
                    call.body["messages"].as_array().and_then(|m| m.last()).map(|m| m["role"].clone()),
                    Some(json!("user"))
                );
            }
            Kind::ChatAgent => {
                let context = json!({"conversation_id": chat_id, "user_id": ALICE});
                assert_eq!(call.body["context"], context, "{kind:?}");
                assert_eq!(call.body["stream"], true);
                assert_eq!(call.body["messages"][0]["content"], "Who am I? [[fake tokens=2]]");
            }
            _ => {
                let context = json!({"conversation_id": chat_id, "user_id": ALICE});
                assert_eq!(call.body["context"], context, "{kind:?}");
                assert_eq!(call.body["databricks_options"]["return_trace"], true, "{kind:?}");
                assert_eq!(call.headers.get(TRACE_HEADER).map(String::as_str), Some("true"), "{kind:?}");
                assert_eq!(call.body["model"], kind.model(), "{kind:?}");
                assert_eq!(call.body["stream"], true, "{kind:?}");
            }
        }
        assert_eq!(
            call.authorization.is_some(),
            !kind.path().starts_with("/apps/"),
            "{kind:?}: {:?}",
            call.authorization
        );
    }
}

#[sqlx::test(migrations = false)]
async fn the_next_turn_sends_the_history_with_each_tool_call_and_its_output(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = agent_app(connect, &[]).await;
    let first = "[[fake tool=1]] Find the handbook";

    for kind in [Kind::ServingResponses, Kind::AppServer, Kind::ChatAgent] {
        // Arrange: a first answer with a tool call between two texts.
        let chat_id = Uuid::new_v4();
        let turn = app.post_chat(ALICE, ask(chat_id, kind, first)).await;
        assert_once(&app, chat_id, &turn, &kind.expected_text(first), &format!("{kind:?}")).await;

        // Act
        let second = app.post_chat(ALICE, ask(chat_id, kind, "And then?")).await;

        // Assert: the history as the kind's items, the call paired with its output, nothing orphaned.
        assert_eq!(second.final_status(), Some(MessageStatus::Complete), "{kind:?}: {}", second.raw);
        let call = calls(&app, kind).pop().expect("the second call");
        let question = "Find the handbook";
        if kind.speaks_responses() {
            let input = call.body["input"].as_array().cloned().unwrap_or_default();
            let shape: Vec<String> = input
                .iter()
                .map(|item| item["type"].as_str().or(item["role"].as_str()).unwrap_or("?").to_owned())
                .collect();
            assert_eq!(
                shape,
                ["user", "assistant", "function_call", "function_call_output", "assistant", "user"],
                "{kind:?}: {input:?}"
            );
            assert_eq!(input[0]["content"], first);
            assert_eq!(input[1]["content"], json!([{"type": "output_text", "text": "Step 1 of 2. "}]));
            assert_eq!(input[2]["name"], TOOL_NAME);
            assert_eq!(input[2]["call_id"], input[3]["call_id"], "{kind:?}: the output answers its call");
            let arguments: Value =
                serde_json::from_str(input[2]["arguments"].as_str().unwrap_or_default()).unwrap_or_default();
            assert_eq!(arguments, tool_input(question));
            let output: Value =
                serde_json::from_str(input[3]["output"].as_str().unwrap_or_default()).unwrap_or_default();
            assert_eq!(output, tool_output(question));
            assert_eq!(input[4]["content"], json!([{"type": "output_text", "text": format!("You said: {question}")}]));
            assert_eq!(input[5]["content"], "And then?");
        } else {
            let history = call.body["messages"].as_array().cloned().unwrap_or_default();
            let roles: Vec<&str> = history.iter().filter_map(|m| m["role"].as_str()).collect();
            assert_eq!(roles, ["user", "assistant", "assistant", "tool", "assistant", "user"], "{history:?}");
            let call_id = history[2]["tool_calls"][0]["id"].clone();
            assert_eq!(history[3]["tool_call_id"], call_id, "the result answers its call");
            assert_eq!(history[3]["name"], TOOL_NAME);
            assert_eq!(history[1]["content"], "Step 1 of 2. ");
            assert_eq!(history[4]["content"], format!("You said: {question}"));
        }
    }
}

#[sqlx::test(migrations = false)]
async fn a_tool_call_cut_short_by_stop_is_left_out_of_the_next_turn(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = agent_app(connect, &[]).await;

    for kind in [Kind::ServingResponses, Kind::ChatAgent] {
        // Arrange: the answer is stopped while the agent's tool runs, so its call has no result.
        let chat_id = Uuid::new_v4();
        let mut stream = app.open_chat(ALICE, ask(chat_id, kind, "[[fake tool=1 tool_pause_ms=3000]] Check")).await;
        stream.read_until(|c| matches!(c, UiChunk::ToolInputAvailable { .. })).await;
        let stop = app.json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/stop"), json!({})).await;
        assert_eq!(stop.json["status"], "stopped", "{kind:?}: {}", stop.json);
        stream.rest().await;
        let stopped = wait_for_answer(&app, chat_id).await;
        assert_eq!(stopped.text(), "Step 1 of 2. ", "{kind:?}");

        // Act
        let next = app.post_chat(ALICE, ask(chat_id, kind, "Next")).await;

        // Assert: the text went back, the call without a result did not.
        assert_eq!(next.final_status(), Some(MessageStatus::Complete), "{kind:?}: {}", next.raw);
        let call = calls(&app, kind).pop().expect("the second call");
        let items = call.body.get("input").or_else(|| call.body.get("messages")).cloned().unwrap_or_default();
        let sent = items.to_string();
        assert!(sent.contains("Step 1 of 2. "), "{kind:?}: {sent}");
        assert!(
            !sent.contains("function_call") && !sent.contains("tool_calls") && !sent.contains("\"tool\""),
            "{kind:?}: no orphaned call: {sent}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn an_agents_tool_call_is_stored_as_a_provider_executed_dynamic_tool(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = agent_app(connect, &[]).await;
    let message = "What does the handbook say? [[fake tool=1 tokens=3]]";
    let question = "What does the handbook say?";

    for kind in [Kind::ServingResponses, Kind::ChatAgent, Kind::AppServer, Kind::AppBricks] {
        let chat_id = Uuid::new_v4();
        let turn = app.post_chat(ALICE, ask(chat_id, kind, message)).await;

        let stored = assert_once(&app, chat_id, &turn, &kind.expected_text(message), &format!("{kind:?}")).await;
        let tools = tools(&stored);
        assert_eq!(tools.len(), 1, "{kind:?}: {:?}", stored.parts);
        let tool = tools[0];
        assert_eq!((tool.tool_name.as_str(), tool.state), (TOOL_NAME, ToolState::OutputAvailable), "{kind:?}");
        assert_eq!(tool.input.as_ref(), Some(&tool_input(question)), "{kind:?}");
        assert_eq!(tool.output.as_ref(), Some(&tool_output(question)), "{kind:?}");
        assert_eq!(tool.provider_executed, Some(true), "{kind:?}: the agent ran it");
        let kinds: Vec<&str> = stored
            .parts
            .iter()
            .filter_map(|p| match p {
                MessagePart::Text { .. } => Some("text"),
                MessagePart::Tool(_) => Some("tool"),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, ["text", "tool", "text"], "{kind:?}: the card sits between the texts");
        let (_, raw) = messages(&app, chat_id).await;
        let part = raw["messages"][1]["parts"]
            .as_array()
            .and_then(|parts| parts.iter().find(|p| p["toolName"] == TOOL_NAME))
            .cloned();
        let part = part.unwrap_or_default();
        assert_eq!(part["type"], "dynamic-tool", "{kind:?}: {part}");
        assert_eq!(part["providerExecuted"], true, "{kind:?}: {part}");
        assert_eq!(part["state"], "output-available", "{kind:?}: {part}");
    }
}

#[sqlx::test(migrations = false)]
async fn a_reload_while_the_agent_runs_its_tool_shows_the_card_with_its_input(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = agent_app(connect, &[]).await;
    let message = "Look it up [[fake tool=1 tool_pause_ms=1500 tokens=2]]";

    for kind in [Kind::ServingResponses, Kind::ChatAgent] {
        let chat_id = Uuid::new_v4();
        let mut stream = app.open_chat(ALICE, ask(chat_id, kind, message)).await;
        let seen = stream.read_until(|c| matches!(c, UiChunk::ToolInputAvailable { .. })).await;
        assert!(chunks_of(&seen).iter().any(|c| matches!(c, UiChunk::ToolInputAvailable { .. })), "{kind:?}");

        // Act: the page is reloaded while the agent's tool runs.
        let deadline = Instant::now() + Duration::from_secs(1);
        let card = loop {
            let (page, _) = messages(&app, chat_id).await;
            let answer = page.messages.last().cloned().expect("the answer");
            if let Some(tool) = tools(&answer).first().map(|t| (*t).clone()) {
                break Some((answer.metadata.status, answer.text(), tool));
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };

        // Assert: the card with its complete input, the text before it, the answer still running.
        let (status, text, tool) = card.unwrap_or_else(|| panic!("{kind:?}: no tool card while the tool ran"));
        assert_eq!(status, MessageStatus::Streaming, "{kind:?}");
        assert_eq!(text, "Step 1 of 2. ", "{kind:?}");
        assert_eq!(tool.state, ToolState::InputAvailable, "{kind:?}");
        assert_eq!(tool.input, Some(tool_input("Look it up")), "{kind:?}");
        assert_eq!(tool.output, None, "{kind:?}");
        let rest = stream.rest().await;
        let streamed = [chunks_of(&seen), chunks_of(&rest)].concat();
        let mut answer = Answer::default();
        streamed.iter().for_each(|chunk| {
            answer.apply(chunk);
        });
        assert_eq!(answer.text(), kind.expected_text(message), "{kind:?}");
        assert_eq!(wait_for_answer(&app, chat_id).await.parts, answer.parts, "{kind:?}");
    }
}

#[sqlx::test(migrations = false)]
async fn citations_are_stored_as_source_urls(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = agent_app(connect, &[]).await;
    let message = "Sources please [[fake cite=2 footnote=1 tokens=3]]";

    for kind in [Kind::ServingResponses, Kind::AppServer, Kind::AppBricks] {
        let chat_id = Uuid::new_v4();
        let turn = app.post_chat(ALICE, ask(chat_id, kind, message)).await;

        let stored = assert_once(&app, chat_id, &turn, &kind.expected_text(message), &format!("{kind:?}")).await;
        let sources: Vec<(String, Option<String>)> = stored
            .parts
            .iter()
            .filter_map(|p| match p {
                MessagePart::SourceUrl(source) => Some((source.url.clone(), source.title.clone())),
                _ => None,
            })
            .collect();
        let expected: Vec<(String, Option<String>)> = (1..=2)
            .map(|i| citation(i, 0))
            .map(|c| (c["url"].as_str().unwrap_or_default().to_owned(), c["title"].as_str().map(str::to_owned)))
            .collect();
        assert_eq!(sources, expected, "{kind:?}: each citation once, in order");
        let (_, raw) = messages(&app, chat_id).await;
        let types: Vec<&str> = raw["messages"][1]["parts"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p["type"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(types.iter().filter(|t| **t == "source-url").count(), 2, "{kind:?}: {types:?}");
    }
}

/// Asserts an answer ended with an error that is safe to show, keeping `text`.
async fn assert_failed_safely(app: &TestApp, chat_id: Uuid, turn: &Streamed, text: &str, what: &str) {
    assert_eq!(turn.final_status(), Some(MessageStatus::Error), "{what}: {}", turn.raw);
    let error = turn.error_text().unwrap_or_default();
    let stored = wait_for_answer(app, chat_id).await;
    assert_eq!(stored.metadata.status, MessageStatus::Error, "{what}");
    assert_eq!(stored.text(), text, "{what}: the text so far is kept");
    assert_eq!(streamed_answer(turn).text(), text, "{what}");
    let stored_error = stored.metadata.error.clone().unwrap_or_default();
    for message in [&error, &stored_error] {
        assert!(!message.trim().is_empty(), "{what}: an error message");
        assert!(message.chars().count() < 400, "{what}: short: {message}");
        let fake = app.fake().url();
        assert!(
            !message.contains('{') && !message.contains(&fake) && !message.contains(PAT) && !message.contains("Bearer"),
            "{what}: no upstream internals: {message}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn every_error_form_ends_the_answer_with_a_safe_error_and_keeps_the_text(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = agent_app(connect, &[]).await;
    let forms = ["type", "nested", "string", "databricks", "failed", "incomplete"];

    for kind in RESPONSES_KINDS {
        for form in forms {
            let chat_id = Uuid::new_v4();
            let turn = app.post_chat(ALICE, ask(chat_id, kind, &format!("[[fake tokens=4 error={form}]]"))).await;
            assert_failed_safely(&app, chat_id, &turn, &numbered_text(4), &format!("{kind:?} / {form}")).await;
        }
    }
    for form in ["string", "databricks", "type"] {
        let chat_id = Uuid::new_v4();
        let turn =
            app.post_chat(ALICE, ask(chat_id, Kind::ChatAgent, &format!("[[fake tokens=4 error={form}]]"))).await;
        assert_failed_safely(&app, chat_id, &turn, &numbered_text(4), &format!("ChatAgent / {form}")).await;
    }
    // Mid-text failures and a cut connection, for each protocol (the chat-completions agent's error event too).
    for kind in [Kind::ServingResponses, Kind::ChatAgent, Kind::CompletionsAgent, Kind::AppBricks] {
        let chat_id = Uuid::new_v4();
        let turn = app.post_chat(ALICE, ask(chat_id, kind, "[[fake tokens=6 fail_after=2]]")).await;
        assert_failed_safely(&app, chat_id, &turn, &numbered_text(2), &format!("{kind:?} / fail_after")).await;
        let chat_id = Uuid::new_v4();
        let turn = app.post_chat(ALICE, ask(chat_id, kind, "[[fake tokens=6 abort_after=3 delay_ms=10]]")).await;
        assert_failed_safely(&app, chat_id, &turn, &numbered_text(3), &format!("{kind:?} / abort_after")).await;
    }
    // Nothing is retried once text was shown.
    let serving_calls = calls(&app, Kind::ServingResponses).len();
    assert_eq!(serving_calls, forms.len() + 2);
}

#[sqlx::test(migrations = false)]
async fn an_agent_that_goes_silent_is_given_up_with_its_text_kept(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = agent_app(connect, &[("LLM_IDLE_TIMEOUT_SECS", "1")]).await;

    for kind in [Kind::ServingResponses, Kind::ChatAgent] {
        let chat_id = Uuid::new_v4();
        let turn = app.post_chat(ALICE, ask(chat_id, kind, "[[fake tokens=5 hang_after=2]]")).await;
        assert_failed_safely(&app, chat_id, &turn, &numbered_text(2), &format!("{kind:?}")).await;
        assert!(turn.error_text().unwrap_or_default().contains("stopped responding"), "{kind:?}");
    }
}

#[sqlx::test(migrations = false)]
async fn the_agents_trace_id_is_stored_and_returned(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = agent_app(connect, &[]).await;

    // The `{"trace_id"}` frame (AgentServer, asked by header) and the `databricks_output` of a done item (Model
    // Serving, asked by `databricks_options.return_trace`).
    let cases = [
        (Kind::ServingResponses, "[[fake tokens=3]]"),
        (Kind::ServingResponses, "[[fake tokens=3 trace=output]]"),
        (Kind::ServingSupervisor, "[[fake tokens=3 done_only=1 trace=output]]"),
        (Kind::AppServer, "[[fake tokens=3 tool=1]]"),
        (Kind::AppBricks, "[[fake tokens=3]]"),
    ];
    for (kind, message) in cases {
        let chat_id = Uuid::new_v4();
        let turn = app.post_chat(ALICE, ask(chat_id, kind, message)).await;

        let call = calls(&app, kind).pop().expect("a call");
        let expected = trace_id_of(&call.body);
        let what = format!("{kind:?} / {message}");
        assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{what}: {}", turn.raw);
        let streamed = turn.chunks().iter().find_map(|c| match c {
            UiChunk::Finish { message_metadata } => message_metadata.as_ref().and_then(|m| m.trace_id.clone()),
            _ => None,
        });
        assert_eq!(streamed.as_deref(), Some(expected.as_str()), "{what}: the finish carries the trace");
        let stored = wait_for_answer(&app, chat_id).await;
        assert_eq!(stored.metadata.trace_id.as_deref(), Some(expected.as_str()), "{what}: stored");
        let (_, raw) = messages(&app, chat_id).await;
        assert_eq!(raw["messages"][1]["metadata"]["trace_id"], expected, "{what}");
    }
    // Without a trace, none is made up.
    let chat_id = Uuid::new_v4();
    app.post_chat(ALICE, ask(chat_id, Kind::ServingResponses, "[[fake tokens=2 trace=none]]")).await;
    assert_eq!(wait_for_answer(&app, chat_id).await.metadata.trace_id, None);
}

#[sqlx::test(migrations = false)]
async fn stopping_an_answer_cancels_the_agents_request(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = agent_app(connect, &[]).await;

    for kind in [Kind::ServingResponses, Kind::ChatAgent, Kind::CompletionsAgent, Kind::AppServer, Kind::AppBricks] {
        // Arrange: a long answer, partly read.
        let chat_id = Uuid::new_v4();
        let mut stream = app.open_chat(ALICE, ask(chat_id, kind, "[[fake tokens=400 delay_ms=20]]")).await;
        let seen = stream.read_until_text("w5").await;

        // Act
        let stop = app.json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/stop"), json!({})).await;
        let rest = stream.rest().await;

        // Assert: stopped with its text, and the agent saw its client leave long before the end.
        assert_eq!(stop.json["status"], "stopped", "{kind:?}: {}", stop.json);
        let chunks = [chunks_of(&seen), chunks_of(&rest)].concat();
        assert!(chunks.iter().any(|c| matches!(c, UiChunk::Abort)), "{kind:?}");
        let stored = wait_for_answer(&app, chat_id).await;
        assert_eq!(stored.metadata.status, MessageStatus::Stopped, "{kind:?}");
        assert!(numbered_text(400).starts_with(&stored.text()) && stored.text().len() > 10, "{kind:?}");
        let conversation = chat_id.to_string();
        let deadline = Instant::now() + Duration::from_secs(3);
        let outcome = loop {
            let ended = app.fake().state().agents().stream_outcomes();
            // Chat completions carry no conversation id; this test makes one such call only.
            let ours = |o: &StreamOutcome| {
                o.conversation_id.as_deref() == Some(conversation.as_str())
                    || (kind == Kind::CompletionsAgent && o.path == kind.path())
            };
            if let Some(outcome) = ended.into_iter().find(ours) {
                break Some(outcome.end);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(outcome, Some(StreamEnd::ClientLeft), "{kind:?}: the upstream request was closed");
        assert_eq!(calls(&app, kind).len(), 1, "{kind:?}: and not sent again");
    }
}

#[sqlx::test(migrations = false)]
async fn an_agents_new_chat_is_titled_by_a_model_that_writes_titles(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: titles on; the chat's model is an agent, the workspace's default a chat model.
    let app = agent_app(connect, &[("TITLE_GENERATION", "true")]).await;
    let chat_id = Uuid::new_v4();

    // Act
    let turn = app.post_chat(ALICE, ask(chat_id, Kind::ServingResponses, "Plan the offsite")).await;
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);

    // Assert: the title came from the chat model, and the agent was asked only for the answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.fake().requests_for("databricks-meta-llama-3-3-70b-instruct").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no title request");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(calls(&app, Kind::ServingResponses).len(), 1, "the agent writes no titles");
}
