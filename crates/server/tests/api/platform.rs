//! The app on a (fake) Databricks workspace: model discovery and filtering, the app's own credentials on model
//! calls (PAT and service-principal OAuth with refresh), and on-behalf-of-user calls.

use std::time::Duration;

use fake_databricks::{FakeEndpoint, FakeIdentity, FakeWorkspace};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::config::EnvMap;
use shared::{MessageStatus, ModelKind, ModelList};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, TestApp, test_env};

const PAT: &str = "dapi-app-token";

fn lean(chat_id: Uuid, message: &str) -> Value {
    json!({"id": chat_id, "message": message})
}

/// A fake workspace whose model calls need a valid token, with a PAT for the app and these endpoints.
async fn workspace(endpoints: Vec<FakeEndpoint>) -> FakeWorkspace {
    let fake = FakeWorkspace::start().await;
    fake.require_model_auth();
    fake.workspace().add_pat(PAT);
    fake.workspace().set_serving_endpoints(endpoints);
    fake
}

/// The app pointed at the workspace only by host and PAT, as a developer would run it: no `LLM_BASE_URL`.
fn workspace_env(fake: &FakeWorkspace) -> EnvMap {
    test_env()
        .with("DATABRICKS_HOST", &fake.url())
        .with("DATABRICKS_TOKEN", PAT)
        .with("TITLE_GENERATION", "false")
        .with("LLM_RETRY_BASE_DELAY_MS", "20")
}

fn sample_endpoints() -> Vec<FakeEndpoint> {
    vec![
        FakeEndpoint::chat("databricks-meta-llama-3-3-70b-instruct"),
        FakeEndpoint::chat("databricks-claude-sonnet-4-5").with_description("Anthropic's balanced model"),
        FakeEndpoint::new("databricks-gte-large-en", "llm/v1/embeddings"),
        FakeEndpoint::new("support-agent", "agent/v2/chat"),
        FakeEndpoint::chat("fine-tune-warming-up").not_ready(),
    ]
}

fn ids(list: &ModelList) -> Vec<&str> {
    list.models.iter().map(|m| m.id.as_str()).collect()
}

#[sqlx::test(migrations = false)]
async fn the_picker_lists_the_ready_chat_and_agent_endpoints_with_the_configured_default_first(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange
    let fake = workspace(sample_endpoints()).await;
    let env = workspace_env(&fake).with("DATABRICKS_SERVING_ENDPOINT", "databricks-meta-llama-3-3-70b-instruct");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;

    // Act
    let list: ModelList = app.get(ALICE, "/api/models").await.parse();

    // Assert: embeddings and endpoints that are not ready are left out; agents are listed as agents.
    assert_eq!(ids(&list), ["databricks-meta-llama-3-3-70b-instruct", "databricks-claude-sonnet-4-5", "support-agent"]);
    let kinds: Vec<ModelKind> = list.models.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [ModelKind::Model, ModelKind::Model, ModelKind::Agent]);
    assert_eq!(list.default_model.as_deref(), Some("databricks-meta-llama-3-3-70b-instruct"));
    assert_eq!(list.models[1].display_name, "Claude Sonnet 4.5");
    assert_eq!(list.models[1].description.as_deref(), Some("Anthropic's balanced model"));
}

#[sqlx::test(migrations = false)]
async fn chat_models_narrows_the_discovered_list_and_names_its_entries(_: PgPoolOptions, connect: PgConnectOptions) {
    let fake = workspace(sample_endpoints()).await;
    let env = workspace_env(&fake)
        .with("CHAT_MODELS", "databricks-claude-sonnet-4-5=Claude, fine-tune-warming-up, databricks-gte-large-en");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;

    let list: ModelList = app.get(ALICE, "/api/models").await.parse();

    // Only allowed endpoints that are ready chat endpoints; with no default configured the first one is it.
    assert_eq!(ids(&list), ["databricks-claude-sonnet-4-5"]);
    assert_eq!(list.models[0].display_name, "Claude");
    assert_eq!(list.default_model.as_deref(), Some("databricks-claude-sonnet-4-5"));
}

#[sqlx::test(migrations = false)]
async fn a_model_that_is_not_offered_is_rejected_before_anything_is_stored(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let fake = workspace(sample_endpoints()).await;
    let env = workspace_env(&fake);
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let chat_id = Uuid::new_v4();

    for model in ["databricks-gte-large-en", "fine-tune-warming-up", "no-such-endpoint"] {
        let body = json!({"id": chat_id, "message": "hi", "model": model});
        let response = app.json(ALICE, Method::POST, "/api/chat", body).await;
        response.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(response.json["error"]["message"].as_str().is_some_and(|m| m.contains(model)), "{}", response.json);
    }
    assert_eq!(app.chat_count().await, 0);
    assert!(app.fake().requests().is_empty(), "no model call was made");
}

#[sqlx::test(migrations = false)]
async fn model_calls_carry_the_apps_personal_access_token(_: PgPoolOptions, connect: PgConnectOptions) {
    let fake = workspace(sample_endpoints()).await;
    let env = workspace_env(&fake).with("DATABRICKS_SERVING_ENDPOINT", "databricks-claude-sonnet-4-5");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;

    let turn = app.post_chat(ALICE, lean(Uuid::new_v4(), "Hello [[fake tokens=3]]")).await;

    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    let requests = app.fake().requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/serving-endpoints/chat/completions", "the default base URL is the workspace's");
    assert_eq!(requests[0].body["model"], "databricks-claude-sonnet-4-5");
    assert_eq!(requests[0].authorization.as_deref(), Some(format!("Bearer {PAT}").as_str()));
}

#[sqlx::test(migrations = false)]
async fn a_service_principal_gets_a_new_token_when_the_old_one_expires_or_is_revoked(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: what Databricks Apps injects, with tokens living 3 s (refreshed 0.6 s before expiry).
    let fake = FakeWorkspace::start().await;
    fake.require_model_auth();
    fake.workspace().add_client("app-sp-id", "app-sp-secret");
    fake.workspace().set_token_lifetime(Duration::from_secs(3));
    fake.workspace().set_serving_endpoints(vec![FakeEndpoint::chat("databricks-claude-sonnet-4-5")]);
    let env = test_env()
        .with("DATABRICKS_HOST", &fake.url())
        .with("DATABRICKS_CLIENT_ID", "app-sp-id")
        .with("DATABRICKS_CLIENT_SECRET", "app-sp-secret")
        .with("DATABRICKS_SERVING_ENDPOINT", "databricks-claude-sonnet-4-5")
        .with("MODEL_DISCOVERY", "false")
        .with("TITLE_GENERATION", "false");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let chat_id = Uuid::new_v4();

    // Act 1: two turns within the token's life share one token.
    for i in 0..2 {
        let turn = app.post_chat(ALICE, lean(chat_id, &format!("turn {i} [[fake tokens=2]]"))).await;
        assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    }
    assert_eq!(app.fake().workspace().token_requests(), 1);

    // Act 2: after expiry a new token is fetched before the call.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let turn = app.post_chat(ALICE, lean(chat_id, "after expiry [[fake tokens=2]]")).await;
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    assert_eq!(app.fake().workspace().token_requests(), 2);

    // Act 3: a revoked token is refused (401); the app fetches a new one and the turn still succeeds.
    app.fake().workspace().revoke_tokens();
    let turn = app.post_chat(ALICE, lean(chat_id, "after revocation [[fake tokens=2]]")).await;
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    assert_eq!(app.fake().workspace().token_requests(), 3);

    // Assert: every call that reached the model carried an issued token, never the client secret.
    let used: Vec<String> = app.fake().requests().into_iter().filter_map(|r| r.authorization).collect();
    assert_eq!(used.len(), 5, "four answered calls plus the refused one: {used:?}");
    assert!(used.iter().all(|a| a.starts_with("Bearer fake-oauth-")), "{used:?}");
    assert_eq!(used[0], used[1], "one token while it lives");
    assert_ne!(used[1], used[2], "a new token after expiry");
    assert_eq!(used[2], used[3], "the revoked token was tried once");
    let current = app.fake().workspace().issued_tokens().pop().map(|t| t.token).unwrap_or_default();
    assert_eq!(used[4], format!("Bearer {current}"), "then replaced by a fresh one");
}

#[sqlx::test(migrations = false)]
async fn bad_app_credentials_stop_the_start_with_a_clear_error(_: PgPoolOptions, connect: PgConnectOptions) {
    // A forced auth type without its credentials is a configuration error found at start, not at the first chat.
    let fake = FakeWorkspace::start().await;
    let env = test_env()
        .with("DATABRICKS_HOST", &fake.url())
        .with("DATABRICKS_AUTH_TYPE", "oauth-m2m")
        .with("DATABRICKS_SERVING_ENDPOINT", "databricks-claude-sonnet-4-5");
    let mut config = server::config::Config::from_map(&env).expect("variables parse");
    config.database.connect = connect;
    config.database.source = server::config::DatabaseSource::Url;
    config.database.create_if_missing = false;

    let error = match server::Application::build(config).await {
        Ok(_) => panic!("the app must not start"),
        Err(error) => format!("{error:#}"),
    };

    assert!(error.contains("oauth-m2m") && error.contains("DATABRICKS_CLIENT_ID"), "{error}");
}

#[sqlx::test(migrations = false)]
async fn a_model_without_an_endpoint_is_a_start_error(_: PgPoolOptions, connect: PgConnectOptions) {
    let env = test_env().with("DATABRICKS_SERVING_ENDPOINT", "databricks-claude-sonnet-4-5");
    let mut config = server::config::Config::from_map(&env).expect("variables parse");
    config.database.connect = connect;
    config.database.source = server::config::DatabaseSource::Url;

    let error = server::Application::build(config).await.err().map(|e| format!("{e:#}")).unwrap_or_default();

    assert!(error.contains("DATABRICKS_HOST") && error.contains("LLM_BASE_URL"), "{error}");
}

/// A workspace where the app has a PAT and Alice's forwarded token is registered as hers.
async fn on_behalf_of_user_app(connect: PgConnectOptions) -> TestApp {
    let fake = workspace(vec![FakeEndpoint::chat("databricks-claude-sonnet-4-5")]).await;
    fake.workspace().add_pat("alice-user-token");
    fake.workspace()
        .set_identity("alice-user-token", FakeIdentity { user_name: ALICE.into(), display_name: "Alice".into() });
    let env = workspace_env(&fake).with("MODEL_AUTH", "user");
    TestApp::spawn_with_fake(connect, fake, env).await
}

#[sqlx::test(migrations = false)]
async fn with_model_auth_user_the_model_is_called_with_the_users_own_token(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = on_behalf_of_user_app(connect).await;

    let request = app
        .request(Some(ALICE), Method::POST, "/api/chat")
        .header("x-forwarded-access-token", "alice-user-token")
        .json(&lean(Uuid::new_v4(), "Hi [[fake tokens=2]]"));
    let turn = app.read_stream(request).await;

    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    let calls = app.fake().requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].authorization.as_deref(), Some("Bearer alice-user-token"), "the user's token, not the app's");
    // Model discovery still uses the app's identity: listing endpoints is not the user's business.
    let list: ModelList = app.get(ALICE, "/api/models").await.parse();
    assert_eq!(ids(&list), ["databricks-claude-sonnet-4-5"]);
}

#[sqlx::test(migrations = false)]
async fn with_model_auth_user_a_missing_user_token_is_an_actionable_403(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = on_behalf_of_user_app(connect).await;

    let response = app.json(ALICE, Method::POST, "/api/chat", lean(Uuid::new_v4(), "Hi")).await;

    response.assert_error(StatusCode::FORBIDDEN, "user_authorization_required");
    let message = response.json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("serving.serving-endpoints"), "{message}");
    assert_eq!(app.chat_count().await, 0);
    assert!(app.fake().requests().is_empty());
}

#[sqlx::test(migrations = false)]
async fn a_user_token_without_the_serving_scope_ends_the_answer_with_the_fix(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = on_behalf_of_user_app(connect).await;
    app.fake().workspace().forbid_model_calls_with("alice-user-token");

    let request = app
        .request(Some(ALICE), Method::POST, "/api/chat")
        .header("x-forwarded-access-token", "alice-user-token")
        .json(&lean(Uuid::new_v4(), "Hi"));
    let turn = app.read_stream(request).await;

    assert_eq!(turn.final_status(), Some(MessageStatus::Error), "{}", turn.raw);
    let error = turn.error_text().unwrap_or_default();
    assert!(error.contains("serving.serving-endpoints") && error.contains("Can Query"), "{error}");
    assert_eq!(app.fake().requests().len(), 1, "a refused user token is not retried");
}

#[sqlx::test(migrations = false)]
async fn a_personal_access_token_the_workspace_refuses_ends_the_answer_with_a_clear_error(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange: the workspace knows the app's PAT no more (revoked or mistyped).
    let fake = workspace(sample_endpoints()).await;
    let env = workspace_env(&fake)
        .with("DATABRICKS_TOKEN", "dapi-revoked")
        .with("DATABRICKS_SERVING_ENDPOINT", "databricks-claude-sonnet-4-5");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;

    // Act
    let turn = app.post_chat(ALICE, lean(Uuid::new_v4(), "Hello [[fake tokens=3]]")).await;

    // Assert: the answer ends with an error that says the credentials were refused; the app tried once more
    // (a token may be revoked early) and then gave up rather than retrying a refusal.
    assert_eq!(turn.final_status(), Some(MessageStatus::Error), "{}", turn.raw);
    let error = turn.error_text().expect("an error");
    assert!(error.contains("refused the app's credentials"), "{error}");
    let calls: Vec<_> =
        app.fake().requests().into_iter().filter(|r| r.path == "/serving-endpoints/chat/completions").collect();
    assert_eq!(calls.len(), 2, "one retry after the refusal");
    assert!(calls.iter().all(|r| r.authorization.as_deref() == Some("Bearer dapi-revoked")));
}
