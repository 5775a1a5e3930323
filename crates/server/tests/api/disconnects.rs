//! Clients that go away at awkward moments: a turn the server stored must be answered whatever the request
//! that started it does (regressions found by `loadtest faults`).

use std::time::{Duration, Instant};

use fake_databricks::scenario::numbered_text;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, TestApp};

/// Makes every commit that stored a user message take `secs` seconds (a deferred trigger sleeps at commit),
/// so a test can act while the turn's transaction is committing.
async fn slow_down_commits_of_user_messages(app: &TestApp, secs: f64) {
    sqlx::raw_sql(&format!(
        "create function chat.slow_commit() returns trigger language plpgsql as $$
         begin perform pg_sleep({secs}); return null; end $$;
         create constraint trigger slow_commit after insert on chat.messages
             deferrable initially deferred for each row when (new.role = 'user')
             execute function chat.slow_commit();"
    ))
    .execute(&app.db)
    .await
    .expect("install the slow commit trigger");
}

async fn answer_status(app: &TestApp, chat_id: Uuid) -> Option<String> {
    sqlx::query_scalar("select status from chat.messages where chat_id = $1 and role = 'assistant'")
        .bind(chat_id)
        .fetch_optional(&app.db)
        .await
        .expect("read the answer")
}

#[sqlx::test(migrations = false)]
async fn a_client_leaving_while_its_turn_is_committed_still_gets_the_turn_answered(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: the turn's commit takes a second.
    let app = TestApp::spawn_with_model(connect).await;
    slow_down_commits_of_user_messages(&app, 1.0).await;
    let chat_id = Uuid::new_v4();

    // Act: the client gives up while the server commits the turn (the request is dropped, the connection closed).
    let request = app
        .request(Some(ALICE), Method::POST, "/api/chat")
        .json(&json!({"id": chat_id, "message": "[[fake tokens=3]]"}))
        .timeout(Duration::from_millis(400));
    assert!(request.send().await.is_err(), "the client leaves before the response");

    // Assert: the stored turn is answered anyway, and the chat takes the next message.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = answer_status(&app, chat_id).await;
    while status.as_deref() != Some("complete") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = answer_status(&app, chat_id).await;
    }
    assert_eq!(status.as_deref(), Some("complete"), "the committed turn was answered, not left streaming");
    let page = app.get(ALICE, &format!("/api/chats/{chat_id}/messages")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.json["messages"][1]["parts"][0]["text"], numbered_text(3));
    let next = app.post_chat(ALICE, json!({"id": chat_id, "message": "[[fake tokens=2]]"})).await;
    assert_eq!(next.status, StatusCode::OK, "the chat is not blocked by a turn nobody runs: {}", next.raw);
    assert_eq!(next.text(), numbered_text(2));
}
