//! Long chats on a small context window: the older part is summarised once and the summary reused, pinned messages
//! are always sent as they are, and the answer says when a summary stood for older messages.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{MessagePage, MessagePart};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, MODEL, TestApp, insert_messages, model_env};

/// Instructions the server's summary requests start with.
const SUMMARY_REQUEST: &str = "You summarise conversations";
/// A context window small enough that 500 long messages overflow it many times.
const WINDOW: usize = 4096;

/// An app whose model has a 4,096-token window, and a chat of 500 long messages (about 110 tokens each).
async fn long_chat(connect: PgConnectOptions) -> (TestApp, Uuid) {
    let fake = fake_databricks::FakeWorkspace::start().await;
    let env = model_env(&fake).with("MODEL_CONTEXT_TOKENS", &format!("{MODEL}={WINDOW}"));
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let chat = app.create_chat(ALICE, json!({"title": "long"})).await;
    insert_messages(&app.db, chat.id, 500, &format!("message {{i}}: {}", "lorem ipsum dolor sit amet ".repeat(15)))
        .await;
    (app, chat.id)
}

/// The model requests made so far: (summary requests, answer requests).
fn requests(app: &TestApp) -> (Vec<Value>, Vec<Value>) {
    let all: Vec<Value> = app.fake().requests().into_iter().map(|r| r.body).collect();
    all.into_iter().partition(|body| {
        body["messages"][0]["content"].as_str().is_some_and(|system| system.starts_with(SUMMARY_REQUEST))
    })
}

/// Everything a request sends, as one text.
fn sent_text(request: &Value) -> String {
    request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tokens of a request as the fake model counts them (about four characters a token, four per message).
fn sent_tokens(request: &Value) -> usize {
    request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["content"].as_str().unwrap_or_default().chars().count().div_ceil(4) + 4)
        .sum()
}

async fn pin(app: &TestApp, chat_id: Uuid, seq: i64) {
    let page: MessagePage = app.get(ALICE, &format!("/api/chats/{chat_id}/messages?limit=100")).await.parse();
    let id: Uuid = match page.messages.iter().find(|m| m.metadata.seq == seq) {
        Some(message) => message.id,
        None => sqlx::query_scalar("select message_id from chat.messages where chat_id = $1 and seq = $2")
            .bind(chat_id)
            .bind(seq)
            .fetch_one(&app.db)
            .await
            .expect("message"),
    };
    let pinned =
        app.json(ALICE, Method::PATCH, &format!("/api/chats/{chat_id}/messages/{id}"), json!({"pinned": true})).await;
    assert_eq!(pinned.status, StatusCode::OK, "{}", pinned.json);
}

#[sqlx::test(migrations = false)]
async fn a_chat_far_past_the_window_keeps_answering_on_one_reused_summary(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: 500 long messages, the third pinned.
    let (app, chat_id) = long_chat(connect).await;
    pin(&app, chat_id, 3).await;

    // Act: three turns.
    let mut answers = Vec::new();
    for question in ["first question", "second question", "third question"] {
        let turn = app.post_chat(ALICE, json!({"id": chat_id, "message": question})).await;
        assert_eq!(turn.text(), format!("You said: {question}"));
        answers.push(turn);
    }

    // Assert: one summary, written once and reused by every turn.
    let (summaries, asked) = requests(&app);
    assert_eq!(summaries.len(), 1, "one summary call for three turns");
    assert_eq!(asked.len(), 3);
    for request in &asked {
        let text = sent_text(request);
        assert!(text.contains("Summary of the earlier part of this conversation"), "the summary is sent");
        assert!(text.contains("message 3: lorem"), "the pinned message is sent as it is");
        assert!(!text.contains("message 5: lorem"), "old messages are summarised, not sent");
        assert!(text.contains("message 499: lorem"), "the recent turns are sent as they are");
        assert!(
            sent_tokens(request) < WINDOW * 3 / 4,
            "the prompt fits with room for the answer: {}",
            sent_tokens(request)
        );
    }
    let summary_input = sent_text(&summaries[0]);
    assert!(summary_input.contains("message 480: lorem"), "the summary reads the folded messages");
    assert!(!summary_input.contains("message 3: lorem"), "a pinned message is never summarised");

    // Assert: each answer says a summary stood for the older messages, live and stored.
    for turn in &answers {
        let data: Vec<Value> = turn
            .json_chunks()
            .into_iter()
            .filter(|chunk| chunk["type"] == "data-summary")
            .map(|chunk| chunk["data"].clone())
            .collect();
        let last = data.last().expect("a data-summary part");
        assert_eq!(last["state"], "done");
        assert!(last["messages"].as_i64().is_some_and(|n| n > 400), "{last}");
        assert!(last["text"].as_str().is_some_and(|t| t.starts_with("Summary of the earlier conversation")));
    }
    let first = &answers[0].json_chunks();
    assert!(first.iter().any(|c| c["type"] == "data-summary" && c["data"]["state"] == "summarising"));
    let page: MessagePage = app.get(ALICE, &format!("/api/chats/{chat_id}/messages?limit=2")).await.parse();
    let stored = page.messages[1].parts.iter().find_map(|part| match part {
        MessagePart::Data(data) if data.kind == "data-summary" => Some(data.data.clone()),
        _ => None,
    });
    assert_eq!(stored.map(|d| d["state"].clone()), Some(json!("done")));
}

#[sqlx::test(migrations = false)]
async fn pinning_a_summarised_message_brings_it_back_and_folds_again(_: PgPoolOptions, connect: PgConnectOptions) {
    let (app, chat_id) = long_chat(connect).await;
    app.post_chat(ALICE, json!({"id": chat_id, "message": "first question"})).await;

    pin(&app, chat_id, 100).await;
    app.post_chat(ALICE, json!({"id": chat_id, "message": "second question"})).await;

    let (summaries, asked) = requests(&app);
    assert_eq!(summaries.len(), 2, "the summary that covered it was dropped and made again");
    assert!(!sent_text(&summaries[1]).contains("message 100: lorem"));
    assert!(sent_text(&asked[1]).contains("message 100: lorem"), "sent as it is from now on");
    assert!(!sent_text(&asked[0]).contains("message 100: lorem"));
}

#[sqlx::test(migrations = false)]
async fn models_say_their_window_and_messages_their_pin(_: PgPoolOptions, connect: PgConnectOptions) {
    let (app, chat_id) = long_chat(connect).await;

    let models = app.get(ALICE, "/api/models").await;
    pin(&app, chat_id, 499).await;
    let page: MessagePage = app.get(ALICE, &format!("/api/chats/{chat_id}/messages?limit=2")).await.parse();
    let other = app
        .json(
            ALICE,
            Method::PATCH,
            &format!("/api/chats/{chat_id}/messages/{}", Uuid::new_v4()),
            json!({"pinned": true}),
        )
        .await;
    let bobs = app
        .json(
            crate::helpers::BOB,
            Method::PATCH,
            &format!("/api/chats/{chat_id}/messages/{}", page.messages[0].id),
            json!({"pinned": false}),
        )
        .await;

    let windows: Vec<(String, u64)> = models.json["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| (m["id"].as_str().unwrap_or_default().to_owned(), m["context_tokens"].as_u64().unwrap_or_default()))
        .collect();
    assert!(windows.contains(&(MODEL.to_owned(), WINDOW as u64)), "{windows:?}");
    assert!(windows.contains(&("other-model".to_owned(), 32_768)), "the default window: {windows:?}");
    assert!(page.messages[0].metadata.pinned);
    assert!(!page.messages[1].metadata.pinned);
    other.assert_error(StatusCode::NOT_FOUND, "not_found");
    bobs.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test(migrations = false)]
async fn a_summarised_turn_goes_on_after_its_tool_calls(_: PgPoolOptions, connect: PgConnectOptions) {
    let (app, chat_id) = long_chat(connect).await;

    let turn = app.post_chat(ALICE, json!({"id": chat_id, "message": "Who am I? [[fake call=current_user]]"})).await;

    assert!(turn.text().starts_with("Results"), "the model answered after the call: {}", turn.text());
    let (summaries, asked) = requests(&app);
    assert_eq!((summaries.len(), asked.len()), (1, 2));
    let after_call = asked[1]["messages"].as_array().expect("messages");
    let answer = &after_call[after_call.len() - 2];
    assert_eq!(answer["role"], "assistant");
    assert!(answer["tool_calls"].is_array(), "the call goes back, nothing about the summary: {answer}");
    assert_eq!(after_call.last().map(|m| m["role"].clone()), Some(json!("tool")));
    assert!(sent_text(&asked[1]).contains("Summary of the earlier part of this conversation"));
}
