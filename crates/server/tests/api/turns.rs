//! Streaming turns: storage, statuses, retries, stop, resume, idempotency, isolation.

use std::time::{Duration, Instant};

use fake_databricks::scenario::numbered_text;
use fake_databricks::{Scenario, Step};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{GenerationView, MessagePage, MessageStatus, Role, TurnState, UiChunk};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, MODEL, TestApp, model_env};
use crate::streams::{chunks_of, text_of};

fn lean(chat_id: Uuid, message: &str) -> Value {
    json!({"id": chat_id, "message": message})
}

async fn history(app: &TestApp, user: &str, chat_id: Uuid) -> MessagePage {
    app.get(user, &format!("/api/chats/{chat_id}/messages")).await.parse()
}

#[sqlx::test(migrations = false)]
async fn a_full_turn_streams_and_stores_both_messages_in_order(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();

    // Act
    let turn = app.post_chat(ALICE, lean(chat_id, "Hello [[fake tokens=12 reasoning=3]]")).await;

    // Assert: the stream.
    assert_eq!(turn.status, StatusCode::OK);
    assert_eq!(turn.headers["content-type"], "text/event-stream");
    assert_eq!(turn.headers["x-vercel-ai-ui-message-stream"], "v1");
    assert_eq!(turn.headers["x-chat-id"], chat_id.to_string().as_str());
    let message_id = turn.message_id().expect("start chunk names the message");
    assert_eq!(turn.headers["x-message-id"], message_id.to_string().as_str());
    assert_eq!(turn.text(), numbered_text(12));
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete));
    assert!(turn.raw.trim_end().ends_with("data: [DONE]"));
    let ids = turn.ids();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "every event has the next sequence number");
    assert!(matches!(turn.chunks().first(), Some(UiChunk::Start { .. })));
    assert!(turn.chunks().iter().any(|c| matches!(c, UiChunk::DataChat { data, .. } if data.id == chat_id)));

    // Assert: what was stored.
    let page = history(&app, ALICE, chat_id).await;
    assert_eq!(page.messages.len(), 2);
    let (user, answer) = (&page.messages[0], &page.messages[1]);
    assert_eq!((user.role, user.metadata.seq, user.metadata.status), (Role::User, 1, MessageStatus::Complete));
    assert_eq!(user.text(), "Hello [[fake tokens=12 reasoning=3]]");
    assert_eq!(
        (answer.role, answer.metadata.seq, answer.metadata.status),
        (Role::Assistant, 2, MessageStatus::Complete)
    );
    assert_eq!(answer.id, message_id);
    assert_eq!(answer.text(), numbered_text(12));
    assert_eq!(answer.parts[0], shared::MessagePart::Reasoning { text: "r1 r2 r3".into() });
    assert_eq!(answer.metadata.model.as_deref(), Some(MODEL));
    assert_eq!(answer.metadata.usage.and_then(|u| u.output_tokens), Some(12));
    assert_eq!(answer.metadata.resume_cursor, None);
}

#[sqlx::test(migrations = false)]
async fn the_ai_sdk_transport_body_works_and_only_the_last_user_message_is_read(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let first = app.post_chat(ALICE, lean(chat_id, "first question")).await;

    // The client's copy of the history is wrong on purpose: the server must not trust it.
    let body = json!({
        "id": chat_id,
        "trigger": "submit-message",
        "model": MODEL,
        "messages": [
            {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "INVENTED HISTORY"}]},
            {"id": "a1", "role": "assistant", "parts": [{"type": "step-start"}, {"type": "text", "text": "INVENTED ANSWER", "state": "done"}]},
            {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "second question"}]}
        ]
    });
    let second = app.post_chat(ALICE, body).await;

    assert_eq!(first.final_status(), Some(MessageStatus::Complete));
    assert_eq!(second.text(), "You said: second question");
    let sent = app.fake().requests().last().expect("a model request").body.clone();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "You said: first question"},
            {"role": "user", "content": "second question"}
        ])
    );
    assert_eq!(sent["stream"], true);
    assert!(sent.get("stream_options").is_none(), "Databricks rejects stream_options");
}

#[sqlx::test(migrations = false)]
async fn system_prompt_and_sampling_settings_are_sent(_: PgPoolOptions, connect: PgConnectOptions) {
    let fake = fake_databricks::FakeWorkspace::start().await;
    let env = model_env(&fake)
        .with("SYSTEM_PROMPT", "You are terse.")
        .with("LLM_TEMPERATURE", "0.3")
        .with("LLM_MAX_TOKENS", "256");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;

    app.post_chat(ALICE, lean(Uuid::new_v4(), "hi")).await;

    let sent = app.fake().requests()[0].body.clone();
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "You are terse."}));
    assert_eq!(sent["max_tokens"], 256);
    assert!((sent["temperature"].as_f64().unwrap_or_default() - 0.3).abs() < 1e-6);
    assert_eq!(sent["model"], MODEL);
    assert!(sent.get("context").is_none(), "a plain model gets no agent context: {sent}");
}

#[sqlx::test(migrations = false)]
async fn a_client_disconnect_never_cancels_the_answer(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();

    let mut stream = app.open_chat(ALICE, lean(chat_id, "[[fake tokens=30 delay_ms=20]]")).await;
    stream.read_until_text("w3").await;
    drop(stream);

    let answer = wait_for_answer(&app, chat_id).await;
    assert_eq!(answer.metadata.status, MessageStatus::Complete);
    assert_eq!(answer.text(), numbered_text(30));
}

#[sqlx::test(migrations = false)]
async fn stop_ends_the_answer_as_stopped_and_keeps_the_partial_text(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, lean(chat_id, "[[fake tokens=200 delay_ms=20]]")).await;
    let seen = stream.read_until_text("w5").await;

    let stop = app.json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/stop"), json!({})).await;
    let rest = stream.rest().await;

    // The stop answers once the stopped answer is stored: `stopped` means it took effect.
    assert_eq!(stop.status, StatusCode::OK);
    assert_eq!(stop.json["status"], "stopped");
    let chunks = [chunks_of(&seen), chunks_of(&rest)].concat();
    assert!(chunks.iter().any(|c| matches!(c, UiChunk::Abort)));
    let streamed_text = text_of(&chunks);
    let answer = wait_for_answer(&app, chat_id).await;
    assert_eq!(answer.metadata.status, MessageStatus::Stopped);
    assert_eq!(answer.text(), streamed_text, "what the client saw is what was stored");
    assert!(numbered_text(200).starts_with(&answer.text()) && answer.text().len() < numbered_text(200).len());
    let again = app.json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/stop"), json!({})).await;
    assert_eq!(again.json["generation_id"], Value::Null, "nothing left to stop");
}

#[sqlx::test(migrations = false)]
async fn an_upstream_500_before_the_first_token_is_retried(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    app.fake().push(Scenario::http_error(500, "overloaded"));
    app.fake().push(Scenario::http_error(503, "still overloaded"));

    let turn = app.post_chat(ALICE, lean(Uuid::new_v4(), "[[fake tokens=4]]")).await;

    assert_eq!(turn.text(), numbered_text(4));
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete));
    assert_eq!(app.fake().requests().len(), 3);
    let retries = turn
        .chunks()
        .into_iter()
        .filter(|c| matches!(c, UiChunk::DataStatus { data: TurnState::Retrying { .. }, .. }))
        .count();
    assert_eq!(retries, 2, "the client is told the model is being retried");
}

#[sqlx::test(migrations = false)]
async fn an_error_before_the_first_token_inside_the_stream_is_retried_too(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    app.fake().push(Scenario::stream(vec![Step::Error { message: "boom".into() }]));
    app.fake().push(Scenario::stream(vec![Step::Raw { data: "{broken".into() }]));

    let turn = app.post_chat(ALICE, lean(Uuid::new_v4(), "[[fake tokens=3]]")).await;

    assert_eq!(turn.text(), numbered_text(3));
    assert_eq!(app.fake().requests().len(), 3);
}

#[sqlx::test(migrations = false)]
async fn an_error_mid_stream_ends_error_without_losing_the_partial_text(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();

    let turn = app.post_chat(ALICE, lean(chat_id, "[[fake tokens=10 fail_after=4]]")).await;

    assert_eq!(turn.text(), numbered_text(4));
    assert_eq!(turn.final_status(), Some(MessageStatus::Error));
    assert!(turn.error_text().is_some_and(|e| e.contains("fake failure mid-stream")), "{:?}", turn.error_text());
    assert_eq!(app.fake().requests().len(), 1, "nothing is retried after the first token");
    let answer = wait_for_answer(&app, chat_id).await;
    assert_eq!(answer.metadata.status, MessageStatus::Error);
    assert_eq!(answer.text(), numbered_text(4));
    assert!(answer.metadata.error.is_some());
}

#[sqlx::test(migrations = false)]
async fn a_cut_connection_or_a_malformed_chunk_mid_stream_ends_error(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;

    // The pause lets the first tokens leave the fake before it cuts the connection.
    let cut = app.post_chat(ALICE, lean(Uuid::new_v4(), "[[fake tokens=10 abort_after=3 delay_ms=10]]")).await;
    let malformed = app.post_chat(ALICE, lean(Uuid::new_v4(), "[[fake tokens=10 malformed_after=5]]")).await;

    assert_eq!((cut.text(), cut.final_status()), (numbered_text(3), Some(MessageStatus::Error)));
    assert_eq!((malformed.text(), malformed.final_status()), (numbered_text(5), Some(MessageStatus::Error)));
}

#[sqlx::test(migrations = false)]
async fn a_429_is_retried_after_the_retry_after_pause(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    app.fake().push(Scenario::http_error(429, "slow down").with_header("retry-after", "1"));

    let started = Instant::now();
    let turn = app.post_chat(ALICE, lean(Uuid::new_v4(), "[[fake tokens=2]]")).await;

    assert!(started.elapsed() >= Duration::from_secs(1), "waited as asked: {:?}", started.elapsed());
    assert_eq!(turn.text(), numbered_text(2));
    assert!(
        turn.chunks()
            .iter()
            .any(|c| matches!(c, UiChunk::DataStatus { data: TurnState::Retrying { after_secs: 1 }, .. }))
    );
}

#[sqlx::test(migrations = false)]
async fn a_429_asking_for_too_long_a_wait_fails_at_once_with_the_wait(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    app.fake().push(
        Scenario::http_error(429, "").with_header("retry-after", "120").with_header("content-type", "application/json"),
    );

    let started = Instant::now();
    let turn = app.post_chat(ALICE, lean(Uuid::new_v4(), "hi")).await;

    // It fails at once rather than waiting the 120 s asked for.
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(turn.final_status(), Some(MessageStatus::Error));
    let error = turn.error_text().unwrap_or_default();
    assert!(error.contains("rate limit") && error.contains("120"), "{error}");
    assert_eq!(app.fake().requests().len(), 1);
}

#[sqlx::test(migrations = false)]
async fn think_tags_are_stored_as_reasoning(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();

    let turn = app.post_chat(ALICE, lean(chat_id, "[[fake think=3 tokens=2]]")).await;

    assert_eq!(turn.text(), numbered_text(2));
    let answer = wait_for_answer(&app, chat_id).await;
    assert_eq!(answer.parts[0], shared::MessagePart::Reasoning { text: "t1 t2 t3".into() });
}

#[sqlx::test(migrations = false)]
async fn a_silent_model_is_given_up_after_the_idle_timeout(_: PgPoolOptions, connect: PgConnectOptions) {
    let fake = fake_databricks::FakeWorkspace::start().await;
    let env = model_env(&fake).with("LLM_IDLE_TIMEOUT_SECS", "1");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    app.fake().push(Scenario::stream(vec![Step::Text { text: "partial".into() }, Step::Hang]));

    let turn = app.post_chat(ALICE, lean(Uuid::new_v4(), "hi")).await;

    assert_eq!(turn.text(), "partial");
    assert_eq!(turn.final_status(), Some(MessageStatus::Error));
    assert!(turn.error_text().unwrap_or_default().contains("stopped responding"));
}

#[sqlx::test(migrations = false)]
async fn keep_alive_comments_flow_while_the_model_is_silent(_: PgPoolOptions, connect: PgConnectOptions) {
    let fake = fake_databricks::FakeWorkspace::start().await;
    let env = model_env(&fake).with("STREAM_KEEPALIVE_SECS", "1");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;

    let turn = app.post_chat(ALICE, lean(Uuid::new_v4(), "[[fake tokens=3 stall_after=1 stall_ms=2600]]")).await;

    assert!(turn.raw.contains(":ping") || turn.raw.contains(": ping"), "{}", turn.raw);
    assert_eq!(turn.text(), numbered_text(3));
}

#[sqlx::test(migrations = false)]
async fn resuming_from_an_event_id_yields_exactly_the_missing_suffix(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, lean(chat_id, "[[fake tokens=40 delay_ms=15]]")).await;
    let seen = stream.read_until_text("w10").await;
    let last_id = seen.iter().filter_map(|e| e.id).max().expect("ids");
    drop(stream);

    let resumed = app.resume(ALICE, chat_id, Some(last_id)).await;

    assert_eq!(resumed.status, StatusCode::OK);
    assert_eq!(resumed.ids().first().copied(), Some(last_id + 1), "continues right after the last id seen");
    let whole = format!("{}{}", text_of(&chunks_of(&seen)), resumed.text());
    assert_eq!(whole, numbered_text(40), "no duplicated and no missing text");
    assert_eq!(resumed.final_status(), Some(MessageStatus::Complete));
}

#[sqlx::test(migrations = false)]
async fn resuming_without_an_event_id_replays_from_the_start(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, lean(chat_id, "[[fake tokens=20 delay_ms=15]]")).await;
    stream.read_until_text("w5").await;

    let replay = app.resume(ALICE, chat_id, None).await;

    assert_eq!(replay.text(), numbered_text(20));
    assert!(matches!(replay.chunks().first(), Some(UiChunk::Start { .. })));
    assert_eq!(replay.message_id(), Some(wait_for_answer(&app, chat_id).await.id));
}

#[sqlx::test(migrations = false)]
async fn a_reloaded_history_continues_from_its_resume_cursor(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, lean(chat_id, "[[fake tokens=60 delay_ms=15]]")).await;
    stream.read_until_text("w20").await;
    tokio::time::sleep(Duration::from_millis(250)).await; // past a checkpoint

    let page = history(&app, ALICE, chat_id).await;
    let partial = page.messages.last().expect("the streaming answer").clone();
    let cursor = partial.metadata.resume_cursor.expect("a streaming message carries its resume cursor");
    let resumed = app.resume(ALICE, chat_id, Some(cursor as u64)).await;

    assert_eq!(partial.metadata.status, MessageStatus::Streaming);
    assert!(!partial.text().is_empty());
    assert_eq!(format!("{}{}", partial.text(), resumed.text()), numbered_text(60));
}

#[sqlx::test(migrations = false)]
async fn resume_answers_204_when_nothing_runs(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat = app.create_chat(ALICE, json!({})).await;

    let response = app.resume(ALICE, chat.id, None).await;
    let bad_cursor = app
        .send(
            app.request(Some(ALICE), Method::GET, &format!("/api/chat/{}/stream", chat.id))
                .header("last-event-id", "abc"),
        )
        .await;

    assert_eq!(response.status, StatusCode::NO_CONTENT);
    bad_cursor.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[sqlx::test(migrations = false)]
async fn resume_works_on_a_second_server_process(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: two servers on one database; the turn runs on the first.
    let first = TestApp::spawn_with_model(connect.clone()).await;
    let second = TestApp::spawn_with(connect, crate::helpers::test_env()).await;
    let chat_id = Uuid::new_v4();
    let mut stream = first.open_chat(ALICE, lean(chat_id, "[[fake tokens=50 delay_ms=20]]")).await;
    let seen = stream.read_until_text("w8").await;
    let last_id = seen.iter().filter_map(|e| e.id).max().expect("ids");
    drop(stream);

    // Act: the client reconnects to the other process.
    let resumed = second.resume(ALICE, chat_id, Some(last_id)).await;

    // Assert
    assert_eq!(resumed.status, StatusCode::OK);
    assert_eq!(format!("{}{}", text_of(&chunks_of(&seen)), resumed.text()), numbered_text(50));
    assert_eq!(resumed.ids().first().copied(), Some(last_id + 1));
    assert_eq!(resumed.final_status(), Some(MessageStatus::Complete));
}

#[sqlx::test(migrations = false)]
async fn stop_works_from_a_second_server_process(_: PgPoolOptions, connect: PgConnectOptions) {
    let first = TestApp::spawn_with_model(connect.clone()).await;
    let second = TestApp::spawn_with(connect, crate::helpers::test_env()).await;
    let chat_id = Uuid::new_v4();
    let mut stream = first.open_chat(ALICE, lean(chat_id, "[[fake tokens=300 delay_ms=20]]")).await;
    stream.read_until_text("w3").await;

    let stop = second.json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/stop"), json!({})).await;

    assert_eq!(stop.json["status"], "stopped", "{}", stop.json);
    let rest = stream.rest().await;
    assert!(chunks_of(&rest).iter().any(|c| matches!(c, UiChunk::Abort)));
}

#[sqlx::test(migrations = false)]
async fn concurrent_turns_on_one_chat_give_one_stream_and_one_409(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat = app.create_chat(ALICE, json!({})).await;
    let body_a = lean(chat.id, "[[fake tokens=20 delay_ms=20]] first");
    let body_b = lean(chat.id, "[[fake tokens=20 delay_ms=20]] second");

    let (a, b) = tokio::join!(app.open_chat(ALICE, body_a), app.open_chat(ALICE, body_b));

    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let conflict = app.post_chat(ALICE, lean(chat.id, "third")).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.json()["error"]["code"], "generation_in_progress");
    let running: Uuid =
        serde_json::from_value(conflict.json()["error"]["generation_id"].clone()).expect("the running id");
    let count: i64 = sqlx::query_scalar("select count(*) from chat.messages").fetch_one(&app.db).await.expect("count");
    assert_eq!(count, 2, "the refused turns stored nothing");
    let answer = wait_for_answer(&app, chat.id).await;
    assert_eq!(answer.id, running);
}

#[sqlx::test(migrations = false)]
async fn a_retried_post_with_the_same_message_id_creates_nothing_new(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let body = json!({"id": chat_id, "trigger": "submit-message",
                      "messages": [{"id": "client-msg-1", "role": "user", "parts": [{"type": "text", "text": "[[fake tokens=15 delay_ms=10]]"}]}]});

    let first = app.post_chat(ALICE, body.clone()).await;
    let retried = app.post_chat(ALICE, body).await;

    assert_eq!(first.message_id(), retried.message_id());
    assert_eq!(retried.text(), numbered_text(15), "the retry gets the same answer");
    let count: i64 = sqlx::query_scalar("select count(*) from chat.messages").fetch_one(&app.db).await.expect("count");
    assert_eq!(count, 2);
    assert_eq!(app.fake().requests().len(), 1, "the model was asked once");
}

#[sqlx::test(migrations = false)]
async fn a_retry_after_the_event_log_expired_replays_the_stored_answer(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let body = json!({"id": chat_id, "message": {"id": "client-msg-2", "role": "user",
                      "parts": [{"type": "text", "text": "[[fake tokens=12 reasoning=3]]"}]}});
    let first = app.post_chat(ALICE, body.clone()).await;
    assert_eq!(first.final_status(), Some(MessageStatus::Complete));

    // The retention sweep deleted the answer's events: only its stored parts are left.
    sqlx::query("delete from chat.generation_events").execute(&app.db).await.expect("purge");
    let retried = app.post_chat(ALICE, body).await;

    assert_eq!(retried.message_id(), first.message_id());
    assert_eq!(retried.text(), numbered_text(12));
    assert_eq!(retried.final_status(), Some(MessageStatus::Complete));
    let mut answer = shared::Answer::default();
    retried.chunks().iter().for_each(|chunk| {
        answer.apply(chunk);
    });
    let stored = wait_for_answer(&app, chat_id).await;
    assert_eq!(answer.parts, stored.parts, "the replay rebuilds the stored parts");
    assert!(matches!(retried.chunks().first(), Some(UiChunk::Start { .. })));
    assert!(retried.chunks().iter().any(|c| matches!(c, UiChunk::DataChat { .. })));
}

#[sqlx::test(migrations = false)]
async fn regenerate_adds_a_version_of_the_last_answer(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let first = app.post_chat(ALICE, lean(chat_id, "question")).await;
    app.fake().push(Scenario::tokens(["a ", "better ", "answer"]));

    let again = app.post_chat(ALICE, json!({"id": chat_id, "trigger": "regenerate-message", "messages": []})).await;

    assert_eq!(again.text(), "a better answer");
    let page = history(&app, ALICE, chat_id).await;
    assert_eq!(page.messages.len(), 2);
    assert_eq!(page.messages[1].text(), "a better answer");
    let first_id = first.message_id().expect("id");
    assert_ne!(page.messages[1].id, first_id);
    let versions = page.messages[1].metadata.branch.clone().expect("the first answer is kept as a version");
    assert_eq!(versions.siblings, [first_id, page.messages[1].id]);
    let sent = app.fake().requests().last().expect("request").body.clone();
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "question"}]));
}

#[sqlx::test(migrations = false)]
async fn unknown_models_and_bad_bodies_are_400(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();

    let unknown = app.post_chat(ALICE, json!({"id": chat_id, "message": "hi", "model": "gpt-nonexistent"})).await;
    let other =
        app.post_chat(ALICE, json!({"id": chat_id, "message": "hi [[fake tokens=1]]", "model": "other-model"})).await;
    let cases = [
        json!({"id": "not-a-uuid", "message": "hi"}),
        json!({"id": chat_id}),
        json!({"id": chat_id, "message": "   "}),
        json!({"id": chat_id, "message": "x".repeat(100_001)}),
        json!({"id": chat_id, "message": "hi", "extra": true}),
        json!({"id": chat_id, "messages": [{"role": "assistant", "parts": []}]}),
        json!({"id": chat_id, "message": {"id": "x".repeat(200), "role": "user", "parts": [{"type": "text", "text": "hi"}]}}),
        json!({"id": chat_id, "message": "hi", "trigger": "explode"}),
    ];

    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.json()["error"]["message"].as_str().unwrap_or_default().contains("gpt-nonexistent"));
    assert_eq!(other.status, StatusCode::OK, "a model from CHAT_MODELS is accepted");
    assert_eq!(app.fake().requests()[0].body["model"], "other-model");
    for body in cases {
        let response = app.post_chat(ALICE, body.clone()).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {}", response.raw);
    }
    let count: i64 = sqlx::query_scalar("select count(*) from chat.messages").fetch_one(&app.db).await.expect("count");
    assert_eq!(count, 2, "only the accepted turn stored anything");
}

#[sqlx::test(migrations = false)]
async fn the_model_list_offers_the_default_first(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;

    let models = app.get(ALICE, "/api/models").await;

    assert_eq!(models.json["default_model"], MODEL);
    assert_eq!(models.json["models"][0]["id"], MODEL);
    assert_eq!(models.json["models"][0]["is_default"], true);
    assert_eq!(
        models.json["models"][1],
        json!({"id": "other-model", "display_name": "Other Model", "is_default": false, "kind": "model", "tools": true,
               "context_tokens": 32_768})
    );
}

#[sqlx::test(migrations = false)]
async fn without_a_model_turns_are_refused_with_a_clear_503(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;

    let turn = app.post_chat(ALICE, lean(Uuid::new_v4(), "hi")).await;
    let models = app.get(ALICE, "/api/models").await;

    assert_eq!(turn.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(turn.json()["error"]["code"], "no_model");
    assert!(models.json["models"].as_array().is_some_and(Vec::is_empty));
    assert!(models.json["hint"].as_str().is_some_and(|h| h.contains("LLM_BASE_URL")));
}

#[sqlx::test(migrations = false)]
async fn another_users_chat_is_404_on_every_streaming_route_and_has_nothing_to_resume(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, lean(chat_id, "[[fake tokens=100 delay_ms=20]]")).await;
    stream.read_until_text("w2").await;
    let generation = history(&app, ALICE, chat_id).await.messages[1].id;

    let post = app.post_chat(BOB, lean(chat_id, "mine now")).await;
    let resume = app.resume(BOB, chat_id, None).await;
    let stop = app.json(BOB, Method::POST, &format!("/api/chat/{chat_id}/stop"), json!({})).await;
    let poll = app.get(BOB, &format!("/api/generations/{generation}")).await;

    assert_eq!(post.status, StatusCode::NOT_FOUND);
    assert_eq!(resume.status, StatusCode::NO_CONTENT, "the same answer as for a chat that does not exist");
    let unknown = app.resume(BOB, Uuid::new_v4(), None).await;
    assert_eq!(unknown.status, StatusCode::NO_CONTENT);
    let pinned = app
        .read_stream(
            app.request(Some(BOB), Method::GET, &format!("/api/chat/{chat_id}/stream?generation={generation}"))
                .header("last-event-id", "3"),
        )
        .await;
    assert_eq!(pinned.status, StatusCode::NO_CONTENT, "naming Alice's answer reveals nothing either");
    stop.assert_error(StatusCode::NOT_FOUND, "not_found");
    poll.assert_error(StatusCode::NOT_FOUND, "not_found");
    let rest = stream.rest().await;
    assert!(!chunks_of(&rest).iter().any(|c| matches!(c, UiChunk::Abort)), "Bob could not stop Alice's answer");
}

#[sqlx::test(migrations = false)]
async fn respond_async_returns_202_and_the_generation_can_be_polled(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();

    let accepted = app
        .send(
            app.request(Some(ALICE), Method::POST, "/api/chat")
                .header("prefer", "respond-async")
                .json(&lean(chat_id, "[[fake tokens=25 delay_ms=10]]")),
        )
        .await;
    let generation_id = accepted.json["generation_id"].as_str().expect("generation id").to_owned();
    let mut view: GenerationView;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        view = app.get(ALICE, &format!("/api/generations/{generation_id}")).await.parse();
        if view.status.is_terminal() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    assert_eq!(accepted.headers["location"], format!("/api/generations/{generation_id}").as_str());
    assert_eq!(view.status, MessageStatus::Complete);
    assert_eq!(view.text, numbered_text(25));
    assert_eq!(view.chat_id, chat_id);
}

#[sqlx::test(migrations = false)]
async fn the_plain_text_transport_streams_just_the_text(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;

    let turn = app
        .read_stream(
            app.request(Some(ALICE), Method::POST, "/api/chat")
                .header("accept", "text/plain")
                .json(&lean(Uuid::new_v4(), "[[fake tokens=7 reasoning=2]]")),
        )
        .await;

    assert_eq!(turn.status, StatusCode::OK);
    assert!(turn.headers["content-type"].to_str().is_ok_and(|t| t.starts_with("text/plain")));
    assert_eq!(turn.raw, numbered_text(7));
}

#[sqlx::test(migrations = false)]
async fn a_new_chat_gets_a_title_at_once_then_one_from_the_model(_: PgPoolOptions, connect: PgConnectOptions) {
    let fake = fake_databricks::FakeWorkspace::start().await;
    fake.set_model_reply("title-model", Scenario::tokens(["\"Lisbon ", "Trip ", "Plan.\""]));
    let env = model_env(&fake).with("TITLE_GENERATION", "true").with("TITLE_MODEL", "title-model");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let chat_id = Uuid::new_v4();

    let turn = app.post_chat(ALICE, lean(chat_id, "   Plan a   trip to Lisbon [[fake tokens=40 delay_ms=25]]")).await;
    let second = app.post_chat(ALICE, lean(chat_id, "and Porto?")).await;

    let titles = |chunks: Vec<UiChunk>| -> Vec<String> {
        chunks
            .into_iter()
            .filter_map(|c| match c {
                UiChunk::DataChat { data, .. } => Some(data.title),
                _ => None,
            })
            .collect()
    };
    assert_eq!(titles(turn.chunks()), ["Plan a trip to Lisbon [[fake tokens=40 delay_ms=25]]", "Lisbon Trip Plan"]);
    assert_eq!(titles(second.chunks()), ["Lisbon Trip Plan"], "later turns carry the current title");
    let chat = app.get(ALICE, &format!("/api/chats/{chat_id}")).await;
    assert_eq!(chat.json["title"], "Lisbon Trip Plan");
    let title_requests = app.fake().requests_for("title-model");
    assert_eq!(title_requests.len(), 1, "only a new chat is titled");
    assert!(title_requests[0].body["messages"][1]["content"].as_str().is_some_and(|c| c.contains("trip to Lisbon")));
}

#[sqlx::test(migrations = false)]
async fn a_title_the_user_chose_is_never_replaced(_: PgPoolOptions, connect: PgConnectOptions) {
    let fake = fake_databricks::FakeWorkspace::start().await;
    fake.set_model_reply("title-model", Scenario::tokens(["Generated"]).with_step_delay(Duration::from_millis(400)));
    let env = model_env(&fake).with("TITLE_GENERATION", "true").with("TITLE_MODEL", "title-model");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let chat_id = Uuid::new_v4();

    let mut stream = app.open_chat(ALICE, lean(chat_id, "hello [[fake tokens=60 delay_ms=20]]")).await;
    stream.read_until_text("w1").await;
    app.json(ALICE, Method::PATCH, &format!("/api/chats/{chat_id}"), json!({"title": "Mine"})).await;
    stream.rest().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let chat = app.get(ALICE, &format!("/api/chats/{chat_id}")).await;
    assert_eq!(chat.json["title"], "Mine");
}

#[sqlx::test(migrations = false)]
async fn a_shutdown_lets_running_answers_finish(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect.clone()).await;
    let db = PgPoolOptions::new().connect_with(connect).await.expect("pool");
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, lean(chat_id, "[[fake tokens=30 delay_ms=20]]")).await;
    stream.read_until_text("w2").await;

    let (_, rest) = tokio::join!(app.shutdown(), stream.rest());

    assert_eq!(text_of(&chunks_of(&rest)).split_whitespace().last(), Some("w30"));
    let status: String = sqlx::query_scalar("select status from chat.messages where role = 'assistant'")
        .fetch_one(&db)
        .await
        .expect("row");
    assert_eq!(status, "complete");
}

#[sqlx::test(migrations = false)]
async fn a_shutdown_past_the_drain_deadline_stores_the_answer_as_interrupted(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_with_model(connect.clone()).await;
    let db = PgPoolOptions::new().connect_with(connect).await.expect("pool");
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, lean(chat_id, "[[fake tokens=1000 delay_ms=20]]")).await;
    stream.read_until_text("w2").await;

    let (_, rest) = tokio::join!(app.shutdown(), stream.rest());

    let chunks = chunks_of(&rest);
    assert!(chunks.iter().any(|c| matches!(c, UiChunk::Finish { .. })), "the stream ends properly");
    let (status, text): (String, String) = sqlx::query_as(
        "select status, coalesce((select string_agg(p->>'text', '') from jsonb_array_elements(parts) p), '') from chat.messages where role = 'assistant'",
    )
    .fetch_one(&db)
    .await
    .expect("row");
    assert_eq!(status, "interrupted");
    assert!(text.starts_with("w1 w2") && numbered_text(1000).starts_with(&text), "partial text kept: {text}");
}

/// Polls until the chat's answer is no longer streaming.
pub async fn wait_for_answer(app: &TestApp, chat_id: Uuid) -> shared::UiMessage {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let page = history(app, ALICE, chat_id).await;
        if let Some(answer) = page.messages.iter().rev().find(|m| m.role == Role::Assistant)
            && (answer.metadata.status.is_terminal() || Instant::now() > deadline)
        {
            return answer.clone();
        }
        assert!(Instant::now() < deadline, "no terminal answer in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn the_next_message_can_be_sent_as_soon_as_the_stream_ends(_: PgPoolOptions, connect: PgConnectOptions) {
    // Regression: `finish` used to reach the client before the end was stored, so an immediate next message
    // sometimes found the previous turn still running (409).
    let app = TestApp::spawn_with_model(connect).await;
    let chat_id = Uuid::new_v4();

    for i in 0..25 {
        let turn = app.post_chat(ALICE, lean(chat_id, &format!("message {i} [[fake tokens=2]]"))).await;
        assert_eq!(turn.status, StatusCode::OK, "turn {i}: {}", turn.raw);
        let page = history(&app, ALICE, chat_id).await;
        assert_eq!(page.messages.last().map(|m| m.metadata.status), Some(MessageStatus::Complete), "turn {i}");
    }
}

#[sqlx::test(migrations = false)]
async fn many_simultaneous_turns_on_one_chat_never_fail_with_500(_: PgPoolOptions, connect: PgConnectOptions) {
    // Regression: the check for a streaming answer used the snapshot taken before waiting for the chat lock, so a
    // turn queued behind another missed its answer and hit the unique index (500 instead of 409).
    let app = TestApp::spawn_with_model(connect).await;
    for round in 0..5 {
        let chat = app.create_chat(ALICE, json!({})).await;
        let bodies: Vec<Value> =
            (0..6).map(|i| lean(chat.id, &format!("[[fake tokens=5 delay_ms=20]] {round}-{i}"))).collect();

        let opened = futures::future::join_all(bodies.into_iter().map(|body| app.open_chat(ALICE, body))).await;

        let mut statuses: Vec<StatusCode> = opened.iter().map(|o| o.status).collect();
        statuses.sort();
        assert_eq!(statuses[0], StatusCode::OK, "round {round}");
        assert!(statuses[1..].iter().all(|s| *s == StatusCode::CONFLICT), "round {round}: {statuses:?}");
    }
}
