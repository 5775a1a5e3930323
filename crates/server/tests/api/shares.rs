//! Read-only links to a branch: what a viewer sees, what they can do with it, and revocation.

use reqwest::{Method, StatusCode};
use serde_json::json;
use shared::{ChatPage, ChatSummary, MessagePage, Share, ShareList, SharedChat, UiMessage};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, TestApp};

fn texts(messages: &[UiMessage]) -> Vec<String> {
    messages.iter().map(UiMessage::text).collect()
}

/// A chat of Alice's with two turns, the second question edited: returns the chat and the first version of it.
async fn chat_with_two_versions(app: &TestApp) -> (Uuid, Uuid) {
    let chat_id = Uuid::new_v4();
    app.post_chat(ALICE, json!({"id": chat_id, "message": "one"})).await;
    app.post_chat(ALICE, json!({"id": chat_id, "message": "two"})).await;
    let page: MessagePage = app.get(ALICE, &format!("/api/chats/{chat_id}/messages")).await.parse();
    let first_version = page.messages[2].id;
    app.post_chat(ALICE, json!({"id": chat_id, "message": "two, secret edit", "messageId": first_version})).await;
    app.json(ALICE, Method::POST, &format!("/api/chats/{chat_id}/branch"), json!({"message_id": first_version})).await;
    (chat_id, first_version)
}

#[sqlx::test(migrations = false)]
async fn a_share_shows_its_branch_read_only_and_nothing_else(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: a shared branch, then more written after sharing.
    let app = TestApp::spawn_with_model(connect).await;
    let (chat_id, _) = chat_with_two_versions(&app).await;
    let made = app.json(ALICE, Method::POST, &format!("/api/chats/{chat_id}/shares"), json!({})).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.json);
    let share: Share = made.parse();
    let answer = share.leaf_id;
    let vote = app
        .json(ALICE, Method::PUT, &format!("/api/chats/{chat_id}/messages/{answer}/feedback"), json!({"rating": "up"}))
        .await;
    assert_eq!(vote.status, StatusCode::OK, "{}", vote.json);
    app.post_chat(ALICE, json!({"id": chat_id, "message": "three, after sharing"})).await;

    // Act
    let seen = app.get(BOB, &format!("/api/shares/{}", share.id)).await;

    // Assert: the branch up to the shared point, with the owner's name; no vote, no other version, nothing later.
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.json);
    let seen: SharedChat = seen.parse();
    assert_eq!(texts(&seen.messages), ["one", "You said: one", "two", "You said: two"]);
    assert_eq!(seen.owner_name, ALICE);
    assert!(!seen.title.is_empty());
    assert!(seen.messages.iter().all(|m| m.metadata.branch.is_none() && m.metadata.feedback.is_none()));
    assert!(!seen.messages.iter().any(|m| m.text().contains("secret")));
    assert_eq!(share.url, format!("/share/{}", share.id));

    // Assert: no write through it, and it is in nobody's list.
    let bobs_write = app.post_chat(BOB, json!({"id": chat_id, "message": "hijack"})).await;
    assert_eq!(bobs_write.status, StatusCode::NOT_FOUND);
    let bobs_chats: ChatPage = app.get(BOB, "/api/chats").await.parse();
    assert!(bobs_chats.chats.is_empty());
    let alices_chats: ChatPage = app.get(ALICE, "/api/chats").await.parse();
    assert_eq!(alices_chats.chats.len(), 1);
    let bobs_list = app.get(BOB, &format!("/api/chats/{chat_id}/shares")).await;
    bobs_list.assert_error(StatusCode::NOT_FOUND, "not_found");
    let bobs_revoke = app.delete(BOB, &format!("/api/shares/{}", share.id)).await;
    bobs_revoke.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrations = false)]
async fn a_viewer_continues_a_shared_chat_in_their_own_chats(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let (chat_id, _) = chat_with_two_versions(&app).await;
    let share: Share = app.json(ALICE, Method::POST, &format!("/api/chats/{chat_id}/shares"), json!({})).await.parse();

    let copied = app.json(BOB, Method::POST, &format!("/api/shares/{}/copy", share.id), json!({})).await;

    assert_eq!(copied.status, StatusCode::CREATED, "{}", copied.json);
    let copy: ChatSummary = copied.parse();
    assert_ne!(copy.id, chat_id);
    let bobs: MessagePage = app.get(BOB, &format!("/api/chats/{}/messages", copy.id)).await.parse();
    assert_eq!(texts(&bobs.messages), ["one", "You said: one", "two", "You said: two"]);
    app.post_chat(BOB, json!({"id": copy.id, "message": "and mine"})).await;
    let sent = app.fake().requests().last().expect("a model request").body.clone();
    assert_eq!(sent["messages"].as_array().map(Vec::len), Some(5), "Bob's turn continues the copy: {sent}");
    let alices: MessagePage = app.get(ALICE, &format!("/api/chats/{chat_id}/messages")).await.parse();
    assert_eq!(alices.messages.len(), 4, "the original is untouched");
}

#[sqlx::test(migrations = false)]
async fn the_owner_lists_and_revokes_shares_and_a_revoked_link_is_gone(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let (chat_id, _) = chat_with_two_versions(&app).await;
    let shares = format!("/api/chats/{chat_id}/shares");
    let first: Share = app.json(ALICE, Method::POST, &shares, json!({})).await.parse();
    let second: Share = app.json(ALICE, Method::POST, &shares, json!({})).await.parse();

    let listed: ShareList = app.get(ALICE, &shares).await.parse();
    let revoked = app.delete(ALICE, &format!("/api/shares/{}", first.id)).await;
    let after: ShareList = app.get(ALICE, &shares).await.parse();

    assert_eq!(listed.shares.iter().map(|s| s.id).collect::<Vec<_>>(), [second.id, first.id]);
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(after.shares.iter().map(|s| s.id).collect::<Vec<_>>(), [second.id]);
    for user in [ALICE, BOB] {
        app.get(user, &format!("/api/shares/{}", first.id)).await.assert_error(StatusCode::NOT_FOUND, "not_found");
        let copy = app.json(user, Method::POST, &format!("/api/shares/{}/copy", first.id), json!({})).await;
        copy.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    app.get(BOB, &format!("/api/shares/{}", Uuid::new_v4())).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.get(BOB, &format!("/api/shares/{}", second.id)).await.status, StatusCode::OK);
    app.delete(ALICE, &format!("/api/chats/{chat_id}")).await;
    app.get(BOB, &format!("/api/shares/{}", second.id)).await.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrations = false)]
async fn an_empty_chat_or_one_being_answered_is_not_shared(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let empty = app.create_chat(ALICE, json!({})).await;
    let busy = Uuid::new_v4();
    let started = app
        .send(
            app.request(Some(ALICE), Method::POST, "/api/chat")
                .header("prefer", "respond-async")
                .json(&json!({"id": busy, "message": "slow [[fake tokens=400 delay_ms=20]]"})),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED);

    let nothing = app.json(ALICE, Method::POST, &format!("/api/chats/{}/shares", empty.id), json!({})).await;
    let streaming = app.json(ALICE, Method::POST, &format!("/api/chats/{busy}/shares"), json!({})).await;

    assert_eq!(nothing.status, StatusCode::BAD_REQUEST);
    streaming.assert_error(StatusCode::CONFLICT, "generation_in_progress");
    app.json(ALICE, Method::POST, &format!("/api/chat/{busy}/stop"), json!({})).await;
}
