//! The documented limits on requests hold at their edges: body sizes (413 in the envelope), the length of a
//! message and the size of a page. (The per-user turn limits are in `limits.rs`.)

use reqwest::{Method, StatusCode};
use serde_json::json;
use shared::{ChatPage, MAX_MESSAGE_CHARS, MAX_PAGE_LIMIT, MessagePage};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, TestApp, insert_messages, model_env, test_env};

async fn message_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from chat.messages").fetch_one(&app.db).await.expect("count")
}

#[sqlx::test(migrations = false)]
async fn a_turn_body_over_the_chat_body_limit_is_413_and_stores_nothing(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: turns have their own, larger limit (AI SDK clients send the whole conversation).
    let fake = fake_databricks::FakeWorkspace::start().await;
    let env = model_env(&fake).with("MAX_BODY_BYTES", "2048").with("MAX_CHAT_BODY_BYTES", "8192");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let turn = |text: String| json!({"id": Uuid::new_v4(), "message": text});

    // Act
    let over = app.json(ALICE, Method::POST, "/api/chat", turn("x".repeat(9000))).await;
    let under = app.post_chat(ALICE, turn(format!("{} [[fake tokens=1]]", "x".repeat(4000)))).await;

    // Assert
    over.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(under.status, StatusCode::OK, "over MAX_BODY_BYTES but under MAX_CHAT_BODY_BYTES: {}", under.raw);
    assert_eq!(message_count(&app).await, 2, "only the accepted turn stored its two messages");
}

#[sqlx::test(migrations = false)]
async fn a_message_of_exactly_the_maximum_length_in_characters_is_accepted(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: two-byte characters, so the limit is seen to count characters, not bytes.
    let app = TestApp::spawn_with_model(connect).await;
    let longest = "é".repeat(MAX_MESSAGE_CHARS);
    let one_more = "é".repeat(MAX_MESSAGE_CHARS + 1);

    // Act
    let refused = app.json(ALICE, Method::POST, "/api/chat", json!({"id": Uuid::new_v4(), "message": one_more})).await;
    let accepted = app
        .send(
            app.request(Some(ALICE), Method::POST, "/api/chat")
                .header("prefer", "respond-async")
                .json(&json!({"id": Uuid::new_v4(), "message": longest})),
        )
        .await;

    // Assert
    refused.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.json);
    let stored: i32 = sqlx::query_scalar(
        "select char_length(parts -> 0 ->> 'text') from chat.messages where role = 'user' and message_id = $1",
    )
    .bind(Uuid::parse_str(accepted.json["user_message_id"].as_str().unwrap_or_default()).expect("message id"))
    .fetch_one(&app.db)
    .await
    .expect("stored message");
    assert_eq!(usize::try_from(stored).ok(), Some(MAX_MESSAGE_CHARS));
}

#[sqlx::test(migrations = false)]
async fn page_sizes_from_1_to_100_are_honoured_and_nothing_outside(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: one more chat than the largest page, and as many messages in one of them.
    let app = TestApp::spawn_with(connect, test_env()).await;
    let total = MAX_PAGE_LIMIT as usize + 1;
    let mut chats = Vec::new();
    for i in 0..total {
        chats.push(app.create_chat(ALICE, json!({"title": format!("chat {i}")})).await);
    }
    insert_messages(&app.db, chats[0].id, total as i64, "message {i}").await;
    let messages_path = format!("/api/chats/{}/messages", chats[0].id);

    // Act
    let smallest: ChatPage = app.get(ALICE, "/api/chats?limit=1").await.parse();
    let largest: ChatPage = app.get(ALICE, &format!("/api/chats?limit={MAX_PAGE_LIMIT}")).await.parse();
    let default: ChatPage = app.get(ALICE, "/api/chats").await.parse();
    let largest_history: MessagePage = app.get(ALICE, &format!("{messages_path}?limit={MAX_PAGE_LIMIT}")).await.parse();
    let too_small = app.get(ALICE, &format!("{messages_path}?limit=0")).await;
    let too_large = app.get(ALICE, &format!("/api/chats?limit={}", MAX_PAGE_LIMIT + 1)).await;
    let negative = app.get(ALICE, "/api/chats?limit=-1").await;

    // Assert
    assert_eq!((smallest.chats.len(), smallest.next_cursor.is_some()), (1, true));
    assert_eq!((largest.chats.len(), largest.next_cursor.is_some()), (MAX_PAGE_LIMIT as usize, true));
    assert_eq!(default.chats.len(), shared::DEFAULT_PAGE_LIMIT as usize);
    assert_eq!(largest_history.messages.len(), MAX_PAGE_LIMIT as usize);
    assert_eq!(largest_history.next_before.as_deref(), Some("2"));
    for response in [too_small, too_large, negative] {
        response.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}
