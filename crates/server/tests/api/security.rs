//! Browser protections: security headers on every response, a CSP that admits exactly the page's own inline
//! loader, and state-changing requests from other sites refused without effect.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{ALICE, TestApp, test_env};

#[sqlx::test(migrations = false)]
async fn every_response_carries_the_security_headers(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;

    for response in [app.get(ALICE, "/api/chats").await, app.get(ALICE, "/api/no-such-route").await] {
        assert_eq!(response.headers["x-content-type-options"], "nosniff");
        assert_eq!(response.headers["x-frame-options"], "DENY");
        assert_eq!(response.headers["referrer-policy"], "no-referrer");
        let csp = response.headers["content-security-policy"].to_str().unwrap_or_default();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"), "{csp}");
    }
}

#[sqlx::test(migrations = false)]
async fn the_policy_admits_the_pages_own_inline_loader_by_hash(_: PgPoolOptions, connect: PgConnectOptions) {
    let dist = std::env::temp_dir().join(format!("chat-dist-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dist).expect("dist dir");
    let loader = "\nimport init from '/web-0123456789abcdef.js';\nawait init();\n";
    std::fs::write(
        dist.join("index.html"),
        format!("<html><head><script type=\"module\">{loader}</script></head></html>"),
    )
    .expect("index.html");
    let app = TestApp::spawn_with(connect, test_env().with("WEB_DIST_DIR", &dist.display().to_string())).await;

    let response = app.send(app.request(Some(ALICE), Method::GET, "/chat/some-deep-link")).await;

    assert_eq!(response.status, StatusCode::OK);
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(loader.as_bytes()));
    let csp = response.headers["content-security-policy"].to_str().unwrap_or_default();
    assert!(csp.contains(&format!("script-src 'self' 'wasm-unsafe-eval' 'sha256-{hash}'")), "{csp}");
    let _ = std::fs::remove_dir_all(&dist);
}

#[sqlx::test(migrations = false)]
async fn another_sites_page_cannot_change_anything(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn(connect).await;
    let chat = app.create_chat(ALICE, json!({"title": "mine"})).await;
    let cross_site = |method: Method, path: &str| {
        app.request(Some(ALICE), method, path)
            .header("sec-fetch-site", "cross-site")
            .header("origin", "https://evil.example")
    };

    // Act: what a cross-site form or fetch would send with the user's cookies.
    let attempts = [
        cross_site(Method::POST, "/api/chats").json(&json!({"title": "planted"})),
        cross_site(Method::PATCH, &format!("/api/chats/{}", chat.id)).json(&json!({"title": "renamed"})),
        cross_site(Method::DELETE, &format!("/api/chats/{}", chat.id)),
        cross_site(Method::POST, &format!("/api/chat/{}/stop", chat.id))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("a=b"),
        // An older browser: no Sec-Fetch-Site, an Origin that is not the addressed host.
        app.request(Some(ALICE), Method::DELETE, &format!("/api/chats/{}", chat.id))
            .header("origin", "https://evil.example"),
    ];

    // Assert: refused, and nothing changed.
    for attempt in attempts {
        app.send(attempt).await.assert_error(StatusCode::FORBIDDEN, "cross_origin");
    }
    let chats = app.get(ALICE, "/api/chats").await;
    assert_eq!(chats.json["chats"].as_array().map(Vec::len), Some(1), "{}", chats.json);
    assert_eq!(chats.json["chats"][0]["title"], "mine");

    // The app's own page (same origin) and non-browser tools are served.
    let host = app.address.trim_start_matches("http://").to_owned();
    let own_page = app
        .request(Some(ALICE), Method::PATCH, &format!("/api/chats/{}", chat.id))
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"title": "renamed by me"}));
    assert_eq!(app.send(own_page).await.status, StatusCode::OK);
    let old_browser = app
        .request(Some(ALICE), Method::POST, "/api/chats")
        .header("origin", format!("http://{host}"))
        .json(&json!({"title": "second"}));
    assert_eq!(app.send(old_browser).await.status, StatusCode::CREATED);
    assert_eq!(app.json(ALICE, Method::POST, "/api/chats", json!({})).await.status, StatusCode::CREATED);
}
