//! Odd input at the edges of what the API accepts, much of it first sent by the API fuzzer
//! (`scripts/fuzz-api.sh`): each case gets a 4xx in the error envelope or a normal answer, never a 500, a panic
//! or a stream that does not end.

use reqwest::StatusCode;
use serde_json::json;
use shared::ChatPage;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{ALICE, TestApp};

#[sqlx::test(migrations = false)]
async fn a_search_with_control_characters_treats_them_as_spaces(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn(connect).await;
    let chat = app.create_chat(ALICE, json!({"title": "Lakehouse report"})).await;

    // Act: PostgreSQL cannot take a NUL in text; a pasted tab or newline is just a separator.
    let with_nul = app.get(ALICE, "/api/chats?q=lake%00report").await;
    let with_newline = app.get(ALICE, "/api/chats?q=lake%0Arep").await;
    let only_controls = app.get(ALICE, "/api/chats?q=%00%01%1F").await;

    // Assert
    for response in [&with_nul, &with_newline, &only_controls] {
        assert_eq!(response.status, StatusCode::OK, "{}", response.json);
        assert_eq!(response.parse::<ChatPage>().chats.iter().map(|c| c.id).collect::<Vec<_>>(), vec![chat.id]);
    }
}
