//! The database failing or stalling while answers stream: once checkpoints cannot be written for
//! `CHECKPOINT_FAILURE_LIMIT_SECS`, the answer ends with `error` and its client is told within about that limit;
//! once the database is back, the end is stored with the text the client received (regressions found by
//! `loadtest faults`).

use std::time::{Duration, Instant};

use fake_databricks::FakeWorkspace;
use serde_json::json;
use shared::{MessageStatus, UiChunk};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, TestApp, model_env};
use crate::streams::{chunks_of, text_of};

const LIMIT_SECS: u64 = 2;

async fn app_with_failure_limit(connect: PgConnectOptions, limit_secs: u64) -> TestApp {
    let fake = FakeWorkspace::start().await;
    let env = model_env(&fake).with("CHECKPOINT_FAILURE_LIMIT_SECS", &limit_secs.to_string());
    TestApp::spawn_with_fake(connect, fake, env).await
}

/// Waits until the answer of the chat is stored with a terminal status; returns (status, text).
async fn stored_answer(app: &TestApp, chat_id: Uuid) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row: (String, serde_json::Value) =
            sqlx::query_as("select status, parts from chat.messages where chat_id = $1 and role = 'assistant'")
                .bind(chat_id)
                .fetch_one(&app.db)
                .await
                .expect("the answer row");
        if row.0 != "streaming" || Instant::now() > deadline {
            let parts: Vec<shared::MessagePart> = serde_json::from_value(row.1).expect("parts");
            return (row.0, parts.iter().filter(|p| p.is_text()).map(|p| p.text()).collect());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn final_status(chunks: &[UiChunk]) -> Option<MessageStatus> {
    chunks.iter().find_map(|c| match c {
        UiChunk::Finish { message_metadata } => message_metadata.as_ref().and_then(|m| m.status),
        _ => None,
    })
}

#[sqlx::test(migrations = false)]
async fn an_answer_whose_checkpoints_keep_failing_ends_after_the_limit_not_twice_it(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: a long answer streaming, with a limit long enough that twice it stands apart from once it on a busy
    // machine.
    let limit_secs = 2 * LIMIT_SECS;
    let app = app_with_failure_limit(connect, limit_secs).await;
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, json!({"id": chat_id, "message": "[[fake tokens=800 delay_ms=20]]"})).await;
    let mut seen = stream.read_until_text("w5").await;

    // Act: every write to the answer fails from now on.
    sqlx::raw_sql(
        "create function chat.refuse_writes() returns trigger language plpgsql as $$
         begin raise exception 'writes refused'; end $$;
         create trigger refuse_writes before update on chat.messages
             for each row execute function chat.refuse_writes();",
    )
    .execute(&app.db)
    .await
    .expect("install the failing trigger");
    let failing_since = Instant::now();
    seen.extend(stream.rest().await);
    let told_after = failing_since.elapsed();

    // Assert: the client is told after about the limit, not after the limit and then the limit again (the bound
    // is that regression's signature, not a latency promise: the fault suite measures the latency).
    let chunks = chunks_of(&seen);
    assert_eq!(final_status(&chunks), Some(MessageStatus::Error));
    assert!(
        told_after < Duration::from_secs(2 * limit_secs),
        "the client waited {told_after:?} for a {limit_secs} s limit"
    );

    // Assert: once writes work again, the end is stored with the text the client received.
    sqlx::raw_sql("drop trigger refuse_writes on chat.messages").execute(&app.db).await.expect("drop the trigger");
    let (status, text) = stored_answer(&app, chat_id).await;
    assert_eq!(status, "error");
    assert_eq!(text, text_of(&chunks));
}

#[sqlx::test(migrations = false)]
async fn a_stalled_database_counts_as_failing_and_the_answer_ends_with_an_error(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: a long answer streaming.
    let app = app_with_failure_limit(connect, LIMIT_SECS).await;
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, json!({"id": chat_id, "message": "[[fake tokens=800 delay_ms=20]]"})).await;
    let mut seen = stream.read_until_text("w5").await;

    // Act: every write to the answers waits behind a lock (as behind a network that drops packets) for longer
    // than the limit.
    let mut blocker = app.db.begin().await.expect("begin");
    sqlx::raw_sql("lock table chat.messages in access exclusive mode").execute(&mut *blocker).await.expect("lock");
    let reader = tokio::spawn(async move { stream.rest().await });
    // The stall lasts well past the limit; the client must have its end before it is over.
    let stall = Duration::from_secs(4 * LIMIT_SECS + 4);
    let deadline = tokio::time::Instant::now() + stall;
    while !reader.is_finished() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let told_while_stalled = reader.is_finished();
    blocker.rollback().await.expect("release the lock");
    seen.extend(reader.await.expect("reader"));

    // Assert: the stall counted as a failure: the answer ended with an error, and the client was told while the
    // database was still stalled.
    let chunks = chunks_of(&seen);
    assert_eq!(final_status(&chunks), Some(MessageStatus::Error), "the stalled answer ends with an error");
    assert!(told_while_stalled, "the client got its end only once the {stall:?} stall was over");

    // Assert: the writes that were stuck behind the lock do not keep the end from being stored.
    let (status, text) = stored_answer(&app, chat_id).await;
    assert_eq!(status, "error");
    assert_eq!(text, text_of(&chunks));
}
