//! Taking chats out and bringing them back, pinning and archiving.

use reqwest::{Method, StatusCode};
use serde_json::json;
use shared::{ChatExport, ChatPage, ChatSummary, MessagePage, UiMessage};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, TestApp};

fn texts(messages: &[UiMessage]) -> Vec<String> {
    messages.iter().map(UiMessage::text).collect()
}

/// A chat with an edited second question; the edit's branch is shown.
async fn branched_chat(app: &TestApp) -> Uuid {
    let chat_id = Uuid::new_v4();
    app.post_chat(ALICE, json!({"id": chat_id, "message": "one"})).await;
    app.post_chat(ALICE, json!({"id": chat_id, "message": "two"})).await;
    let page: MessagePage = app.get(ALICE, &format!("/api/chats/{chat_id}/messages")).await.parse();
    app.post_chat(ALICE, json!({"id": chat_id, "message": "two, edited", "messageId": page.messages[2].id})).await;
    chat_id
}

#[sqlx::test(migrations = false)]
async fn an_export_of_the_whole_tree_imports_back_as_the_same_chat(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = branched_chat(&app).await;

    // Act: export every branch, import it as Bob, and export Bob's copy.
    let exported = app.get(ALICE, &format!("/api/chats/{chat_id}/export?scope=all")).await;
    assert_eq!(exported.status, StatusCode::OK, "{}", exported.json);
    assert!(exported.headers["content-disposition"].to_str().unwrap_or_default().starts_with("attachment;"));
    let export: ChatExport = exported.parse();
    let imported = app.json(BOB, Method::POST, "/api/chats/import", serde_json::to_value(&export).expect("json")).await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.json);
    let copy: ChatSummary = imported.parse();
    let again: ChatExport = app.get(BOB, &format!("/api/chats/{}/export?scope=all", copy.id)).await.parse();

    // Assert: six messages on two branches, the same shown branch, the same content, new ids.
    assert_eq!(export.messages.len(), 6);
    assert_eq!(texts(&again.messages), texts(&export.messages));
    let shape = |e: &ChatExport| {
        let position = |id: Option<Uuid>| id.and_then(|id| e.messages.iter().position(|m| m.id == id));
        (e.messages.iter().map(|m| (m.role, position(m.metadata.parent_id))).collect::<Vec<_>>(), position(e.leaf_id))
    };
    assert_eq!(shape(&again), shape(&export), "the same tree, showing the same branch");
    assert!(again.messages.iter().all(|m| export.messages.iter().all(|o| o.id != m.id)), "new ids");
    assert_eq!(again.title, export.title);
    let shown: MessagePage = app.get(BOB, &format!("/api/chats/{}/messages", copy.id)).await.parse();
    assert_eq!(texts(&shown.messages), ["one", "You said: one", "two, edited", "You said: two, edited"]);
    assert_eq!(shown.messages[2].metadata.branch.as_ref().map(|b| b.siblings.len()), Some(2));
}

#[sqlx::test(migrations = false)]
async fn an_export_of_the_shown_branch_as_markdown_reads_as_a_conversation(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = branched_chat(&app).await;
    app.json(ALICE, Method::PATCH, &format!("/api/chats/{chat_id}"), json!({"title": "Numbers"})).await;

    let markdown = app.get(ALICE, &format!("/api/chats/{chat_id}/export?format=markdown")).await;
    let active: ChatExport = app.get(ALICE, &format!("/api/chats/{chat_id}/export")).await.parse();

    assert_eq!(markdown.status, StatusCode::OK);
    assert!(markdown.headers["content-type"].to_str().unwrap_or_default().starts_with("text/markdown"));
    assert!(markdown.headers["content-disposition"].to_str().unwrap_or_default().contains("numbers.md"));
    let text = markdown.json.as_str().unwrap_or_default();
    assert!(text.starts_with("# Numbers\n\n## You\n\none\n\n## Assistant"), "{text}");
    assert!(text.contains("two, edited") && !text.contains("\ntwo\n"), "{text}");
    assert_eq!(texts(&active.messages), ["one", "You said: one", "two, edited", "You said: two, edited"]);
    assert_eq!(active.leaf_id, active.messages.last().map(|m| m.id));
}

#[sqlx::test(migrations = false)]
async fn imports_that_cannot_be_stored_faithfully_are_refused_and_change_nothing(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = branched_chat(&app).await;
    let export: serde_json::Value = app.get(ALICE, &format!("/api/chats/{chat_id}/export?scope=all")).await.json;
    let with = |pointer: &str, value: serde_json::Value| {
        let mut body = export.clone();
        *body.pointer_mut(pointer).expect("field") = value;
        body
    };
    let cases = [
        with("/version", json!(2)),
        with("/title", json!("")),
        with("/messages/1/metadata/parent_id", json!(Uuid::new_v4())),
        with("/messages/1/id", export["messages"][0]["id"].clone()),
        with("/messages/0/role", json!("system")),
        with("/leaf_id", json!(Uuid::new_v4())),
        with("/messages/0/parts/0/text", json!("nul \u{0} here")),
        // Found by fuzzing: a NUL in the chat's model reached the insert (500).
        with("/model", json!("\u{0}")),
    ];
    let before = app.chat_count().await;

    for body in cases {
        let response = app.json(BOB, Method::POST, "/api/chats/import", body.clone()).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {}", response.json);
    }
    assert_eq!(app.chat_count().await, before, "nothing was created");
    app.get(BOB, &format!("/api/chats/{chat_id}/export")).await.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrations = false)]
async fn pinned_chats_list_apart_and_archived_chats_leave_the_list_and_search(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let a = app.create_chat(ALICE, json!({"title": "alpha report"})).await;
    let b = app.create_chat(ALICE, json!({"title": "beta report"})).await;
    let c = app.create_chat(ALICE, json!({"title": "gamma report"})).await;
    let ids = |page: ChatPage| page.chats.into_iter().map(|chat| chat.id).collect::<Vec<_>>();
    let list = |query: &'static str| {
        let app = &app;
        async move {
            let response = app.get(ALICE, &format!("/api/chats{query}")).await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.json);
            ids(response.parse())
        }
    };

    let pinned = app.json(ALICE, Method::PATCH, &format!("/api/chats/{}", a.id), json!({"pinned": true})).await;
    let archived = app.json(ALICE, Method::PATCH, &format!("/api/chats/{}", b.id), json!({"archived": true})).await;

    assert!(pinned.parse::<ChatSummary>().pinned);
    assert!(archived.parse::<ChatSummary>().archived);
    assert_eq!(list("?pinned=true").await, [a.id]);
    assert_eq!(list("?pinned=false").await, [c.id]);
    assert_eq!(list("").await, [c.id, a.id]);
    assert_eq!(list("?archived=true").await, [b.id]);
    assert_eq!(list("?q=report").await, [c.id, a.id], "search leaves archived chats out");
    assert_eq!(app.get(ALICE, &format!("/api/chats/{}", b.id)).await.status, StatusCode::OK, "still readable");
    let pinned_again = app.get(ALICE, &format!("/api/chats/{}", a.id)).await;
    assert_eq!(pinned_again.json["pinned"], true);
    assert_eq!(pinned_again.parse::<ChatSummary>().updated_at, a.updated_at, "pinning is not activity");

    // Back again.
    app.json(ALICE, Method::PATCH, &format!("/api/chats/{}", b.id), json!({"archived": false})).await;
    app.json(ALICE, Method::PATCH, &format!("/api/chats/{}", a.id), json!({"pinned": false})).await;
    assert_eq!(list("").await, [c.id, b.id, a.id]);
    assert!(list("?pinned=true").await.is_empty());
    assert!(list("?archived=true").await.is_empty());

    // Nobody else's, and nonsense refused.
    let bobs = app.json(BOB, Method::PATCH, &format!("/api/chats/{}", a.id), json!({"pinned": true})).await;
    bobs.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.get(ALICE, "/api/chats?archived=true&pinned=true").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get(ALICE, "/api/chats?pinned=true&q=x").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get(ALICE, "/api/chats?pinned=maybe").await.status, StatusCode::BAD_REQUEST);
    let bad = app.json(ALICE, Method::PATCH, &format!("/api/chats/{}", a.id), json!({"pinned": "yes"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
