//! Two users never see, rename, delete, list or search each other's chats.

use reqwest::{Method, StatusCode};
use serde_json::json;
use shared::{ChatPage, ChatSummary};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{ALICE, BOB, TestApp, insert_messages};

#[sqlx::test(migrations = false)]
async fn users_cannot_touch_each_others_chats(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn(connect).await;
    let alices = app.create_chat(ALICE, json!({"title": "alice secret plans", "scope": "shared-scope"})).await;
    insert_messages(&app.db, alices.id, 4, "confidential {i}").await;
    let bobs = app.create_chat(BOB, json!({"title": "bob's chat", "scope": "shared-scope"})).await;
    let path = format!("/api/chats/{}", alices.id);

    // Act
    let get = app.get(BOB, &path).await;
    let messages = app.get(BOB, &format!("{path}/messages")).await;
    let rename = app.json(BOB, Method::PATCH, &path, json!({"title": "pwned"})).await;
    let delete = app.delete(BOB, &path).await;
    let list: ChatPage = app.get(BOB, "/api/chats").await.parse();
    let search: ChatPage = app.get(BOB, "/api/chats?q=confidential").await.parse();
    let title_search: ChatPage = app.get(BOB, "/api/chats?q=secret").await.parse();
    let scoped: ChatPage = app.get(BOB, "/api/chats?scope=shared-scope").await.parse();

    // Assert: indistinguishable from a missing chat, and nothing changed.
    let missing = app.get(BOB, &format!("/api/chats/{}", uuid::Uuid::now_v7())).await;
    for response in [&get, &messages, &rename, &delete, &missing] {
        response.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(get.json, missing.json, "another user's chat looks exactly like a missing one");
    assert_eq!(list.chats.iter().map(|c| c.id).collect::<Vec<_>>(), vec![bobs.id]);
    assert!(search.chats.is_empty());
    assert!(title_search.chats.is_empty());
    assert_eq!(scoped.chats.iter().map(|c| c.id).collect::<Vec<_>>(), vec![bobs.id]);
    let still_alices: ChatSummary = app.get(ALICE, &path).await.parse();
    assert_eq!(still_alices, alices);
    let alice_messages = app.get(ALICE, &format!("{path}/messages")).await;
    assert_eq!(alice_messages.json["messages"].as_array().map(Vec::len), Some(4));
}

#[sqlx::test(migrations = false)]
async fn the_same_person_is_one_owner_whatever_the_case_or_spacing(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let chat = app.create_chat("Alice@Example.com", json!({"title": "t"})).await;

    let page: ChatPage = app.get(" alice@example.COM ", "/api/chats").await.parse();

    assert_eq!(page.chats.iter().map(|c| c.id).collect::<Vec<_>>(), vec![chat.id]);
}
