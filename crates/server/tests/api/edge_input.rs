//! Odd input at the edges of what the API accepts, much of it first sent by the API fuzzer
//! (`scripts/fuzz-api.sh`): each case gets a 4xx in the error envelope or a normal answer, never a 500, a panic
//! or a stream that does not end.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::json;
use shared::ChatPage;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, TestApp};

async fn message_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from chat.messages").fetch_one(&app.db).await.expect("count")
}

#[sqlx::test(migrations = false)]
async fn a_search_with_control_characters_treats_them_as_spaces(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn(connect).await;
    let chat = app.create_chat(ALICE, json!({"title": "Lakehouse report"})).await;

    // Act: PostgreSQL cannot take a NUL in text; a pasted tab or newline is just a separator.
    let with_nul = app.get(ALICE, "/api/chats?q=lake%00report").await;
    let with_newline = app.get(ALICE, "/api/chats?q=lake%0Arep").await;
    let only_controls = app.get(ALICE, "/api/chats?q=%00%01%1F").await;

    // Assert
    for response in [&with_nul, &with_newline, &only_controls] {
        assert_eq!(response.status, StatusCode::OK, "{}", response.json);
        assert_eq!(response.parse::<ChatPage>().chats.iter().map(|c| c.id).collect::<Vec<_>>(), vec![chat.id]);
    }
}

#[sqlx::test(migrations = false)]
async fn a_message_with_a_nul_character_is_refused_and_nothing_is_stored(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let transport_body = json!({"id": chat_id, "trigger": "submit-message", "messages": [
        {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "a\u{0}b"}]}
    ]});

    // Act
    let lean = app.json(ALICE, Method::POST, "/api/chat", json!({"id": chat_id, "message": "hi\u{0}there"})).await;
    let transport = app.json(ALICE, Method::POST, "/api/chat", transport_body).await;

    // Assert
    lean.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    transport.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(message_count(&app).await, 0);
    assert_eq!(app.chat_count().await, 0);
}

#[sqlx::test(migrations = false)]
async fn a_resume_cursor_past_the_event_id_range_is_refused_not_a_panic_or_an_endless_stream(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: a finished answer, so resuming reads the stored log.
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let turn = app.post_chat(ALICE, json!({"id": chat_id, "message": "hi [[fake tokens=3]]"})).await;
    assert_eq!(turn.status, StatusCode::OK, "{}", turn.raw);
    let stream_path = format!("/api/chat/{chat_id}/stream");

    // Act: event ids are 1..=i64::MAX; u64::MAX used to overflow, 2^63 to wrap into a stream that never ended.
    let mut answers = Vec::new();
    for cursor in ["18446744073709551615", "9223372036854775808", "-1"] {
        let request = app.request(Some(ALICE), Method::GET, &stream_path).header("last-event-id", cursor);
        let response = tokio::time::timeout(Duration::from_secs(10), app.send(request)).await;
        answers.push((cursor, response.expect("the server answers at once")));
    }
    let largest = app.send(app.request(Some(ALICE), Method::GET, &format!("{stream_path}?cursor={}", i64::MAX)));
    let largest = tokio::time::timeout(Duration::from_secs(10), largest).await.expect("ends at once");

    // Assert
    for (cursor, response) in answers {
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "cursor {cursor}: {}", response.json);
        response.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert!(largest.status.is_success(), "the largest event id is a valid cursor: {}", largest.status);
}

#[sqlx::test(migrations = false)]
async fn a_forged_chat_cursor_outside_the_database_time_range_is_a_400(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: cursors are opaque, but a client can still build one by hand.
    let app = TestApp::spawn(connect).await;
    app.create_chat(ALICE, json!({})).await;
    let forged = |micros: i64| URL_SAFE_NO_PAD.encode(format!("{micros}|{}", Uuid::nil().simple()));

    // Act: a time chrono represents but PostgreSQL does not (about 29,700 BC), and one far in the future.
    let ancient = app.get(ALICE, &format!("/api/chats?cursor={}", forged(-1_000_000_000_000_000_000))).await;
    let future = app.get(ALICE, &format!("/api/chats?cursor={}", forged(1_000_000_000_000_000_000))).await;

    // Assert
    ancient.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    future.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}
