//! Approvals: an agent asks before calling a tool of an MCP server; the user allows or denies it with
//! `POST /api/chat/{id}/approvals/{approval_id}`, both answers reach the agent, and the answer goes on in the same
//! assistant message, resumable like any other.

use fake_databricks::{FakeEndpoint, FakeWorkspace};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{Answer, MessagePage, MessagePart, MessageStatus, ToolState, UiMessage};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, TestApp, test_env};
use crate::streams::Streamed;

const PAT: &str = "dapi-app-token";
const AGENT: &str = "mail-agent";

/// The app on a workspace whose default model is a Responses agent.
async fn agent_app(connect: PgConnectOptions) -> TestApp {
    let fake = FakeWorkspace::start().await;
    fake.workspace().add_pat(PAT);
    fake.workspace().set_serving_endpoints(vec![FakeEndpoint::new(AGENT, "agent/v1/responses")]);
    let env = test_env()
        .with("DATABRICKS_HOST", &fake.url())
        .with("DATABRICKS_TOKEN", PAT)
        .with("DATABRICKS_SERVING_ENDPOINT", AGENT)
        .with("TITLE_GENERATION", "false")
        .with("CHECKPOINT_INTERVAL_MS", "100")
        .with("LLM_RETRY_BASE_DELAY_MS", "20");
    TestApp::spawn_with_fake(connect, fake, env).await
}

async fn messages(app: &TestApp, user: &str, chat_id: Uuid) -> Vec<UiMessage> {
    app.get(user, &format!("/api/chats/{chat_id}/messages")).await.parse::<MessagePage>().messages
}

/// The approval part of an answer: (approval id, its data).
fn approval(answer: &UiMessage) -> (String, Value) {
    let data = answer
        .parts
        .iter()
        .find_map(|part| match part {
            MessagePart::Data(data) if data.kind == "data-approval" => Some(data.data.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("an approval part in {:?}", answer.parts));
    (data["approvalId"].as_str().expect("an approval id").to_owned(), data)
}

fn tool(answer: &UiMessage) -> shared::ToolPart {
    answer
        .parts
        .iter()
        .find_map(|part| match part {
            MessagePart::Tool(tool) => Some(tool.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("a tool card in {:?}", answer.parts))
}

/// Starts a chat whose answer asks for an approval, and returns the chat, the stream and the stored answer.
async fn ask(app: &TestApp) -> (Uuid, Streamed, UiMessage) {
    let chat_id = Uuid::new_v4();
    let turn = app.post_chat(ALICE, json!({"id": chat_id, "message": "Email ops [[fake approval=1]]"})).await;
    assert_eq!(turn.status, StatusCode::OK, "{}", turn.raw);
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "the agent's response ends with the request");
    let stored = messages(app, ALICE, chat_id).await;
    assert_eq!(stored.len(), 2);
    (chat_id, turn, stored[1].clone())
}

async fn answer(app: &TestApp, user: &str, chat_id: Uuid, approval_id: &str, body: Value) -> Streamed {
    let path = format!("/api/chat/{chat_id}/approvals/{approval_id}");
    app.read_stream(app.request(Some(user), Method::POST, &path).json(&body)).await
}

/// The input items of the last request the agent got.
fn last_input(app: &TestApp) -> Vec<Value> {
    let requests = app.fake().requests_for(AGENT);
    let last = requests.last().expect("the agent was called");
    last.body["input"].as_array().cloned().unwrap_or_default()
}

#[sqlx::test(migrations = false)]
async fn an_approval_request_is_a_tool_card_and_a_request_that_survive_a_reload(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange, act
    let app = agent_app(connect).await;
    let (_, turn, stored) = ask(&app).await;

    // Assert: the stream built what is stored, and both show the request waiting.
    let mut live = Answer::default();
    turn.chunks().iter().for_each(|chunk| {
        live.apply(chunk);
    });
    assert_eq!(live.parts, stored.parts);
    let (_, data) = approval(&stored);
    assert_eq!(data["state"], "requested");
    assert_eq!(data["toolName"], "send_email");
    assert_eq!(data["serverLabel"], "mail-server");
    let card = tool(&stored);
    assert_eq!((card.state, card.provider_executed), (ToolState::InputAvailable, Some(true)));
    assert_eq!(card.server_label(), Some("mail-server"));
    assert_eq!(card.input, Some(json!({"to": "ops@example.com"})));
}

#[sqlx::test(migrations = false)]
async fn an_allowed_call_reaches_the_agent_and_the_answer_goes_on_in_the_same_message(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange
    let app = agent_app(connect).await;
    let (chat_id, first, asked) = ask(&app).await;
    let (approval_id, _) = approval(&asked);
    let last_id = *first.ids().last().expect("event ids");

    // Act
    let continued = answer(&app, ALICE, chat_id, &approval_id, json!({"approve": true})).await;

    // Assert: the continuation streams into the same message, its event ids after the first stream's.
    assert_eq!(continued.status, StatusCode::OK, "{}", continued.raw);
    assert_eq!(continued.message_id(), Some(asked.id));
    assert!(continued.ids().iter().all(|id| *id > last_id), "{:?} after {last_id}", continued.ids());
    assert_eq!(continued.final_status(), Some(MessageStatus::Complete));
    assert!(continued.text().contains("Approved"), "{}", continued.text());

    // Assert: both the request and the user's answer reached the agent.
    let input = last_input(&app);
    let request = input.iter().find(|i| i["type"] == "mcp_approval_request").expect("the request is echoed");
    assert_eq!(request["id"], approval_id.as_str());
    assert_eq!(request["server_label"], "mail-server");
    let response = input.iter().find(|i| i["type"] == "mcp_approval_response").expect("the response is sent");
    assert_eq!((&response["approval_request_id"], &response["approve"]), (&json!(approval_id), &json!(true)));

    // Assert: one answer, holding the first response, the answered request and the rest.
    let stored = messages(&app, ALICE, chat_id).await;
    assert_eq!(stored.len(), 2, "the answer goes on; no new message");
    let answer = &stored[1];
    assert_eq!(answer.id, asked.id);
    assert_eq!(answer.metadata.status, MessageStatus::Complete);
    assert!(answer.text().starts_with(&asked.text()), "the first response is kept");
    assert!(answer.text().contains("Approved"), "{}", answer.text());
    assert_eq!(approval(answer).1["state"], "approved");
    assert_eq!(tool(answer).state, ToolState::OutputAvailable);

    // Assert: replaying the answer from its first event reads one message that goes on, ending once.
    let path = format!("/api/chat/{chat_id}/stream?cursor=1&generation={}", asked.id);
    let replay = app.read_stream(app.request(Some(ALICE), Method::GET, &path)).await;
    assert_eq!(replay.status, StatusCode::OK);
    let mut assembled = Answer::default();
    replay.chunks().iter().for_each(|chunk| {
        assembled.apply(chunk);
    });
    assert_eq!(replay.chunks().iter().filter(|c| c.is_finish()).count(), 1, "{}", replay.raw);
    assert_eq!(assembled.parts, answer.parts, "the whole answer, once");
}

#[sqlx::test(migrations = false)]
async fn a_denied_call_reaches_the_agent_with_its_reason(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = agent_app(connect).await;
    let (chat_id, _, asked) = ask(&app).await;
    let (approval_id, _) = approval(&asked);

    // Act
    let continued =
        answer(&app, ALICE, chat_id, &approval_id, json!({"approve": false, "reason": "not before Monday"})).await;

    // Assert: the agent heard the refusal and its reason (the template sends nothing on deny).
    assert_eq!(continued.status, StatusCode::OK, "{}", continued.raw);
    let input = last_input(&app);
    let response = input.iter().find(|i| i["type"] == "mcp_approval_response").expect("the response is sent");
    assert_eq!(response["approve"], false);
    assert_eq!(response["reason"], "not before Monday");
    assert!(continued.text().contains("Denied"), "{}", continued.text());
    let stored = messages(&app, ALICE, chat_id).await;
    let answer = &stored[1];
    let (_, data) = approval(answer);
    assert_eq!((data["state"].as_str(), data["reason"].as_str()), (Some("denied"), Some("not before Monday")));
    let card = tool(answer);
    assert_eq!(card.state, ToolState::OutputError);
    assert!(card.error_text.unwrap_or_default().contains("not before Monday"));
}

#[sqlx::test(migrations = false)]
async fn an_approval_is_answered_once_by_its_owner_only_and_bad_bodies_change_nothing(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange
    let app = agent_app(connect).await;
    let (chat_id, _, asked) = ask(&app).await;
    let (approval_id, _) = approval(&asked);
    let path = format!("/api/chat/{chat_id}/approvals/{approval_id}");

    // Act, assert: bad bodies are 400 and change nothing.
    for body in [
        json!({}),
        json!({"approve": "yes"}),
        json!({"approve": true, "extra": 1}),
        json!({"approve": false, "reason": "x".repeat(2001)}),
    ] {
        let response = app.json(ALICE, Method::POST, &path, body.clone()).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
    }
    // Another user's chat, an unknown chat, an unknown approval: 404 alike.
    let other = app.json(BOB, Method::POST, &path, json!({"approve": true})).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let unknown_chat = app
        .json(
            ALICE,
            Method::POST,
            &format!("/api/chat/{}/approvals/{approval_id}", Uuid::new_v4()),
            json!({"approve": true}),
        )
        .await;
    assert_eq!(unknown_chat.status, StatusCode::NOT_FOUND);
    let unknown =
        app.json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/approvals/nope"), json!({"approve": true})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let stored = messages(&app, ALICE, chat_id).await;
    assert_eq!(approval(&stored[1]).1["state"], "requested", "nothing changed");
    assert_eq!(stored[1].metadata.status, MessageStatus::Complete);

    // The first answer counts; a second is 409.
    let first = answer(&app, ALICE, chat_id, &approval_id, json!({"approve": true})).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = app.json(ALICE, Method::POST, &path, json!({"approve": false})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

#[sqlx::test(migrations = false)]
async fn a_request_the_chat_went_past_is_409(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: the user ignores the request and asks something else.
    let app = agent_app(connect).await;
    let (chat_id, _, asked) = ask(&app).await;
    let (approval_id, _) = approval(&asked);
    let next = app.post_chat(ALICE, json!({"id": chat_id, "message": "Never mind."})).await;
    assert_eq!(next.status, StatusCode::OK);

    // Act
    let late = app
        .json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/approvals/{approval_id}"), json!({"approve": true}))
        .await;

    // Assert: refused, and the ignored request is not sent to the agent as an orphan either.
    assert_eq!(late.status, StatusCode::CONFLICT);
    let input = last_input(&app);
    assert!(
        input.iter().all(|i| i["type"] != "mcp_approval_request" && i["type"] != "function_call"),
        "a request nobody answered stays out of the history: {input:?}"
    );
}
