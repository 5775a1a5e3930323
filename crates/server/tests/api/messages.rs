//! Reading a chat's history.

use reqwest::StatusCode;
use serde_json::json;
use shared::{MessagePage, MessageStatus, Role};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{ALICE, TestApp, insert_messages};

#[sqlx::test(migrations = false)]
async fn history_pages_go_backwards_and_each_page_is_in_chat_order(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn(connect).await;
    let chat = app.create_chat(ALICE, json!({"title": "long"})).await;
    insert_messages(&app.db, chat.id, 75, "message {i}").await;
    let path = format!("/api/chats/{}/messages", chat.id);

    // Act
    let newest: MessagePage = app.get(ALICE, &path).await.parse();
    let before = newest.next_before.clone().expect("older page");
    let middle: MessagePage = app.get(ALICE, &format!("{path}?before={before}")).await.parse();
    let before = middle.next_before.clone().expect("oldest page");
    let oldest: MessagePage = app.get(ALICE, &format!("{path}?before={before}")).await.parse();

    // Assert
    let seqs = |page: &MessagePage| page.messages.iter().map(|m| m.metadata.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&newest), (46..=75).collect::<Vec<_>>());
    assert_eq!(seqs(&middle), (16..=45).collect::<Vec<_>>());
    assert_eq!(seqs(&oldest), (1..=15).collect::<Vec<_>>());
    assert_eq!(oldest.next_before, None);
    let first = &oldest.messages[0];
    assert_eq!(first.role, Role::User);
    assert_eq!(first.text(), "message 1");
    assert_eq!(first.metadata.status, MessageStatus::Complete);
}

#[sqlx::test(migrations = false)]
async fn messages_have_the_ai_sdk_ui_message_shape(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let chat = app.create_chat(ALICE, json!({"title": "shape"})).await;
    sqlx::query(
        r#"insert into chat.messages (message_id, chat_id, seq, role, parts, status, model, input_tokens, output_tokens)
           values (gen_random_uuid(), $1, 1, 'assistant',
                   '[{"type":"reasoning","text":"hmm"},{"type":"text","text":"Hello"}]', 'complete', 'm', 12, 3)"#,
    )
    .bind(chat.id)
    .execute(&app.db)
    .await
    .expect("fixture");

    let response = app.get(ALICE, &format!("/api/chats/{}/messages?limit=5", chat.id)).await;

    assert_eq!(response.status, StatusCode::OK);
    let message = &response.json["messages"][0];
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["parts"], json!([{"type": "reasoning", "text": "hmm"}, {"type": "text", "text": "Hello"}]));
    assert_eq!(message["metadata"]["status"], "complete");
    assert_eq!(message["metadata"]["model"], "m");
    assert_eq!(message["metadata"]["usage"], json!({"input_tokens": 12, "output_tokens": 3}));
    assert!(message["id"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()));
}

#[sqlx::test(migrations = false)]
async fn an_empty_chat_has_an_empty_history(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let chat = app.create_chat(ALICE, json!({})).await;

    let page: MessagePage = app.get(ALICE, &format!("/api/chats/{}/messages", chat.id)).await.parse();

    assert!(page.messages.is_empty());
    assert_eq!(page.next_before, None);
}
