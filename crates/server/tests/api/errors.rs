//! Bad input gets a clear 4xx in the one error envelope and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;
use server::config::EnvMap;
use shared::ChatSummary;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{ALICE, TestApp, test_env};

#[sqlx::test(migrations = false)]
async fn invalid_input_is_rejected_with_a_clear_4xx_and_changes_nothing(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn(connect).await;
    let chat = app.create_chat(ALICE, json!({"title": "original"})).await;
    let chat_path = format!("/api/chats/{}", chat.id);
    let long_title = "x".repeat(201);

    // Act + Assert: each case, then the state is unchanged.
    let cases: Vec<(Method, String, Option<serde_json::Value>, StatusCode, &str)> = vec![
        (Method::GET, "/api/chats/not-a-uuid".into(), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (
            Method::PATCH,
            "/api/chats/123".into(),
            Some(json!({"title": "t"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (Method::DELETE, "/api/chats/zzz".into(), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/chats/not-a-uuid/messages".into(), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (
            Method::POST,
            "/api/chats".into(),
            Some(json!({"title": "t", "colour": "red"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (Method::POST, "/api/chats".into(), Some(json!({"title": ""})), StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::POST, "/api/chats".into(), Some(json!({"title": "   "})), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            Method::POST,
            "/api/chats".into(),
            Some(json!({"title": long_title})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (Method::POST, "/api/chats".into(), Some(json!({"title": 42})), StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::POST, "/api/chats".into(), Some(json!({"scope": ""})), StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::POST, "/api/chats".into(), Some(json!({"model": " "})), StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::PATCH, chat_path.clone(), Some(json!({"title": ""})), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            Method::PATCH,
            chat_path.clone(),
            Some(json!({"title": long_title})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::PATCH,
            chat_path.clone(),
            Some(json!({"title": "ok", "starred": true})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (Method::PATCH, chat_path.clone(), Some(json!({})), StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/chats?cursor=garbage".into(), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/chats?limit=0".into(), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/chats?limit=101".into(), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/chats?limit=ten".into(), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, "/api/chats?sort=title".into(), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, format!("/api/chats?q={}", "a".repeat(201)), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, format!("{chat_path}/messages?before=-3"), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, format!("{chat_path}/messages?before=abc"), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::GET, format!("{chat_path}/messages?limit=1000"), None, StatusCode::BAD_REQUEST, "invalid_request"),
        (Method::PUT, "/api/chats".into(), None, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (Method::GET, "/api/nothing-here".into(), None, StatusCode::NOT_FOUND, "not_found"),
    ];
    for (method, path, body, status, code) in cases {
        let mut request = app.request(Some(ALICE), method.clone(), &path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = app.send(request).await;
        assert_eq!(response.status, status, "{method} {path}: {}", response.json);
        assert_eq!(response.json["error"]["code"], code, "{method} {path}: {}", response.json);
    }
    assert_eq!(app.chat_count().await, 1);
    let unchanged: ChatSummary = app.get(ALICE, &chat_path).await.parse();
    assert_eq!(unchanged, chat);
}

#[sqlx::test(migrations = false)]
async fn malformed_json_wrong_content_type_and_oversized_bodies_are_refused(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_with(connect, test_env().with("MAX_BODY_BYTES", "2048")).await;

    let malformed = app
        .send(
            app.request(Some(ALICE), Method::POST, "/api/chats")
                .header("content-type", "application/json")
                .body("{\"title\":"),
        )
        .await;
    let not_json = app
        .send(app.request(Some(ALICE), Method::POST, "/api/chats").header("content-type", "text/plain").body("{}"))
        .await;
    let no_type = app.send(app.request(Some(ALICE), Method::POST, "/api/chats").body("{}")).await;
    let huge = app.json(ALICE, Method::POST, "/api/chats", json!({"title": "t", "scope": "s".repeat(4096)})).await;

    malformed.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    not_json.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    no_type.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    huge.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(app.chat_count().await, 0);
}

#[sqlx::test(migrations = false)]
async fn requests_without_identity_get_401_behind_the_apps_proxy(_: PgPoolOptions, connect: PgConnectOptions) {
    let env = EnvMap::default().with("DATABRICKS_APP_NAME", "chat").with("HOST", "127.0.0.1").with("PORT", "0");
    let app = TestApp::spawn_with(connect, env).await;

    let anonymous = app.send(app.request(None, Method::GET, "/api/chats")).await;
    let anonymous_create = app.send(app.request(None, Method::POST, "/api/chats").json(&json!({}))).await;
    let blank = app.send(app.request(None, Method::GET, "/api/me").header("x-forwarded-email", "  ")).await;
    let by_user_id = app.send(app.request(None, Method::GET, "/api/me").header("x-forwarded-user", "4242")).await;
    let health = app.send(app.request(None, Method::GET, "/api/health")).await;

    anonymous.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    anonymous_create.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    blank.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(by_user_id.status, StatusCode::OK);
    assert_eq!(by_user_id.json["user_id"], "4242");
    assert_eq!(by_user_id.json["mode"], "databricks_apps");
    assert_eq!(health.status, StatusCode::OK, "health needs no identity");
    assert_eq!(app.chat_count().await, 0);
}

#[sqlx::test(migrations = false)]
async fn the_local_user_mode_ignores_forwarded_headers(_: PgPoolOptions, connect: PgConnectOptions) {
    let env = EnvMap::default().with("DEV_USER_EMAIL", "Me@Laptop").with("HOST", "127.0.0.1").with("PORT", "0");
    let app = TestApp::spawn_with(connect, env).await;

    let me = app.get("mallory@example.com", "/api/me").await;

    assert_eq!(me.json["user_id"], "me@laptop");
    assert_eq!(me.json["mode"], "local_user");
}
