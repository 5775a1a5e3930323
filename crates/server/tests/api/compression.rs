//! Response compression: JSON answers are compressed for clients that accept it; event streams never are (a
//! proxy or browser that receives compressed stream bytes may hold them back until it has a whole block).

use reqwest::Method;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{ALICE, TestApp};

#[sqlx::test(migrations = false)]
async fn json_answers_are_compressed_and_event_streams_are_not(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn_with_model(connect).await;
    for n in 0..5 {
        app.create_chat(ALICE, json!({"title": format!("a chat with a title long enough to compress {n}")})).await;
    }

    for path in ["/api/chats", "/api/models", "/api/openapi.json"] {
        let response = app
            .request(Some(ALICE), Method::GET, path)
            .header(ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .expect("request is sent");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers().get(CONTENT_ENCODING).map(|v| v.to_str().unwrap_or_default()),
            Some("gzip"),
            "{path}"
        );
    }

    let stream = app
        .request(Some(ALICE), Method::POST, "/api/chat")
        .header(ACCEPT_ENCODING, "gzip, br")
        .json(&json!({"id": uuid::Uuid::new_v4(), "message": "hello"}))
        .send()
        .await
        .expect("request is sent");
    assert_eq!(stream.status(), 200);
    assert!(stream.headers().get(CONTENT_ENCODING).is_none(), "{:?}", stream.headers());
    assert!(stream.headers()[CONTENT_TYPE].to_str().unwrap_or_default().starts_with("text/event-stream"));
    let body = stream.text().await.expect("stream body");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
}
