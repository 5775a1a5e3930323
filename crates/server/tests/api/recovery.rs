//! Server processes that die or are stopped mid-answer: nothing is left streaming and no text is lost.

use std::time::{Duration, Instant};

use fake_databricks::FakeWorkspace;
use fake_databricks::scenario::numbered_text;
use reqwest::StatusCode;
use serde_json::json;
use shared::{MessagePage, MessageStatus};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, MODEL, ServerProcess, TestApp};
use crate::streams::{chunks_of, text_of};

fn model_vars(fake: &FakeWorkspace) -> Vec<(&'static str, String)> {
    vec![
        ("LLM_BASE_URL", fake.serving_base_url()),
        ("DATABRICKS_SERVING_ENDPOINT", MODEL.to_owned()),
        ("TRUST_FORWARDED_HEADERS", "true".to_owned()),
        ("TITLE_GENERATION", "false".to_owned()),
        ("CHECKPOINT_INTERVAL_MS", "100".to_owned()),
    ]
}

fn borrowed<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A client for a server process (the helpers' request builders with its address).
async fn client_for(process: &ServerProcess, connect: &PgConnectOptions) -> TestApp {
    let db = PgPoolOptions::new().connect_with(connect.clone()).await.expect("pool");
    TestApp::client_only(format!("http://{}", process.address()), db)
}

#[sqlx::test(migrations = false)]
async fn a_killed_servers_answer_is_stored_as_interrupted_with_its_text_at_the_next_start(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: a server process streaming a long answer.
    let fake = FakeWorkspace::start().await;
    let vars = model_vars(&fake);
    let url = connect.to_url_lossy().to_string();
    let mut first = ServerProcess::start(&url, &borrowed(&vars));
    let app = client_for(&first, &connect).await;
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, json!({"id": chat_id, "message": "[[fake tokens=500 delay_ms=20]]"})).await;
    let seen = stream.read_until_text("w15").await;
    tokio::time::sleep(Duration::from_millis(300)).await; // a checkpoint or two

    // Act: the process dies without a chance to clean up, then a new one starts.
    first.kill();
    drop(stream);
    let second = ServerProcess::start(&url, &borrowed(&vars));
    let app = client_for(&second, &connect).await;

    // Assert: recovered at start; when the dead process's database session outlived the start by a moment (its
    // lock still held: a loaded machine), by the periodic sweep soon after.
    let mut page: MessagePage = app.get(ALICE, &format!("/api/chats/{chat_id}/messages")).await.parse();
    for _ in 0..80 {
        if page.messages.last().is_some_and(|m| m.metadata.status == MessageStatus::Interrupted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        page = app.get(ALICE, &format!("/api/chats/{chat_id}/messages")).await.parse();
    }
    let answer = page.messages.last().expect("answer");
    assert_eq!(answer.metadata.status, MessageStatus::Interrupted, "recovered");
    assert!(answer.metadata.error.is_some());
    let seen_text = text_of(&chunks_of(&seen));
    assert!(
        answer.text().starts_with(&seen_text),
        "stored text keeps all the client saw: {} vs {seen_text}",
        answer.text()
    );
    assert!(numbered_text(500).starts_with(&answer.text()));
    assert_eq!(app.resume(ALICE, chat_id, None).await.status, StatusCode::NO_CONTENT);
    let replay = app.resume(ALICE, chat_id, Some(1)).await;
    assert_eq!(replay.final_status(), Some(MessageStatus::Interrupted), "a follower learns how it ended");
    let next = app.post_chat(ALICE, json!({"id": chat_id, "message": "[[fake tokens=3]]"})).await;
    assert_eq!(next.text(), numbered_text(3), "the chat accepts new turns");
}

#[sqlx::test(migrations = false)]
async fn sigterm_lets_the_running_answer_finish_then_exits_cleanly(_: PgPoolOptions, connect: PgConnectOptions) {
    let fake = FakeWorkspace::start().await;
    let mut vars = model_vars(&fake);
    vars.push(("SHUTDOWN_DRAIN_SECS", "10".to_owned()));
    let url = connect.to_url_lossy().to_string();
    let mut server = ServerProcess::start(&url, &borrowed(&vars));
    let app = client_for(&server, &connect).await;
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, json!({"id": chat_id, "message": "[[fake tokens=60 delay_ms=20]]"})).await;
    let mut seen = stream.read_until_text("w5").await;

    let started = Instant::now();
    let reader = tokio::spawn(async move { stream.rest().await });
    let status = tokio::task::spawn_blocking(move || server.terminate()).await.expect("join");
    seen.extend(reader.await.expect("reader"));

    assert!(status.success(), "exit status {status:?}");
    // Databricks Apps kills the process 15 s after SIGTERM: it must be gone before that, whatever the machine.
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(text_of(&chunks_of(&seen)), numbered_text(60));
    let stored: String = sqlx::query_scalar("select status from chat.messages where role = 'assistant'")
        .fetch_one(&app.db)
        .await
        .expect("row");
    assert_eq!(stored, "complete");
}

#[sqlx::test(migrations = false)]
async fn a_client_ahead_of_a_killed_servers_last_checkpoint_is_told_the_end_by_another_process(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: a client reads an answer live while the answer's checkpoints cannot be written (its row is locked),
    // so it has seen event ids the database never got.
    let fake = FakeWorkspace::start().await;
    let vars = model_vars(&fake);
    let url = connect.to_url_lossy().to_string();
    let mut first = ServerProcess::start(&url, &borrowed(&vars));
    let app = client_for(&first, &connect).await;
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, json!({"id": chat_id, "message": "[[fake tokens=500 delay_ms=20]]"})).await;
    stream.read_until_text("w3").await;
    let mut lock = app.db.begin().await.expect("transaction");
    sqlx::query("select 1 from chat.messages where role = 'assistant' for update")
        .execute(&mut *lock)
        .await
        .expect("lock the answer");
    let seen = stream.read_until_text("w30").await;
    let cursor = seen.iter().filter_map(|event| event.id).max().expect("event ids");

    // Act: the process dies; another one stores the answer as interrupted; the client resumes from its last id.
    first.kill();
    drop(stream);
    lock.rollback().await.expect("unlock");
    let stored: i64 = sqlx::query_scalar("select last_event_seq from chat.messages where role = 'assistant'")
        .fetch_one(&app.db)
        .await
        .expect("stored position");
    assert!(stored < cursor as i64, "the client is ahead of the stored log ({stored} < {cursor})");
    let second = ServerProcess::start(&url, &borrowed(&vars));
    let app = client_for(&second, &connect).await;
    for _ in 0..80 {
        let status: String = sqlx::query_scalar("select status from chat.messages where role = 'assistant'")
            .fetch_one(&app.db)
            .await
            .expect("status");
        if status != "streaming" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let resumed = app.resume(ALICE, chat_id, Some(cursor)).await;

    // Assert: the resumed stream ends with the answer's end, numbered after the client's last id.
    assert_eq!(resumed.status, StatusCode::OK);
    assert_eq!(resumed.final_status(), Some(MessageStatus::Interrupted), "{}", resumed.raw);
    assert!(resumed.events.iter().filter_map(|event| event.id).all(|id| id > cursor), "{}", resumed.raw);
}
