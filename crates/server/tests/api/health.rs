//! Health, identity and the OpenAPI document.

use std::time::Duration;

use reqwest::StatusCode;
use server::startup::Application;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{ALICE, TestApp, state_with_pool};

#[sqlx::test(migrations = false)]
async fn health_is_ok_when_the_database_answers(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;

    let response = app.get(ALICE, "/api/health").await;

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json["status"], "ok");
    assert_eq!(response.json["database"], true);
}

#[tokio::test]
async fn health_is_503_when_the_database_is_unreachable() {
    // A pool pointing at a port where nothing listens.
    let unreachable = PgConnectOptions::new().host("127.0.0.1").port(1).username("nobody").database("none");
    let pool = PgPoolOptions::new().acquire_timeout(Duration::from_millis(500)).connect_lazy_with(unreachable);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let app = TestApp::run(Application::with_parts(listener, state_with_pool(pool)));

    let health = app.get(ALICE, "/api/health").await;
    let chats = app.get(ALICE, "/api/chats").await;

    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json["database"], false);
    chats.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let message = chats.json["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("127.0.0.1") && !message.contains("pool"), "no internals leak: {message}");
}

#[sqlx::test(migrations = false)]
async fn me_returns_the_callers_identity(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;

    let me = app
        .send(
            app.request(Some(ALICE), reqwest::Method::GET, "/api/me")
                .header("x-forwarded-preferred-username", "Alice A."),
        )
        .await;

    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json["user_id"], ALICE);
    assert_eq!(me.json["email"], ALICE);
    assert_eq!(me.json["display_name"], "Alice A.");
    assert_eq!(me.json["mode"], "trusted_headers");
}

#[sqlx::test(migrations = false)]
async fn the_openapi_document_is_generated_from_the_code(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;

    let response = app.get(ALICE, "/api/openapi.json").await;

    assert_eq!(response.status, StatusCode::OK);
    let doc = &response.json;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/api/health", "/api/me", "/api/chats", "/api/chats/{id}", "/api/chats/{id}/messages"] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    for method in ["get", "patch", "delete"] {
        assert!(doc["paths"]["/api/chats/{id}"][method].is_object(), "missing {method} /api/chats/{{id}}");
    }
    for schema in ["ChatSummary", "ChatPage", "ErrorBody", "MessagePage", "UiMessage"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "missing schema {schema}");
    }
}

#[sqlx::test(migrations = false)]
async fn responses_carry_a_request_id_and_honour_the_proxys(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;

    let generated = app.get(ALICE, "/api/me").await;
    let forwarded =
        app.send(app.request(Some(ALICE), reqwest::Method::GET, "/api/me").header("x-request-id", "proxy-id-1")).await;

    assert!(generated.headers.get("x-request-id").is_some());
    assert_eq!(forwarded.headers["x-request-id"], "proxy-id-1");
}
