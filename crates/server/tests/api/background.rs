//! Long-running agents (background mode): an agent app that keeps its runs (MLflow `LongRunningAgentServer`) is
//! called with `background: true`; a cut connection to it is taken up again from the last event read, and an
//! answer whose server restarts is re-attached to the run instead of being stored as interrupted.

use std::time::{Duration, Instant};

use fake_databricks::FakeWorkspace;
use fake_databricks::scenario::numbered_text;
use reqwest::StatusCode;
use serde_json::json;
use server::config::EnvMap;
use shared::{MessagePage, MessageStatus, Role, UiMessage};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, TestApp, test_env};

const AGENT: &str = "runner";

fn env(fake: &FakeWorkspace) -> EnvMap {
    test_env()
        .with("CHAT_AGENTS", &format!("{AGENT}={}/apps/durable-runner", fake.url()))
        .with("TITLE_GENERATION", "false")
        .with("CHECKPOINT_INTERVAL_MS", "100")
        .with("LLM_RETRY_BASE_DELAY_MS", "20")
        .with("SHUTDOWN_DRAIN_SECS", "1")
}

async fn answer(app: &TestApp, chat_id: Uuid) -> Option<UiMessage> {
    let page: MessagePage = app.get(ALICE, &format!("/api/chats/{chat_id}/messages")).await.parse();
    page.messages.into_iter().rev().find(|m| m.role == Role::Assistant)
}

async fn wait_until(app: &TestApp, chat_id: Uuid, done: impl Fn(&UiMessage) -> bool) -> UiMessage {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(answer) = answer(app, chat_id).await
            && done(&answer)
        {
            return answer;
        }
        assert!(Instant::now() < deadline, "the answer did not get there in time: {:?}", answer(app, chat_id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn a_cut_connection_to_a_background_run_is_taken_up_again_without_a_lost_or_repeated_word(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange
    let fake = FakeWorkspace::start().await;
    let env = env(&fake);
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let chat_id = Uuid::new_v4();

    // Act: the agent's first connection drops after 12 events; the run goes on.
    let turn = app
        .post_chat(
            ALICE,
            json!({"id": chat_id, "model": AGENT, "message": "[[fake tokens=40 delay_ms=3 cut_after=12]]"}),
        )
        .await;

    // Assert: one whole answer, live and stored.
    assert_eq!(turn.status, StatusCode::OK, "{}", turn.raw);
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    assert_eq!(turn.text(), numbered_text(40));
    let stored = answer(&app, chat_id).await.expect("an answer");
    assert_eq!(stored.text(), numbered_text(40));
    let requests = app.fake().requests();
    let started = requests.iter().find(|r| r.path.ends_with("/apps/durable-runner/responses")).expect("started");
    assert_eq!(started.body["background"], true, "started in background mode");
    assert!(
        requests.iter().any(|r| r.path.contains("/responses/resp_") && r.path.contains("starting_after=")),
        "taken up again from a cursor: {:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
}

#[sqlx::test(migrations = false)]
async fn an_answer_from_a_background_run_is_re_attached_after_the_server_restarts(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: a slow run, and a server that stops while it streams.
    let fake = FakeWorkspace::start().await;
    let first = TestApp::spawn_with(connect.clone(), env(&fake)).await;
    let chat_id = Uuid::new_v4();
    let opened = first
        .open_chat(ALICE, json!({"id": chat_id, "model": AGENT, "message": "[[fake tokens=80 delay_ms=40]]"}))
        .await;
    assert_eq!(opened.status, StatusCode::OK);
    wait_until(&first, chat_id, |a| a.text().split(' ').count() >= 10).await;

    // Act: a restart, past the drain deadline, while the run goes on upstream.
    first.shutdown().await;
    let mid = TestApp::client_only(String::new(), sqlx::PgPool::connect_with(connect.clone()).await.expect("pool"));
    let status: String =
        sqlx::query_scalar("select status from chat.messages where chat_id = $1 and role = 'assistant'")
            .bind(chat_id)
            .fetch_one(&mid.db)
            .await
            .expect("the answer");
    assert_eq!(status, "streaming", "left to be re-attached, not interrupted");
    let second = TestApp::spawn_with(connect, env(&fake)).await;

    // Assert: the restarted server completes it, every word once.
    let done = wait_until(&second, chat_id, |a| a.metadata.status.is_terminal()).await;
    assert_eq!(done.metadata.status, MessageStatus::Complete, "{:?}", done.metadata);
    assert_eq!(done.text(), numbered_text(80));
    // A client replaying the answer's events reads every word once too, across the hand-over.
    let replay = second.resume(ALICE, chat_id, Some(1)).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.text(), numbered_text(80));
}

#[sqlx::test(migrations = false)]
async fn a_run_the_agent_resumed_under_a_new_conversation_id_is_continued_under_it(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: the agent resumes the run after its own crash, moving the conversation to `<id>::attempt-2`.
    let fake = FakeWorkspace::start().await;
    let env = env(&fake);
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let chat_id = Uuid::new_v4();
    let first = app
        .post_chat(ALICE, json!({"id": chat_id, "model": AGENT, "message": "[[fake tokens=20 cut_after=6 resumed=1]]"}))
        .await;
    assert_eq!(first.final_status(), Some(MessageStatus::Complete), "{}", first.raw);
    assert_eq!(first.text(), numbered_text(20), "the resumption notice is not text");

    // Act
    let second = app.post_chat(ALICE, json!({"id": chat_id, "model": AGENT, "message": "And then?"})).await;

    // Assert: the next turn speaks of the conversation by its new id.
    assert_eq!(second.final_status(), Some(MessageStatus::Complete), "{}", second.raw);
    let last = app.fake().requests().into_iter().rev().find(|r| r.path.ends_with("/responses")).expect("a call");
    assert_eq!(last.body["context"]["conversation_id"], format!("{chat_id}::attempt-2"));
}
