//! The in-process local model behind the API: with no endpoint configured it is offered, answers, streams, stops
//! and queues like any model; when its weights cannot be had the app still runs and says what to configure.
//!
//! The weights are the real SmolLM2 file, fetched once into the app's cache directory and reused by every test
//! (tests that exercise the download serve that file from a local HTTP server into a fresh directory).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::config::{Config, EnvMap};
use server::llm::local::LocalModel;
use server::llm::{ChatModel, ModelEvent, ModelRequest, PromptMessage, PromptRole};
use shared::{MessagePage, MessageStatus, ModelList, TurnState, UiChunk};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::helpers::{ALICE, TestApp, test_env};
use crate::streams::chunks_of;

const LOCAL: &str = "smollm2-135m-instruct";

/// The model keeps both cores busy while it generates: tests that run it take turns, so that two generations do not
/// fight for the CPU. (How fast a stop takes effect is a benchmark figure, `loadtest local-model`, not a test.)
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// The model file in the cache directory, downloaded by the first test that needs it.
async fn model_file() -> PathBuf {
    static FILE: OnceCell<PathBuf> = OnceCell::const_new();
    FILE.get_or_init(|| async {
        let spec = local_model::SMOLLM2_135M;
        let path = local_model::fetch::default_cache_dir().join(spec.file_name);
        if !path.exists() {
            local_model::fetch::fetch(&reqwest::Client::new(), &spec, spec.url, &path, &|_, _| {})
                .await
                .expect("downloading the local model");
        }
        path
    })
    .await
    .clone()
}

/// No endpoint configured: the local model is the default.
async fn local_env() -> EnvMap {
    test_env()
        .with("LOCAL_MODEL", "auto")
        .with("LOCAL_MODEL_PATH", &model_file().await.display().to_string())
        .with("CHECKPOINT_INTERVAL_MS", "100")
}

async fn models(app: &TestApp) -> ModelList {
    app.get(ALICE, "/api/models").await.parse()
}

fn lean(chat_id: Uuid, message: &str) -> Value {
    json!({"id": chat_id, "message": message})
}

#[sqlx::test(migrations = false)]
async fn with_no_endpoint_the_local_model_is_offered_and_answers(_: PgPoolOptions, connect: PgConnectOptions) {
    let _turn = one_at_a_time().await;
    // Arrange
    let app = TestApp::spawn_with(connect, local_env().await).await;
    let chat_id = Uuid::new_v4();

    // Act
    let offered = models(&app).await;
    let turn = app.post_chat(ALICE, lean(chat_id, "What is the capital of France?")).await;

    // Assert: offered as the default, labelled as small and local.
    assert_eq!(offered.default_model.as_deref(), Some(LOCAL));
    assert_eq!(offered.models.len(), 1);
    assert!(offered.models[0].display_name.to_lowercase().contains("small local model"), "{:?}", offered.models[0]);
    // Assert: a streamed, stored, complete answer with usage.
    assert_eq!(turn.status, StatusCode::OK);
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    let streamed = turn.text();
    assert!(!streamed.trim().is_empty());
    assert!(turn.chunks().iter().filter(|c| matches!(c, UiChunk::TextDelta { .. })).count() > 1, "token by token");
    let page: MessagePage = app.get(ALICE, &format!("/api/chats/{chat_id}/messages")).await.parse();
    let answer = &page.messages[1];
    assert_eq!(answer.metadata.status, MessageStatus::Complete);
    assert_eq!(answer.text(), streamed);
    assert_eq!(answer.metadata.model.as_deref(), Some(LOCAL));
    let usage = answer.metadata.usage.expect("usage is stored");
    assert!(usage.input_tokens.is_some_and(|n| n > 10) && usage.output_tokens.is_some_and(|n| n > 0), "{usage:?}");
}

#[sqlx::test(migrations = false)]
async fn stop_keeps_the_partial_answer_and_ends_the_generation(_: PgPoolOptions, connect: PgConnectOptions) {
    let _turn = one_at_a_time().await;
    let app = TestApp::spawn_with(connect, local_env().await).await;
    let chat_id = Uuid::new_v4();
    let mut stream = app.open_chat(ALICE, lean(chat_id, "Count from 1 to 1000, one number per line.")).await;
    let mut seen = chunks_of(&stream.read_until(|c| matches!(c, UiChunk::TextDelta { .. })).await);

    let stopped = app.json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/stop"), json!({})).await;
    seen.extend(chunks_of(&stream.rest().await));

    // The stop answers once the stopped answer is stored: a `stopped` status means it took effect.
    assert_eq!(stopped.status, StatusCode::OK, "{}", stopped.json);
    assert_eq!(stopped.json["status"], "stopped");
    let page: MessagePage = app.get(ALICE, &format!("/api/chats/{chat_id}/messages")).await.parse();
    let answer = &page.messages[1];
    assert_eq!(answer.metadata.status, MessageStatus::Stopped);
    assert!(!answer.text().is_empty());
    assert_eq!(answer.text(), crate::streams::text_of(&seen), "the stored text is what the client saw");
}

#[tokio::test]
async fn dropping_the_stream_frees_the_model() {
    let _turn = one_at_a_time().await;
    // The generation runs on another thread: prove it really stops, not just that the turn is stored.
    let env = local_env().await;
    let config = Config::from_map(&env).expect("configuration");
    let local = LocalModel::start(config.models.local.clone(), reqwest::Client::new());
    local.ready().await.expect("the local model loads");
    let request = ModelRequest {
        model: LOCAL.to_owned(),
        protocol: server::llm::Protocol::Local,
        messages: vec![PromptMessage::text(PromptRole::User, "Count from 1 to 1000.")],
        tools: Vec::new(),
        temperature: None,
        max_tokens: None,
        user_token: None,
        context: None,
        resume: None,
    };
    let mut stream = local.stream(request);
    while !matches!(stream.next().await, Some(Ok(ModelEvent::Content(shared::Content::Text(_))))) {}
    assert_eq!(local.running(), 1);

    let dropped = Instant::now();
    drop(stream);
    // Generous: it stops between two tokens, so within milliseconds on an idle machine (`loadtest local-model`
    // measures it); a generation left running would go on for a thousand numbers, far longer than this.
    while local.running() > 0 {
        assert!(dropped.elapsed() < Duration::from_secs(20), "the generation is still running");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn concurrent_turns_queue_and_both_complete(_: PgPoolOptions, connect: PgConnectOptions) {
    let _turn = one_at_a_time().await;
    // Answers capped at 48 tokens: long enough for the second turn to arrive while the first runs, short enough
    // for the test to stay quick on a busy machine.
    let env = local_env().await.with("LLM_MAX_TOKENS", "48");
    let app = Arc::new(TestApp::spawn_with(connect, env).await);
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());

    let mut running = app.open_chat(ALICE, lean(first, "Count from 1 to 100, one number per line.")).await;
    running.read_until(|c| matches!(c, UiChunk::TextDelta { .. })).await;
    let queued = app.post_chat(ALICE, lean(second, "Name three animals."));
    let (rest, queued) = tokio::join!(running.rest(), queued);

    assert!(chunks_of(&rest).iter().any(|c| matches!(c, UiChunk::Finish { .. })));
    assert_eq!(queued.final_status(), Some(MessageStatus::Complete), "{}", queued.raw);
    let statuses: Vec<TurnState> = queued
        .chunks()
        .into_iter()
        .filter_map(|c| match c {
            UiChunk::DataStatus { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    assert!(statuses.contains(&TurnState::Queued { position: 1 }), "the second turn was told it waits: {statuses:?}");
    assert_eq!(statuses.last(), Some(&TurnState::Running), "then that it runs: {statuses:?}");
    for chat_id in [first, second] {
        let page: MessagePage = app.get(ALICE, &format!("/api/chats/{chat_id}/messages")).await.parse();
        assert_eq!(page.messages[1].metadata.status, MessageStatus::Complete);
        assert!(!page.messages[1].text().trim().is_empty());
    }
}

/// Serves `body` at `/<name>` on a random local port.
async fn serve_file(name: &'static str, body: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let body = bytes::Bytes::from(body);
    let router =
        axum::Router::new().route(&format!("/{name}"), axum::routing::get(move || async move { body.clone() }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}/{name}")
}

fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chat-local-model-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a directory");
    dir
}

#[sqlx::test(migrations = false)]
async fn the_weights_are_downloaded_checked_and_prepared_on_first_use_while_turns_wait(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let _turn = one_at_a_time().await;
    // Arrange: a mirror serving the real file, and an empty cache.
    let weights = tokio::fs::read(model_file().await).await.expect("read the model");
    let url = serve_file("SmolLM2-135M-Instruct.Q4_1.gguf", weights).await;
    let dir = fresh_dir();
    let path = dir.join("model.gguf");
    let env = test_env()
        .with("LOCAL_MODEL", "auto")
        .with("LOCAL_MODEL_URL", &url)
        .with("LOCAL_MODEL_PATH", &path.display().to_string())
        .with("CHECKPOINT_INTERVAL_MS", "100");

    // Act: a turn sent at once, before the model is there.
    let app = TestApp::spawn_with(connect, env).await;
    let turn = app.post_chat(ALICE, lean(Uuid::new_v4(), "Say hello.")).await;

    // Assert
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    let waited = turn.chunks().iter().any(|c| matches!(c, UiChunk::DataStatus { data: TurnState::Loading { .. }, .. }));
    assert!(waited, "the client was told the model is loading: {}", turn.raw);
    assert!(!turn.text().trim().is_empty());
    assert!(path.exists(), "the download is kept");
    let prepared = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".q8_0.gguf"));
    assert!(prepared, "the prepared copy is kept next to it");
    let leftovers = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().ends_with(".part"));
    assert!(!leftovers, "no partial files remain");
    let _ = std::fs::remove_dir_all(dir);
}

#[sqlx::test(migrations = false)]
async fn weights_that_cannot_be_had_leave_the_app_running_with_a_clear_message(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let _turn = one_at_a_time().await;
    // A mirror that serves the wrong bytes: the checksum refuses them.
    let url = serve_file("SmolLM2-135M-Instruct.Q4_1.gguf", b"not a model".to_vec()).await;
    let dir = fresh_dir();
    let path = dir.join("model.gguf");
    let env = test_env()
        .with("LOCAL_MODEL", "auto")
        .with("LOCAL_MODEL_URL", &url)
        .with("LOCAL_MODEL_PATH", &path.display().to_string());
    let app = TestApp::spawn_with(connect, env).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let offered = loop {
        let offered = models(&app).await;
        if offered.models.is_empty() || Instant::now() > deadline {
            break offered;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let turn = app.post_chat(ALICE, lean(Uuid::new_v4(), "hi")).await;
    let health = app.get(ALICE, "/api/health").await;

    assert!(offered.models.is_empty(), "the broken model is withdrawn: {offered:?}");
    let hint = offered.hint.expect("a hint");
    assert!(hint.contains("SHA-256"), "{hint}");
    assert!(hint.contains("configure a model endpoint") && hint.contains("LOCAL_MODEL_PATH"), "{hint}");
    assert_eq!(turn.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(turn.json()["error"]["code"], "no_model");
    assert_eq!(turn.json()["error"]["message"], hint.as_str());
    assert_eq!(health.status, StatusCode::OK, "the app itself is fine");
    assert!(!path.exists(), "nothing unchecked is kept");
    let _ = std::fs::remove_dir_all(dir);
}

#[sqlx::test(migrations = false)]
async fn with_an_endpoint_configured_the_local_model_is_off_unless_enabled(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let _turn = one_at_a_time().await;
    let fake = fake_databricks::FakeWorkspace::start().await;
    let remote_only = crate::helpers::model_env(&fake).with("LOCAL_MODEL", "auto");
    let both = crate::helpers::model_env(&fake)
        .with("LOCAL_MODEL", "on")
        .with("LOCAL_MODEL_PATH", &model_file().await.display().to_string());
    let app = TestApp::spawn_with(connect.clone(), remote_only).await;
    let ids: Vec<String> = models(&app).await.models.into_iter().map(|m| m.id).collect();
    assert!(!ids.iter().any(|id| id == LOCAL), "{ids:?}");
    app.shutdown().await;

    let app = TestApp::spawn_with(connect, both).await;
    let offered = models(&app).await;
    let ids: Vec<&str> = offered.models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(offered.default_model.as_deref(), Some(crate::helpers::MODEL), "the endpoint stays the default");
    assert_eq!(ids.last(), Some(&LOCAL));
    let turn = app.post_chat(ALICE, json!({"id": Uuid::new_v4(), "message": "Say hi.", "model": LOCAL})).await;
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
}
