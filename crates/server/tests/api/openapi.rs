//! The OpenAPI document (`GET /api/openapi.json`) says what the routes really answer. The API fuzzer
//! (`scripts/fuzz-api.sh`) holds every response to it; these tests pin down the gaps it found.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, TestApp, TestResponse, model_env};

/// The document's entry for `status` of one operation.
fn documented<'d>(doc: &'d Value, method: &str, path: &str, status: StatusCode) -> &'d Value {
    &doc["paths"][path][method.to_lowercase()]["responses"][status.as_str()]
}

/// Asserts that the response has the status and the document lists it for the operation, as the error envelope.
#[track_caller]
fn assert_answered_and_documented(doc: &Value, method: &str, path: &str, response: &TestResponse, status: u16) {
    let status = StatusCode::from_u16(status).expect("status");
    assert_eq!(response.status, status, "{method} {path}: {}", response.json);
    let entry = documented(doc, method, path, status);
    assert!(entry.is_object(), "{method} {path} answers {status} but the document does not list it");
    assert_eq!(
        entry["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
        "{method} {path} {status} is documented as the error envelope"
    );
}

#[sqlx::test(migrations = false)]
async fn every_error_status_the_routes_answer_is_documented(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: small limits, so that each status is easy to provoke.
    let fake = fake_databricks::FakeWorkspace::start().await;
    let env = model_env(&fake).with("TURNS_PER_MINUTE", "1").with("MAX_BODY_BYTES", "2048");
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    let doc = app.get(ALICE, "/api/openapi.json").await.json;
    let chat = app.create_chat(ALICE, json!({})).await;
    let chat_path = format!("/api/chats/{}", chat.id);
    let plain_text = |method: Method, path: &str| {
        app.request(Some(ALICE), method, path).header("content-type", "text/plain").body("{}")
    };

    // Act
    let rename_as_text = app.send(plain_text(Method::PATCH, &chat_path)).await;
    let turn_as_text = app.send(plain_text(Method::POST, "/api/chat")).await;
    let stop_bad_id = app.send(app.request(Some(ALICE), Method::POST, "/api/chat/not-a-uuid/stop")).await;
    let cross_site = app
        .send(
            app.request(Some(ALICE), Method::POST, "/api/chats")
                .header("sec-fetch-site", "cross-site")
                .json(&json!({})),
        )
        .await;
    let too_large = app.json(ALICE, Method::PATCH, &chat_path, json!({"title": "t".repeat(4096)})).await;
    let anonymous = app.send(app.request(None, Method::GET, &format!("{chat_path}/messages"))).await;
    let first_turn = app.post_chat(ALICE, json!({"id": Uuid::new_v4(), "message": "hi [[fake tokens=1]]"})).await;
    let over_rate = app.json(ALICE, Method::POST, "/api/chat", json!({"id": Uuid::new_v4(), "message": "again"})).await;

    // Assert
    assert_answered_and_documented(&doc, "PATCH", "/api/chats/{id}", &rename_as_text, 415);
    assert_answered_and_documented(&doc, "POST", "/api/chat", &turn_as_text, 415);
    assert_answered_and_documented(&doc, "POST", "/api/chat/{id}/stop", &stop_bad_id, 400);
    assert_answered_and_documented(&doc, "POST", "/api/chats", &cross_site, 403);
    assert_answered_and_documented(&doc, "PATCH", "/api/chats/{id}", &too_large, 413);
    assert_answered_and_documented(&doc, "GET", "/api/chats/{id}/messages", &anonymous, 401);
    assert_eq!(first_turn.status, StatusCode::OK, "{}", first_turn.raw);
    assert_answered_and_documented(&doc, "POST", "/api/chat", &over_rate, 429);
    let rate_limited = documented(&doc, "POST", "/api/chat", StatusCode::TOO_MANY_REQUESTS);
    assert!(rate_limited["headers"]["Retry-After"].is_object(), "429 documents Retry-After: {rate_limited}");
}

#[sqlx::test(migrations = false)]
async fn the_turn_body_the_streams_and_the_page_sizes_are_described(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;

    let doc = app.get(ALICE, "/api/openapi.json").await.json;

    let turn = &doc["paths"]["/api/chat"]["post"];
    assert_eq!(
        turn["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ChatTurnRequest"
    );
    let body = &doc["components"]["schemas"]["ChatTurnRequest"];
    assert_eq!(body["required"], json!(["id"]), "{body}");
    assert_eq!(body["additionalProperties"], false, "unknown fields are refused: {body}");
    for (path, method) in [("/api/chat", "post"), ("/api/chat/{id}/stream", "get")] {
        let streamed = &doc["paths"][path][method]["responses"]["200"]["content"];
        assert!(streamed["text/event-stream"].is_object(), "{method} {path} streams events: {streamed}");
    }
    assert!(turn["responses"]["200"]["content"]["text/plain"].is_object(), "the plain text transport is described");
    for path in ["/api/chats", "/api/chats/{id}/messages"] {
        let parameters = doc["paths"][path]["get"]["parameters"].as_array().expect("parameters");
        let limit = parameters.iter().find(|p| p["name"] == "limit").expect("a limit parameter");
        assert_eq!((&limit["schema"]["minimum"], &limit["schema"]["maximum"]), (&json!(1), &json!(100)), "{path}");
    }
}

/// The binary shipped to Databricks Apps is built without the `openapi` feature and serves the checked-in
/// `crates/server/openapi.json`: it must be the document this build assembles. `UPDATE_OPENAPI=1` rewrites it.
#[test]
fn the_checked_in_document_is_the_assembled_one() {
    let assembled = server::routes::document().to_pretty_json().expect("the document is JSON") + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &assembled).expect("writing openapi.json");
    }
    let checked_in = std::fs::read_to_string(path).expect("reading openapi.json");
    assert!(
        checked_in == assembled,
        "crates/server/openapi.json is out of date; rewrite it with: UPDATE_OPENAPI=1 cargo test -p server --test api \
         the_checked_in_document"
    );
}

/// Without the `openapi` feature the routes are mounted from the route table's own paths: they must be exactly the
/// documented operations.
#[test]
fn the_route_table_is_the_documented_operations() {
    let document = serde_json::to_value(server::routes::document()).expect("the document is JSON");
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let routed: std::collections::BTreeSet<_> =
        server::routes::ROUTES.iter().map(|(method, path)| ((*method).to_owned(), (*path).to_owned())).collect();
    assert_eq!(routed, documented);
}
