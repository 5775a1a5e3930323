//! A chat title that arrives in the middle of an answer: every client sees each token of the answer exactly once,
//! live, resumed from any event id (from this process's memory, from the stored log, on another process), and the
//! stored answer is the same text.

use std::time::Duration;

use fake_databricks::Scenario;
use fake_databricks::scenario::numbered_text;
use serde_json::json;
use shared::{MessageStatus, UiChunk};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, TestApp, model_env};
use crate::streams::{SseEvent, chunks_of, text_of};
use crate::turns::wait_for_answer;

/// Tokens of the answer; the title (asked with `max_tokens` 32 of the same slow model) arrives around token 32.
const TOKENS: usize = 90;

/// An app whose new chats are titled by the chat's own model, as by default.
async fn titling_app(connect: PgConnectOptions) -> (TestApp, PgConnectOptions) {
    let fake = fake_databricks::FakeWorkspace::start().await;
    let env = model_env(&fake).with("TITLE_GENERATION", "true");
    (TestApp::spawn_with_fake(connect.clone(), fake, env).await, connect)
}

/// The text a client assembles from the events up to and including `last_id`.
fn text_up_to(events: &[SseEvent], last_id: u64) -> String {
    let upto: Vec<SseEvent> = events.iter().filter(|e| e.id.is_some_and(|id| id <= last_id)).cloned().collect();
    text_of(&chunks_of(&upto))
}

/// Position of the generated title (the second `data-chat` chunk) among the events, and whether text followed.
fn title_mid_answer(events: &[SseEvent]) -> bool {
    let chunks = chunks_of(events);
    let titles: Vec<usize> =
        chunks.iter().enumerate().filter(|(_, c)| matches!(c, UiChunk::DataChat { .. })).map(|(i, _)| i).collect();
    let Some(&generated) = titles.get(1) else { return false };
    let text_before = chunks[..generated].iter().any(|c| matches!(c, UiChunk::TextDelta { .. }));
    let text_after = chunks[generated..].iter().any(|c| matches!(c, UiChunk::TextDelta { .. }));
    text_before && text_after
}

#[sqlx::test(migrations = false)]
async fn a_title_arriving_mid_answer_never_repeats_text_live_or_resumed(_: PgPoolOptions, connect: PgConnectOptions) {
    let (app, connect) = titling_app(connect).await;
    let other_process = TestApp::spawn_with(connect, crate::helpers::test_env()).await;
    let chat_id = Uuid::new_v4();
    let message = format!("Count for me [[fake tokens={TOKENS} delay_ms=15]]");
    let expected = numbered_text(TOKENS);

    // Live: read until the generated title arrives, then resume from every id seen so far while the answer runs
    // (this process answers from memory, the other one from the stored log), then read the rest.
    let mut stream = app.open_chat(ALICE, json!({"id": chat_id, "message": message})).await;
    let mut seen = Vec::new();
    let mut titles = 0;
    while let Some(event) = stream.next().await {
        let is_title = matches!(event.chunk(), Some(UiChunk::DataChat { .. }));
        seen.push(event);
        if is_title {
            titles += 1;
            if titles == 2 {
                break;
            }
        }
    }
    assert_eq!(titles, 2, "the model's title arrived while the answer streamed");
    let last_seen = seen.iter().filter_map(|e| e.id).max().expect("ids");
    tokio::time::sleep(Duration::from_millis(150)).await; // past a checkpoint, so the other process has the title
    let live_resumes = futures::future::join_all((1..=last_seen).map(|after| {
        let server = if after % 2 == 0 { &app } else { &other_process };
        async move { (after, server.resume(ALICE, chat_id, Some(after)).await) }
    }));
    let (rest, live_resumes) = tokio::join!(stream.rest(), live_resumes);
    seen.extend(rest);

    assert!(title_mid_answer(&seen), "the title came between two text deltas");
    assert_eq!(text_of(&chunks_of(&seen)), expected, "the live stream carries each token once");
    for (after, resumed) in live_resumes {
        assert_eq!(resumed.final_status(), Some(MessageStatus::Complete));
        assert_eq!(format!("{}{}", text_up_to(&seen, after), resumed.text()), expected, "resumed after event {after}");
    }

    // Stored: the answer's text, and a replay from every event id of the stored log.
    let stored = wait_for_answer(&app, chat_id).await;
    assert_eq!(stored.text(), expected);
    let last_id = seen.iter().filter_map(|e| e.id).max().expect("ids");
    for after in 1..last_id {
        let server = if after % 2 == 0 { &app } else { &other_process };
        let resumed = server.resume(ALICE, chat_id, Some(after)).await;
        assert_eq!(format!("{}{}", text_up_to(&seen, after), resumed.text()), expected, "replayed after event {after}");
    }
    let from_start = app.resume(ALICE, chat_id, None).await;
    assert_eq!(from_start.status, reqwest::StatusCode::NO_CONTENT, "nothing runs any more");
}

#[sqlx::test(migrations = false)]
async fn reasoning_interrupted_by_a_title_is_not_repeated_either(_: PgPoolOptions, connect: PgConnectOptions) {
    let fake = fake_databricks::FakeWorkspace::start().await;
    let title = Scenario::tokens(["Reasoning ", "title"]).with_step_delay(Duration::from_millis(100));
    fake.set_model_reply("title-model", title);
    let env = model_env(&fake).with("TITLE_GENERATION", "true").with("TITLE_MODEL", "title-model");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let chat_id = Uuid::new_v4();

    // 60 reasoning words 10 ms apart, then the answer: the title lands inside the reasoning.
    let turn =
        app.post_chat(ALICE, json!({"id": chat_id, "message": "[[fake tokens=10 reasoning=60 delay_ms=10]]"})).await;

    let reasoning: String = turn
        .chunks()
        .into_iter()
        .filter_map(|c| match c {
            UiChunk::ReasoningDelta { delta, .. } => Some(delta),
            _ => None,
        })
        .collect();
    let expected_reasoning = (1..=60).map(|i| format!("r{i}")).collect::<Vec<_>>().join(" ");
    assert_eq!(reasoning, expected_reasoning);
    assert_eq!(turn.text(), numbered_text(10));
    let chunks = turn.chunks();
    let generated = chunks.iter().rposition(|c| matches!(c, UiChunk::DataChat { .. })).expect("a title");
    assert!(
        matches!(chunks.get(generated + 1), Some(UiChunk::ReasoningDelta { .. })),
        "the title came in the middle of the reasoning"
    );
}
