//! Per-user limits on starting turns: refused with 429 and `Retry-After`, without storing anything, and only for
//! the user who reached them.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, TestApp, model_env};

fn lean(chat_id: Uuid, message: &str) -> Value {
    json!({"id": chat_id, "message": message})
}

async fn message_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from chat.messages").fetch_one(&app.db).await.expect("count")
}

#[sqlx::test(migrations = false)]
async fn a_user_over_the_turn_rate_waits_and_nothing_is_stored(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let fake = fake_databricks::FakeWorkspace::start().await;
    let env = model_env(&fake).with("TURNS_PER_MINUTE", "3");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let chat_id = Uuid::new_v4();
    for i in 0..3 {
        let turn = app.post_chat(ALICE, lean(chat_id, &format!("turn {i} [[fake tokens=1]]"))).await;
        assert_eq!(turn.status, StatusCode::OK, "{}", turn.raw);
    }
    let stored = message_count(&app).await;

    // Act
    let refused =
        app.send(app.request(Some(ALICE), reqwest::Method::POST, "/api/chat").json(&lean(chat_id, "one more"))).await;

    // Assert
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = refused.headers["retry-after"].to_str().ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!((1..=20).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(message_count(&app).await, stored, "the refused message was not stored");
    let bob = app.post_chat(BOB, lean(Uuid::new_v4(), "hello [[fake tokens=1]]")).await;
    assert_eq!(bob.status, StatusCode::OK, "other users are not affected");
}

#[sqlx::test(migrations = false)]
async fn a_user_with_the_maximum_answers_running_must_wait_for_one(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: two long answers running for Alice.
    let fake = fake_databricks::FakeWorkspace::start().await;
    let env = model_env(&fake).with("MAX_CONCURRENT_TURNS_PER_USER", "2");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let mut streams = Vec::new();
    for chat in [first, second] {
        let mut stream = app.open_chat(ALICE, lean(chat, "long [[fake tokens=400 delay_ms=10]]")).await;
        assert_eq!(stream.status, StatusCode::OK);
        stream.read_until_text("w1").await;
        streams.push(stream);
    }

    // Act
    let third = Uuid::new_v4();
    let refused =
        app.send(app.request(Some(ALICE), reqwest::Method::POST, "/api/chat").json(&lean(third, "third"))).await;

    // Assert: refused without creating the chat; Bob is unaffected; once one answer ends Alice may start again.
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(app.get(ALICE, &format!("/api/chats/{third}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.post_chat(BOB, lean(Uuid::new_v4(), "hi [[fake tokens=1]]")).await.status, StatusCode::OK);
    let stop = app.json(ALICE, reqwest::Method::POST, &format!("/api/chat/{first}/stop"), json!({})).await;
    assert_eq!(stop.status, StatusCode::OK, "{}", stop.json);
    streams[0].rest().await;
    let mut started = false;
    for _ in 0..50 {
        let turn = app.post_chat(ALICE, lean(third, "third [[fake tokens=1]]")).await;
        if turn.status == StatusCode::OK {
            started = true;
            break;
        }
        // The place is freed when the stopped answer's task ends, just after its final status is stored.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(started, "a freed place can be used");
}

/// Two server processes on one database (in this test process: each has its own engine, as separate processes do),
/// sharing one fake model.
async fn two_replicas(connect: PgConnectOptions, env: &[(&str, &str)]) -> (TestApp, TestApp) {
    let fake = fake_databricks::FakeWorkspace::start().await;
    let mut vars = model_env(&fake);
    for (name, value) in env {
        vars = vars.with(name, value);
    }
    let first = TestApp::spawn_with_fake(connect.clone(), fake, vars.clone()).await;
    let second = TestApp::spawn_with(connect, vars).await;
    (first, second)
}

#[sqlx::test(migrations = false)]
async fn the_turn_rate_counts_a_users_turns_on_every_replica(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: four turns, alternating between the replicas, use up a rate of four.
    let (first, second) = two_replicas(connect, &[("TURNS_PER_MINUTE", "4")]).await;
    let chat_id = Uuid::new_v4();
    for i in 0..4 {
        let replica = if i % 2 == 0 { &first } else { &second };
        let turn = replica.post_chat(ALICE, lean(chat_id, &format!("turn {i} [[fake tokens=1]]"))).await;
        assert_eq!(turn.status, StatusCode::OK, "{}", turn.raw);
    }
    let stored = message_count(&first).await;

    // Act
    let mut refused = Vec::new();
    for replica in [&first, &second] {
        refused.push(
            replica
                .send(replica.request(Some(ALICE), reqwest::Method::POST, "/api/chat").json(&lean(chat_id, "more")))
                .await,
        );
    }

    // Assert: each replica alone saw two turns, yet both refuse the fifth.
    for response in &refused {
        response.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let retry_after: u64 = response.headers["retry-after"].to_str().ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!((1..=15).contains(&retry_after), "Retry-After {retry_after}");
    }
    assert_eq!(message_count(&first).await, stored, "nothing of the refused turns was stored");
    let bob = second.post_chat(BOB, lean(Uuid::new_v4(), "hello [[fake tokens=1]]")).await;
    assert_eq!(bob.status, StatusCode::OK, "other users are not affected");
}

#[sqlx::test(migrations = false)]
async fn running_answers_are_counted_on_every_replica(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: one long answer on each replica.
    let (first, second) = two_replicas(connect, &[("MAX_CONCURRENT_TURNS_PER_USER", "2")]).await;
    let chats = [Uuid::new_v4(), Uuid::new_v4()];
    let mut streams = Vec::new();
    for (replica, chat) in [(&first, chats[0]), (&second, chats[1])] {
        let mut stream = replica.open_chat(ALICE, lean(chat, "long [[fake tokens=400 delay_ms=10]]")).await;
        assert_eq!(stream.status, StatusCode::OK);
        stream.read_until_text("w1").await;
        streams.push(stream);
    }

    // Act
    let third = Uuid::new_v4();
    let refused =
        first.send(first.request(Some(ALICE), reqwest::Method::POST, "/api/chat").json(&lean(third, "third"))).await;

    // Assert: refused although the first replica runs one answer of Alice's; free again once one ends, anywhere.
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(first.get(ALICE, &format!("/api/chats/{third}")).await.status, StatusCode::NOT_FOUND);
    let stop = second.json(ALICE, reqwest::Method::POST, &format!("/api/chat/{}/stop", chats[1]), json!({})).await;
    assert_eq!(stop.status, StatusCode::OK, "{}", stop.json);
    streams[1].rest().await;
    let started = first.post_chat(ALICE, lean(third, "third [[fake tokens=1]]")).await;
    assert_eq!(started.status, StatusCode::OK, "the place freed on the other replica is free here: {}", started.raw);
    streams[0].rest().await;
}

#[sqlx::test(migrations = false)]
async fn simultaneous_starts_on_two_replicas_never_exceed_the_limits(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: at most two answers at once, at most three turns a minute.
    let (first, second) =
        two_replicas(connect, &[("MAX_CONCURRENT_TURNS_PER_USER", "2"), ("TURNS_PER_MINUTE", "3")]).await;

    // Act: twelve turns in twelve chats at the same moment, half on each replica.
    let starts = (0..12).map(|i| {
        let replica = if i % 2 == 0 { &first } else { &second };
        async move {
            let body = lean(Uuid::new_v4(), "long [[fake tokens=200 delay_ms=10]]");
            let response = replica.send(replica.request(Some(ALICE), reqwest::Method::POST, "/api/chat").json(&body));
            response.await
        }
    });
    let responses = futures::future::join_all(starts).await;

    // Assert: exactly two ran (the streaming limit binds first); the others were refused with 429 and left nothing.
    let accepted = responses.iter().filter(|r| r.status == StatusCode::OK).count();
    let refused = responses.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((accepted, refused), (2, 10), "{:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    let chats: i64 =
        sqlx::query_scalar("select count(*) from chat.chats").fetch_one(&first.db).await.expect("count chats");
    assert_eq!(chats, 2, "refused turns created no chat");
}
