//! Conversations as trees: edits and regenerated answers are versions kept side by side, the model sees only the
//! branch being continued, and the branch a chat shows is remembered.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{MessagePage, Role, UiMessage};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, TestApp};

fn lean(chat_id: Uuid, message: &str) -> Value {
    json!({"id": chat_id, "message": message})
}

async fn shown(app: &TestApp, chat_id: Uuid, query: &str) -> MessagePage {
    let response = app.get(ALICE, &format!("/api/chats/{chat_id}/messages{query}")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json);
    response.parse()
}

fn texts(page: &MessagePage) -> Vec<String> {
    page.messages.iter().map(UiMessage::text).collect()
}

/// The conversation the fake model received last, as (role, text) pairs.
fn last_prompt(app: &TestApp) -> Vec<(String, String)> {
    let sent = app.fake().requests().last().expect("a model request").body.clone();
    sent["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (m["role"].as_str().unwrap_or_default().to_owned(), m["content"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

fn said(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(role, text)| ((*role).to_owned(), (*text).to_owned())).collect()
}

async fn message_count(app: &TestApp, chat_id: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from chat.messages where chat_id = $1")
        .bind(chat_id)
        .fetch_one(&app.db)
        .await
        .expect("count")
}

#[sqlx::test(migrations = false)]
async fn edits_and_regenerated_answers_keep_every_version_and_the_model_sees_only_the_branch(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: two turns.
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    app.post_chat(ALICE, lean(chat_id, "one")).await;
    app.post_chat(ALICE, lean(chat_id, "two")).await;
    let before = shown(&app, chat_id, "").await;
    let question_two = before.messages[2].id;
    let answer_two = before.messages[3].id;

    // Act: edit the second question, then answer the edit again.
    let edited = app
        .post_chat(ALICE, json!({"id": chat_id, "message": "two, better", "messageId": question_two.to_string()}))
        .await;
    let edit_prompt = last_prompt(&app);
    let regenerated = app.post_chat(ALICE, json!({"id": chat_id, "trigger": "regenerate-message"})).await;
    let regenerate_prompt = last_prompt(&app);

    // Assert: the model saw the branch being continued, and only it.
    let expected = said(&[("user", "one"), ("assistant", "You said: one"), ("user", "two, better")]);
    assert_eq!(edit_prompt, expected);
    assert_eq!(regenerate_prompt, expected);
    assert_eq!(edited.text(), "You said: two, better");
    assert_eq!(regenerated.text(), "You said: two, better");

    // Assert: the chat shows the newest versions, each knowing its siblings; nothing was deleted.
    let page = shown(&app, chat_id, "").await;
    assert_eq!(texts(&page), ["one", "You said: one", "two, better", "You said: two, better"]);
    let (question, answer) = (&page.messages[2], &page.messages[3]);
    let question_versions = question.metadata.branch.clone().expect("the question has two versions");
    assert_eq!(question_versions.siblings, [question_two, question.id]);
    assert_eq!(question_versions.index, 1);
    let answer_versions = answer.metadata.branch.clone().expect("the answer has two versions");
    assert_eq!(answer_versions.siblings, [edited.message_id().expect("id"), regenerated.message_id().expect("id")]);
    assert_eq!(answer_versions.index, 1);
    assert_eq!(answer.metadata.parent_id, Some(question.id));
    assert!(page.messages[0].metadata.branch.is_none(), "a message with one version has no branch");
    assert_eq!(page.leaf_id, Some(answer.id));
    assert_eq!(message_count(&app, chat_id).await, 7);

    // Act + assert: another branch can be read without switching to it.
    let old = shown(&app, chat_id, &format!("?leaf={question_two}")).await;
    assert_eq!(texts(&old), ["one", "You said: one", "two", "You said: two"]);
    assert_eq!(old.leaf_id, Some(answer_two));
    assert_eq!(texts(&shown(&app, chat_id, "").await)[2], "two, better", "reading is not switching");

    // Act: switch to the first version, in one request, and continue it.
    let switched = app
        .json(ALICE, Method::POST, &format!("/api/chats/{chat_id}/branch"), json!({"message_id": question_two}))
        .await;
    assert_eq!(switched.status, StatusCode::OK, "{}", switched.json);
    let switched: MessagePage = switched.parse();
    assert_eq!(texts(&switched), ["one", "You said: one", "two", "You said: two"]);
    let reloaded = shown(&app, chat_id, "").await;
    assert_eq!(texts(&reloaded), texts(&switched), "the switch is remembered");
    app.post_chat(ALICE, lean(chat_id, "three")).await;

    // Assert: the continuation follows the first version.
    assert_eq!(
        last_prompt(&app),
        said(&[
            ("user", "one"),
            ("assistant", "You said: one"),
            ("user", "two"),
            ("assistant", "You said: two"),
            ("user", "three"),
        ])
    );
    let page = shown(&app, chat_id, "").await;
    assert_eq!(texts(&page), ["one", "You said: one", "two", "You said: two", "three", "You said: three"]);
    assert_eq!(page.messages[2].metadata.branch.as_ref().map(|b| b.index), Some(0));
    assert_eq!(message_count(&app, chat_id).await, 9);
}

#[sqlx::test(migrations = false)]
async fn the_ai_sdk_edit_regenerate_and_branch_of_the_client_are_honoured(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let user = |id: &str, text: &str| json!({"id": id, "role": "user", "parts": [{"type": "text", "text": text}]});
    let assistant = |id: Uuid| json!({"id": id, "role": "assistant", "parts": []});
    let first = app
        .post_chat(ALICE, json!({"id": chat_id, "trigger": "submit-message", "messages": [user("c1", "one")]}))
        .await;
    let first_answer = first.message_id().expect("id");
    let second = app
        .post_chat(
            ALICE,
            json!({"id": chat_id, "trigger": "submit-message",
                   "messages": [user("c1", "one"), assistant(first_answer), user("c2", "two")]}),
        )
        .await;

    // An AI SDK edit sends the new text under the id of the message it replaces (a client id before a reload).
    let edit = app
        .post_chat(
            ALICE,
            json!({"id": chat_id, "trigger": "submit-message", "messageId": "c2",
                   "messages": [user("c1", "one"), assistant(first_answer), user("c2", "two, edited")]}),
        )
        .await;
    assert_eq!(edit.text(), "You said: two, edited", "an edit is not taken for a retry of the message");
    let page = shown(&app, chat_id, "").await;
    assert_eq!(texts(&page), ["one", "You said: one", "two, edited", "You said: two, edited"]);
    assert_eq!(page.messages[2].metadata.branch.as_ref().map(|b| b.siblings.len()), Some(2));

    // Regenerating an older answer by id makes a version of it, answering its own question.
    let again = app
        .post_chat(
            ALICE,
            json!({"id": chat_id, "trigger": "regenerate-message", "messageId": first_answer.to_string(),
                   "messages": [user("c1", "one")]}),
        )
        .await;
    assert_eq!(last_prompt(&app), said(&[("user", "one")]));
    let page = shown(&app, chat_id, "").await;
    assert_eq!(texts(&page), ["one", "You said: one"]);
    assert_eq!(page.messages[1].id, again.message_id().expect("id"));
    assert_eq!(page.messages[1].metadata.branch.as_ref().map(|b| (b.siblings.len(), b.index)), Some((2, 1)));

    // A client still showing the edited branch continues it, although the chat shows another one now.
    let edit_answer = edit.message_id().expect("id");
    app.post_chat(
        ALICE,
        json!({"id": chat_id, "trigger": "submit-message",
               "messages": [user("c1", "one"), assistant(first_answer), user("c3", "two, edited"),
                            assistant(edit_answer), user("c4", "three")]}),
    )
    .await;
    assert_eq!(
        last_prompt(&app),
        said(&[
            ("user", "one"),
            ("assistant", "You said: one"),
            ("user", "two, edited"),
            ("assistant", "You said: two, edited"),
            ("user", "three"),
        ])
    );
    assert_eq!(texts(&shown(&app, chat_id, "").await).last().map(String::as_str), Some("You said: three"));
    assert!(second.message_id().is_some());
}

#[sqlx::test(migrations = false)]
async fn a_retried_edit_is_recognised_and_creates_nothing(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    app.post_chat(ALICE, lean(chat_id, "one")).await;
    let question = shown(&app, chat_id, "").await.messages[0].id;
    let edit = json!({"id": chat_id, "messageId": question.to_string(),
                      "message": {"id": "edit-1", "role": "user", "parts": [{"type": "text", "text": "uno"}]}});

    let first = app.post_chat(ALICE, edit.clone()).await;
    let retried = app.post_chat(ALICE, edit).await;

    assert_eq!(first.message_id(), retried.message_id());
    assert_eq!(message_count(&app, chat_id).await, 4);
    let roots = shown(&app, chat_id, "").await.messages[0].metadata.branch.clone().expect("two versions");
    assert_eq!(roots.siblings.len(), 2, "the first question's edit is a second root");
}

#[sqlx::test(migrations = false)]
async fn branches_are_refused_clearly_and_changed_by_nobody_else(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let other_chat = Uuid::new_v4();
    app.post_chat(ALICE, lean(chat_id, "one")).await;
    app.post_chat(ALICE, lean(other_chat, "elsewhere")).await;
    let elsewhere = shown(&app, other_chat, "").await.messages[0].id;
    let question = shown(&app, chat_id, "").await.messages[0].id;
    let branch = format!("/api/chats/{chat_id}/branch");

    let foreign = app.json(ALICE, Method::POST, &branch, json!({"message_id": elsewhere})).await;
    let unknown = app.json(ALICE, Method::POST, &branch, json!({"message_id": Uuid::new_v4()})).await;
    let bobs = app.json(BOB, Method::POST, &branch, json!({"message_id": question})).await;
    let malformed = app.json(ALICE, Method::POST, &branch, json!({"message": question})).await;
    let read_foreign = app.get(ALICE, &format!("/api/chats/{chat_id}/messages?leaf={elsewhere}")).await;
    let bad_edit =
        app.post_chat(ALICE, json!({"id": chat_id, "message": "x", "messageId": elsewhere.to_string()})).await;
    let edit_answer = app
        .post_chat(
            ALICE,
            json!({"id": chat_id, "message": "x", "messageId": shown(&app, chat_id, "").await.messages[1].id}),
        )
        .await;

    foreign.assert_error(StatusCode::NOT_FOUND, "not_found");
    unknown.assert_error(StatusCode::NOT_FOUND, "not_found");
    bobs.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    read_foreign.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(bad_edit.status, StatusCode::BAD_REQUEST);
    assert_eq!(edit_answer.status, StatusCode::BAD_REQUEST, "only questions are edited");
    assert_eq!(message_count(&app, chat_id).await, 2, "nothing changed");
}

#[sqlx::test(migrations = false)]
async fn no_switch_while_an_answer_is_written(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    app.post_chat(ALICE, lean(chat_id, "one")).await;
    let question = shown(&app, chat_id, "").await.messages[0].id;
    let started = app
        .send(
            app.request(Some(ALICE), Method::POST, "/api/chat")
                .header("prefer", "respond-async")
                .json(&lean(chat_id, "slow [[fake tokens=400 delay_ms=20]]")),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED);

    let refused =
        app.json(ALICE, Method::POST, &format!("/api/chats/{chat_id}/branch"), json!({"message_id": question})).await;

    refused.assert_error(StatusCode::CONFLICT, "generation_in_progress");
    app.json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/stop"), json!({})).await;
}

#[sqlx::test(migrations = false)]
async fn a_search_hit_on_a_hidden_branch_names_the_message_that_opens_it(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    app.post_chat(ALICE, lean(chat_id, "walrus facts")).await;
    let question = shown(&app, chat_id, "").await.messages[0].id;
    app.post_chat(ALICE, json!({"id": chat_id, "message": "penguin facts", "messageId": question.to_string()})).await;

    let hits = app.get(ALICE, "/api/chats?q=walrus").await;

    assert_eq!(hits.status, StatusCode::OK);
    let chat = &hits.json["chats"][0];
    assert_eq!(chat["id"], chat_id.to_string());
    let matched: Uuid = serde_json::from_value(chat["matched_message_id"].clone()).expect("the hit names its message");
    let opened = shown(&app, chat_id, &format!("?leaf={matched}")).await;
    assert!(texts(&opened).iter().any(|t| t.contains("walrus")), "the hidden branch opens: {:?}", texts(&opened));
    assert!(texts(&shown(&app, chat_id, "").await).iter().all(|t| !t.contains("walrus")), "it stays hidden");
    assert_eq!(opened.messages[0].role, Role::User);
}

#[sqlx::test(migrations = false)]
async fn pages_of_a_long_branch_walk_up_to_its_root(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    for i in 0..4 {
        app.post_chat(ALICE, lean(chat_id, &format!("q{i}"))).await;
    }
    let question = shown(&app, chat_id, "").await.messages[2].id;
    app.post_chat(ALICE, json!({"id": chat_id, "message": "q1 again", "messageId": question.to_string()})).await;

    let newest = shown(&app, chat_id, "?limit=3").await;
    let before = newest.next_before.clone().expect("more");
    let oldest = shown(&app, chat_id, &format!("?limit=3&before={before}")).await;

    assert_eq!(texts(&newest), ["You said: q0", "q1 again", "You said: q1 again"]);
    assert_eq!(texts(&oldest), ["q0"]);
    assert_eq!(oldest.next_before, None);
    assert_eq!(oldest.leaf_id, None, "a later page does not repeat the leaf");
}
