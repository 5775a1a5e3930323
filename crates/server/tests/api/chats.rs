//! Creating, listing, paging, searching, renaming and deleting chats.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::json;
use shared::{ChatPage, ChatSummary};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, TestApp, insert_messages};

#[sqlx::test(migrations = false)]
async fn create_get_rename_and_delete_a_chat(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn(connect).await;

    // Act
    let created = app.create_chat(ALICE, json!({"title": "  Trip to Lisbon  ", "scope": "ticket-42"})).await;
    let fetched: ChatSummary = app.get(ALICE, &format!("/api/chats/{}", created.id)).await.parse();
    let renamed =
        app.json(ALICE, Method::PATCH, &format!("/api/chats/{}", created.id), json!({"title": "Lisbon 2027"})).await;
    let deleted = app.delete(ALICE, &format!("/api/chats/{}", created.id)).await;
    let after_delete = app.get(ALICE, &format!("/api/chats/{}", created.id)).await;

    // Assert
    assert_eq!(created.title, "Trip to Lisbon");
    assert_eq!(created.scope.as_deref(), Some("ticket-42"));
    assert_eq!(fetched, created);
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.parse::<ChatSummary>().title, "Lisbon 2027");
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    after_delete.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrations = false)]
async fn create_returns_201_with_a_location_and_defaults(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;

    let response = app.json(ALICE, Method::POST, "/api/chats", json!({})).await;

    assert_eq!(response.status, StatusCode::CREATED);
    let chat: ChatSummary = response.parse();
    assert_eq!(chat.title, "New chat");
    assert_eq!(chat.model, None);
    assert_eq!(response.headers["location"], format!("/api/chats/{}", chat.id).as_str());
    assert!(response.json["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "RFC 3339 UTC: {}", response.json);
}

#[sqlx::test(migrations = false)]
async fn list_is_most_recently_active_first(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let first = app.create_chat(ALICE, json!({"title": "first"})).await;
    let second = app.create_chat(ALICE, json!({"title": "second"})).await;
    // Activity on the first chat moves it to the top.
    sqlx::query("update chat.chats set updated_at = now() + interval '1 minute' where chat_id = $1")
        .bind(first.id)
        .execute(&app.db)
        .await
        .expect("touch");

    let page: ChatPage = app.get(ALICE, "/api/chats").await.parse();

    let ids: Vec<Uuid> = page.chats.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![first.id, second.id]);
    assert_eq!(page.next_cursor, None);
}

#[sqlx::test(migrations = false)]
async fn pages_cover_every_chat_once_even_when_times_tie(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: 25 chats, in groups of 5 with the exact same updated_at.
    let app = TestApp::spawn(connect).await;
    sqlx::query(
        "insert into chat.chats (chat_id, owner_id, title, updated_at)
         select gen_random_uuid(), $1, 'chat ' || i, timestamptz '2026-01-01' + ((i / 5) * interval '1 hour')
         from generate_series(1, 25) i",
    )
    .bind(ALICE)
    .execute(&app.db)
    .await
    .expect("fixture");

    // Act: walk the pages.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/chats?limit=10&cursor={c}"),
            None => "/api/chats?limit=10".to_owned(),
        };
        let page: ChatPage = app.get(ALICE, &path).await.parse();
        pages += 1;
        seen.extend(page.chats);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }

    // Assert: 3 pages, every chat exactly once, in (updated_at desc, id desc) order.
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().map(|c| c.id).collect::<HashSet<_>>().len(), 25);
    for pair in seen.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!((a.updated_at, a.id) > (b.updated_at, b.id), "out of order: {a:?} then {b:?}");
    }
}

#[sqlx::test(migrations = false)]
async fn an_exactly_full_last_page_has_no_next_cursor(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    for i in 0..4 {
        app.create_chat(ALICE, json!({"title": format!("chat {i}")})).await;
    }

    let first: ChatPage = app.get(ALICE, "/api/chats?limit=2").await.parse();
    let cursor = first.next_cursor.expect("a second page");
    let second: ChatPage = app.get(ALICE, &format!("/api/chats?limit=2&cursor={cursor}")).await.parse();

    assert_eq!(second.chats.len(), 2);
    assert_eq!(second.next_cursor, None);
}

#[sqlx::test(migrations = false)]
async fn search_matches_title_and_message_words_by_prefix_ignoring_case(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn(connect).await;
    let by_title = app.create_chat(ALICE, json!({"title": "Lakebase migration plan"})).await;
    let by_content = app.create_chat(ALICE, json!({"title": "Untitled"})).await;
    insert_messages(&app.db, by_content.id, 3, "We should MIGRATE the warehouse, step {i}").await;
    let unrelated = app.create_chat(ALICE, json!({"title": "Recipes"})).await;
    insert_messages(&app.db, unrelated.id, 2, "pasta and tomatoes {i}").await;

    // Act
    let migrat: ChatPage = app.get(ALICE, "/api/chats?q=Migrat").await.parse();
    let lake: ChatPage = app.get(ALICE, "/api/chats?q=LAKE").await.parse();
    let both_words: ChatPage = app.get(ALICE, "/api/chats?q=warehouse%20step").await.parse();
    let nothing: ChatPage = app.get(ALICE, "/api/chats?q=kubernetes").await.parse();
    let punctuation: ChatPage = app.get(ALICE, "/api/chats?q=%27%5C%26%7C!%3A*").await.parse();

    // Assert
    let ids = |page: &ChatPage| page.chats.iter().map(|c| c.id).collect::<HashSet<_>>();
    assert_eq!(ids(&migrat), HashSet::from([by_title.id, by_content.id]));
    assert_eq!(ids(&lake), HashSet::from([by_title.id]));
    assert_eq!(ids(&both_words), HashSet::from([by_content.id]));
    assert!(nothing.chats.is_empty());
    assert!(punctuation.chats.is_empty(), "tsquery syntax in the input is not interpreted");
}

#[sqlx::test(migrations = false)]
async fn search_ignores_reasoning_and_answers_still_streaming(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let chat = app.create_chat(ALICE, json!({"title": "Untitled"})).await;
    sqlx::query(
        r#"insert into chat.messages (message_id, chat_id, seq, role, parts, status) values
           (gen_random_uuid(), $1, 1, 'assistant', '[{"type":"reasoning","text":"secretthought"},{"type":"text","text":"visible"}]', 'complete'),
           (gen_random_uuid(), $1, 2, 'assistant', '[{"type":"text","text":"halfwritten"}]', 'streaming')"#,
    )
    .bind(chat.id)
    .execute(&app.db)
    .await
    .expect("fixture");

    let visible: ChatPage = app.get(ALICE, "/api/chats?q=visible").await.parse();
    let thought: ChatPage = app.get(ALICE, "/api/chats?q=secretthought").await.parse();
    let streaming: ChatPage = app.get(ALICE, "/api/chats?q=halfwritten").await.parse();

    assert_eq!(visible.chats.len(), 1);
    assert!(thought.chats.is_empty());
    assert!(streaming.chats.is_empty());
}

#[sqlx::test(migrations = false)]
async fn search_results_page_like_the_plain_list(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    for i in 0..5 {
        app.create_chat(ALICE, json!({"title": format!("report {i}")})).await;
    }
    app.create_chat(ALICE, json!({"title": "other"})).await;

    let first: ChatPage = app.get(ALICE, "/api/chats?q=report&limit=3").await.parse();
    let cursor = first.next_cursor.clone().expect("second page");
    let second: ChatPage = app.get(ALICE, &format!("/api/chats?q=report&limit=3&cursor={cursor}")).await.parse();

    assert_eq!(first.chats.len() + second.chats.len(), 5);
    assert_eq!(second.next_cursor, None);
}

#[sqlx::test(migrations = false)]
async fn scope_filter_returns_only_that_scope(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let a1 = app.create_chat(ALICE, json!({"title": "a1", "scope": "notebook/1"})).await;
    let a2 = app.create_chat(ALICE, json!({"title": "a2", "scope": "notebook/1"})).await;
    app.create_chat(ALICE, json!({"title": "b", "scope": "notebook/2"})).await;
    app.create_chat(ALICE, json!({"title": "none"})).await;

    let page: ChatPage = app.get(ALICE, "/api/chats?scope=notebook%2F1").await.parse();
    let searched: ChatPage = app.get(ALICE, "/api/chats?scope=notebook%2F1&q=a1").await.parse();

    assert_eq!(page.chats.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a2.id, a1.id]);
    assert_eq!(searched.chats.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a1.id]);
}

#[sqlx::test(migrations = false)]
async fn deleting_a_chat_deletes_its_messages(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let doomed = app.create_chat(ALICE, json!({"title": "doomed"})).await;
    let kept = app.create_chat(ALICE, json!({"title": "kept"})).await;
    insert_messages(&app.db, doomed.id, 10, "m{i}").await;
    insert_messages(&app.db, kept.id, 4, "k{i}").await;

    let response = app.delete(ALICE, &format!("/api/chats/{}", doomed.id)).await;

    assert_eq!(response.status, StatusCode::NO_CONTENT);
    let remaining: Vec<(Uuid, i64)> = sqlx::query_as("select chat_id, count(*) from chat.messages group by chat_id")
        .fetch_all(&app.db)
        .await
        .expect("count");
    assert_eq!(remaining, vec![(kept.id, 4)]);
    let again = app.delete(ALICE, &format!("/api/chats/{}", doomed.id)).await;
    again.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrations = false)]
async fn renaming_does_not_move_a_chat_and_marks_the_title_as_the_users(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let chat = app.create_chat(ALICE, json!({"title": "old"})).await;

    let renamed: ChatSummary =
        app.json(ALICE, Method::PATCH, &format!("/api/chats/{}", chat.id), json!({"title": "new"})).await.parse();

    assert_eq!(renamed.updated_at, chat.updated_at);
    let source: String = sqlx::query_scalar("select title_source from chat.chats where chat_id = $1")
        .bind(chat.id)
        .fetch_one(&app.db)
        .await
        .expect("row");
    assert_eq!(source, "user");
}
