//! Tools: a chat-completions model calls the built-in tools over the user's records; the server validates and runs
//! the calls, feeds the results back and loops until the model answers, stored and resumable like text. Writes wait
//! for the user's approval; read-only mode never runs one; another user's chat is "not found".

use fake_databricks::FakeWorkspace;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::config::EnvMap;
use shared::{Answer, MessagePage, MessagePart, MessageStatus, ToolPart, ToolState, UiMessage};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::helpers::{ALICE, BOB, MODEL, TestApp, model_env};
use crate::streams::Streamed;

async fn tool_app(connect: PgConnectOptions, extra: &[(&str, &str)]) -> TestApp {
    let fake = FakeWorkspace::start().await;
    let mut env: EnvMap = model_env(&fake);
    for (name, value) in extra {
        env = env.with(name, value);
    }
    TestApp::spawn_with_fake(connect, fake, env).await
}

async fn messages(app: &TestApp, user: &str, chat_id: Uuid) -> Vec<UiMessage> {
    app.get(user, &format!("/api/chats/{chat_id}/messages")).await.parse::<MessagePage>().messages
}

fn tools(parts: &[MessagePart]) -> Vec<ToolPart> {
    parts
        .iter()
        .filter_map(|part| match part {
            MessagePart::Tool(tool) => Some(tool.clone()),
            _ => None,
        })
        .collect()
}

fn approval(parts: &[MessagePart]) -> Option<Value> {
    parts.iter().find_map(|part| match part {
        MessagePart::Data(data) if data.kind == "data-approval" => Some(data.data.clone()),
        _ => None,
    })
}

/// The requests the model got, in order.
fn model_requests(app: &TestApp) -> Vec<Value> {
    app.fake().requests().into_iter().filter(|r| r.body["model"] == MODEL).map(|r| r.body).collect()
}

/// Every `tool_calls` id of a request has exactly one `tool` message, and every `tool` message answers a call.
#[track_caller]
fn assert_paired(request: &Value) {
    let messages = request["messages"].as_array().expect("messages");
    let calls: Vec<&str> = messages
        .iter()
        .flat_map(|m| m["tool_calls"].as_array().into_iter().flatten())
        .map(|c| c["id"].as_str().expect("a call id"))
        .collect();
    let results: Vec<&str> = messages
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["tool_call_id"].as_str().expect("a result's call id"))
        .collect();
    let mut sorted_calls = calls.clone();
    sorted_calls.sort_unstable();
    let mut sorted_results = results.clone();
    sorted_results.sort_unstable();
    assert_eq!(sorted_calls, sorted_results, "every call has exactly one result: {request}");
}

/// The stream assembles to what is stored.
#[track_caller]
fn assert_same(stream: &Streamed, stored: &UiMessage) {
    let mut live = Answer::default();
    stream.chunks().iter().for_each(|chunk| {
        live.apply(chunk);
    });
    assert_eq!(live.parts, stored.parts);
}

#[sqlx::test(migrations = false)]
async fn a_tool_round_streams_the_call_runs_it_and_the_model_answers_with_its_result(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange
    let app = tool_app(connect, &[]).await;
    let old = app.create_chat(ALICE, json!({"title": "Quarterly plan"})).await;
    let chat_id = Uuid::new_v4();

    // Act
    let turn = app
        .post_chat(ALICE, json!({"id": chat_id, "message": "My chats? [[fake call=list_chats args={\"limit\":5}]]"}))
        .await;

    // Assert
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    let stored = messages(&app, ALICE, chat_id).await;
    let answer = &stored[1];
    assert_same(&turn, answer);
    let calls = tools(&answer.parts);
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].tool_name.as_str(), calls[0].state), ("list_chats", ToolState::OutputAvailable));
    assert_eq!(calls[0].input, Some(json!({"limit": 5})));
    assert_eq!(calls[0].provider_executed, None, "this server ran it");
    let listed = calls[0].output.clone().expect("an output");
    let ids: Vec<&str> = listed["chats"].as_array().expect("chats").iter().filter_map(|c| c["id"].as_str()).collect();
    assert!(ids.contains(&old.id.to_string().as_str()), "{listed}");
    assert!(answer.parts.iter().any(|p| matches!(p, MessagePart::StepStart)));
    let text = shared::text_of(&answer.parts);
    assert!(text.starts_with("Results: ") && text.contains("Quarterly plan"), "{text}");

    // The model was offered the tools, then got the call and its result, paired.
    let requests = model_requests(&app);
    assert_eq!(requests.len(), 2);
    let offered: Vec<&str> =
        requests[0]["tools"].as_array().expect("tools").iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert!(offered.contains(&"list_chats") && offered.contains(&"delete_chat"), "{offered:?}");
    assert_eq!(requests[0]["tool_choice"], "auto");
    assert_paired(&requests[1]);
    // Usage is summed over both model calls.
    assert_eq!(answer.metadata.usage.and_then(|u| u.input_tokens), Some(20));
}

#[sqlx::test(migrations = false)]
async fn another_users_chat_is_not_found_and_nothing_of_it_reaches_the_answer(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange
    let app = tool_app(connect, &[]).await;
    let secret = app.create_chat(BOB, json!({"title": "Bob secret salary talk"})).await;
    let chat_id = Uuid::new_v4();
    let args = format!("{{\"chat_id\":\"{}\"}}", secret.id);

    // Act
    let turn = app
        .post_chat(ALICE, json!({"id": chat_id, "message": format!("Read it [[fake call=read_chat args={args}]]")}))
        .await;

    // Assert
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete));
    let answer = &messages(&app, ALICE, chat_id).await[1];
    let call = &tools(&answer.parts)[0];
    assert_eq!((call.state, call.error_text.as_deref()), (ToolState::OutputError, Some("chat not found")));
    assert!(!turn.raw.contains("salary"), "nothing of Bob's chat streams");
    assert!(!serde_json::to_string(&answer.parts).expect("json").contains("salary"));
    let rename = app
        .post_chat(ALICE, json!({"id": chat_id, "message": format!("Rename [[fake call=search_chats args={{\"query\":\"salary\"}}]]")}))
        .await;
    assert!(!rename.raw.contains("salary talk"), "search sees only the caller's chats");
}

#[sqlx::test(migrations = false)]
async fn read_only_mode_offers_no_write_and_never_runs_one(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = tool_app(connect, &[("CHAT_TOOLS_READ_ONLY", "true")]).await;
    let keep = app.create_chat(ALICE, json!({"title": "Keep me"})).await;
    let chat_id = Uuid::new_v4();
    let args = format!("{{\"chat_id\":\"{}\"}}", keep.id);

    // Act
    let turn = app
        .post_chat(ALICE, json!({"id": chat_id, "message": format!("Delete [[fake call=delete_chat args={args}]]")}))
        .await;

    // Assert
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete));
    let offered = model_requests(&app)[0]["tools"].to_string();
    assert!(offered.contains("list_chats") && !offered.contains("delete_chat") && !offered.contains("create_chat"));
    let call = &tools(&messages(&app, ALICE, chat_id).await[1].parts)[0];
    assert_eq!(call.state, ToolState::OutputError);
    assert!(call.error_text.as_deref().is_some_and(|e| e.contains("read-only")), "{call:?}");
    assert_eq!(app.get(ALICE, &format!("/api/chats/{}", keep.id)).await.status, StatusCode::OK, "still there");
    let config = app.get(ALICE, "/api/config").await.json;
    assert_eq!(config["tools"][0]["name"], "records");
    assert_eq!(config["tools"][0]["tools"], 4, "the reads only");
}

/// Asks the model to delete `target`: the answer ends waiting for the user's approval.
async fn ask_to_delete(app: &TestApp, target: Uuid) -> (Uuid, Streamed, UiMessage) {
    let chat_id = Uuid::new_v4();
    let args = format!("{{\"chat_id\":\"{target}\"}}");
    let message = format!("Delete it [[fake call=current_user call=delete_chat args={args}]]");
    let turn = app.post_chat(ALICE, json!({"id": chat_id, "message": message})).await;
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    let answer = messages(app, ALICE, chat_id).await[1].clone();
    (chat_id, turn, answer)
}

async fn decide(app: &TestApp, chat_id: Uuid, approval_id: &str, body: Value) -> Streamed {
    let path = format!("/api/chat/{chat_id}/approvals/{approval_id}");
    app.read_stream(app.request(Some(ALICE), Method::POST, &path).json(&body)).await
}

#[sqlx::test(migrations = false)]
async fn a_write_waits_for_approval_and_a_denial_changes_nothing_and_reaches_the_model(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange
    let app = tool_app(connect, &[]).await;
    let target = app.create_chat(ALICE, json!({"title": "Old notes"})).await;
    let (chat_id, turn, asked) = ask_to_delete(&app, target.id).await;

    // Assert: the read ran, the write waits, the model was not asked again.
    assert_same(&turn, &asked);
    let calls = tools(&asked.parts);
    assert_eq!(
        calls.iter().map(|c| c.state).collect::<Vec<_>>(),
        [ToolState::OutputAvailable, ToolState::InputAvailable]
    );
    let request = approval(&asked.parts).expect("an approval request");
    assert_eq!((request["state"].as_str(), request["toolName"].as_str()), (Some("requested"), Some("delete_chat")));
    assert_eq!(request["source"], "records");
    assert_eq!(model_requests(&app).len(), 1);
    assert_eq!(app.get(ALICE, &format!("/api/chats/{}", target.id)).await.status, StatusCode::OK);

    // Act: deny it.
    let approval_id = request["approvalId"].as_str().expect("id").to_owned();
    let denied = decide(&app, chat_id, &approval_id, json!({"approve": false, "reason": "keep it"})).await;

    // Assert
    assert_eq!(denied.final_status(), Some(MessageStatus::Complete), "{}", denied.raw);
    assert_eq!(app.get(ALICE, &format!("/api/chats/{}", target.id)).await.status, StatusCode::OK, "nothing deleted");
    let after = messages(&app, ALICE, chat_id).await;
    assert_eq!(after.len(), 2, "the same message goes on");
    let calls = tools(&after[1].parts);
    assert_eq!(calls[1].state, ToolState::OutputError);
    assert_eq!(calls[1].error_text.as_deref(), Some("Denied by the user: keep it"));
    assert_eq!(approval(&after[1].parts).expect("answered")["state"], "denied");
    let requests = model_requests(&app);
    assert_eq!(requests.len(), 2, "the model answers without it");
    assert_paired(&requests[1]);
    assert!(requests[1].to_string().contains("Denied by the user: keep it"));
    assert!(shared::text_of(&after[1].parts).contains("Denied by the user"));
    // Answered once only.
    let again = app
        .json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/approvals/{approval_id}"), json!({"approve": true}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

#[sqlx::test(migrations = false)]
async fn an_allowed_write_runs_and_the_model_goes_on_in_the_same_message(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = tool_app(connect, &[]).await;
    let target = app.create_chat(ALICE, json!({"title": "Old notes"})).await;
    let (chat_id, first, asked) = ask_to_delete(&app, target.id).await;
    let approval_id = approval(&asked.parts).expect("a request")["approvalId"].as_str().expect("id").to_owned();

    // Act
    let allowed = decide(&app, chat_id, &approval_id, json!({"approve": true})).await;

    // Assert
    assert_eq!(allowed.final_status(), Some(MessageStatus::Complete), "{}", allowed.raw);
    assert_eq!(app.get(ALICE, &format!("/api/chats/{}", target.id)).await.status, StatusCode::NOT_FOUND, "deleted");
    let after = messages(&app, ALICE, chat_id).await;
    let calls = tools(&after[1].parts);
    assert_eq!(calls[1].state, ToolState::OutputAvailable);
    assert_eq!(calls[1].output, Some(json!({"deleted": target.id})));
    assert!(shared::text_of(&after[1].parts).starts_with("Results: "));
    assert_eq!(after[1].metadata.usage.and_then(|u| u.input_tokens), Some(20), "both model calls count");
    let finish_steps = |s: &Streamed| s.chunks().iter().filter(|c| matches!(c, shared::UiChunk::FinishStep)).count();
    let start_steps = |s: &Streamed| s.chunks().iter().filter(|c| matches!(c, shared::UiChunk::StartStep)).count();
    assert_eq!((start_steps(&first), finish_steps(&first)), (1, 1), "a step ends once");
    assert_eq!(start_steps(&allowed), finish_steps(&allowed));
    assert!(first.ids().last() < allowed.ids().first(), "the continuation's events follow the first ones");
    // The stream of the first turn plus the continuation is the stored answer.
    let mut live = Answer::default();
    first.chunks().iter().chain(allowed.chunks().iter()).for_each(|chunk| {
        live.apply(chunk);
    });
    assert_eq!(live.parts, after[1].parts);
    assert_paired(model_requests(&app).last().expect("the continuation's request"));
}

#[sqlx::test(migrations = false)]
async fn an_approval_answered_too_late_is_denied_and_the_model_is_told(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = tool_app(connect, &[("TOOL_APPROVAL_TIMEOUT_SECS", "1")]).await;
    let target = app.create_chat(ALICE, json!({"title": "Old notes"})).await;
    let (chat_id, _, asked) = ask_to_delete(&app, target.id).await;
    let approval_id = approval(&asked.parts).expect("a request")["approvalId"].as_str().expect("id").to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    // Act
    let late = decide(&app, chat_id, &approval_id, json!({"approve": true})).await;

    // Assert
    assert_eq!(late.final_status(), Some(MessageStatus::Complete), "{}", late.raw);
    assert_eq!(app.get(ALICE, &format!("/api/chats/{}", target.id)).await.status, StatusCode::OK, "not run");
    let after = messages(&app, ALICE, chat_id).await;
    assert_eq!(approval(&after[1].parts).expect("answered")["state"], "expired");
    assert_eq!(tools(&after[1].parts)[1].state, ToolState::OutputError);
}

#[sqlx::test(migrations = false)]
async fn the_step_cap_ends_the_turn_cleanly_with_every_call_answered(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = tool_app(connect, &[("TOOL_MAX_STEPS", "3")]).await;
    let chat_id = Uuid::new_v4();

    // Act
    let turn =
        app.post_chat(ALICE, json!({"id": chat_id, "message": "Loop [[fake call=current_user call_rounds=99]]"})).await;

    // Assert
    assert_eq!(turn.final_status(), Some(MessageStatus::Error));
    assert!(turn.error_text().is_some_and(|e| e.contains("TOOL_MAX_STEPS")), "{:?}", turn.error_text());
    assert_eq!(model_requests(&app).len(), 3);
    let answer = &messages(&app, ALICE, chat_id).await[1];
    assert_same(&turn, answer);
    assert!(tools(&answer.parts).iter().all(|t| t.state == ToolState::OutputAvailable));

    // The next turn's history pairs every call of the capped answer with its result.
    let next = app.post_chat(ALICE, json!({"id": chat_id, "message": "And now?"})).await;
    assert_eq!(next.final_status(), Some(MessageStatus::Complete));
    assert_paired(model_requests(&app).last().expect("a request"));
}

#[sqlx::test(migrations = false)]
async fn invalid_arguments_unknown_tools_and_malformed_json_are_errors_told_to_the_model(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange
    let app = tool_app(connect, &[]).await;
    let chat_id = Uuid::new_v4();

    // Act
    let message = "Try [[fake call=read_chat args={\"limit\":\"many\"} call=format_disk]]";
    let turn = app.post_chat(ALICE, json!({"id": chat_id, "message": message})).await;
    let malformed = app
        .post_chat(
            ALICE,
            json!({"id": chat_id, "message": "Again [[fake call=list_chats args={\"limit\":2} call_malformed=1]]"}),
        )
        .await;

    // Assert
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    let stored = messages(&app, ALICE, chat_id).await;
    let calls = tools(&stored[1].parts);
    assert_eq!(calls[0].state, ToolState::OutputError);
    assert!(calls[0].error_text.as_deref().is_some_and(|e| e.starts_with("invalid arguments")), "{calls:?}");
    assert_eq!(calls[1].error_text.as_deref(), Some("there is no tool named `format_disk`"));
    let requests = model_requests(&app);
    assert_paired(&requests[1]);
    assert!(requests[1].to_string().contains("invalid arguments"), "the model is told");

    assert_eq!(malformed.final_status(), Some(MessageStatus::Complete), "{}", malformed.raw);
    let calls = tools(&messages(&app, ALICE, chat_id).await[3].parts);
    assert!(calls[0].error_text.as_deref().is_some_and(|e| e.contains("not valid JSON")), "{calls:?}");
    assert_paired(model_requests(&app).last().expect("a request"));
    let echoed = model_requests(&app).last().expect("a request")["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .rev()
        .flat_map(|m| m["tool_calls"].as_array().into_iter().flatten())
        .find(|c| c["id"] == calls[0].tool_call_id)
        .map(|c| c["function"]["arguments"].clone());
    assert_eq!(echoed, Some(json!("{}")), "malformed arguments go back as an empty object");
}

#[sqlx::test(migrations = false)]
async fn calls_printed_as_text_run_like_real_calls(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = tool_app(connect, &[]).await;
    let chat_id = Uuid::new_v4();
    let turn =
        app.post_chat(ALICE, json!({"id": chat_id, "message": "Who? [[fake call=current_user call_text=1]]"})).await;
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    let answer = &messages(&app, ALICE, chat_id).await[1];
    let calls = tools(&answer.parts);
    assert_eq!((calls[0].tool_name.as_str(), calls[0].output.clone()), ("current_user", Some(json!({"user": ALICE}))));
    let text = shared::text_of(&answer.parts);
    assert!(!text.contains("\"name\""), "the printed call is not shown as text: {text}");
    assert!(text.contains(ALICE));
}

#[sqlx::test(migrations = false)]
async fn a_call_waiting_for_approval_is_no_orphan_when_the_chat_goes_on(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = tool_app(connect, &[]).await;
    let target = app.create_chat(ALICE, json!({"title": "Old notes"})).await;
    let (chat_id, _, asked) = ask_to_delete(&app, target.id).await;

    // Act: the user writes again instead of answering.
    let next = app.post_chat(ALICE, json!({"id": chat_id, "message": "Never mind."})).await;

    // Assert
    assert_eq!(next.final_status(), Some(MessageStatus::Complete));
    assert_paired(model_requests(&app).last().expect("a request"));
    let approval_id = approval(&asked.parts).expect("a request")["approvalId"].as_str().expect("id").to_owned();
    let late = app
        .json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/approvals/{approval_id}"), json!({"approve": true}))
        .await;
    assert_eq!(late.status, StatusCode::CONFLICT, "the chat went on");
    assert_eq!(app.get(ALICE, &format!("/api/chats/{}", target.id)).await.status, StatusCode::OK);
}

#[sqlx::test(migrations = false)]
async fn a_resume_in_the_middle_of_a_tool_call_continues_the_card(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: the call's arguments arrive in 6 pieces, 150 ms apart.
    let app = tool_app(connect, &[]).await;
    let chat_id = Uuid::new_v4();
    let message = "Slowly [[fake call=list_chats args={\"limit\":10} call_chunks=6 delay_ms=150]]";
    let mut open = app.open_chat(ALICE, json!({"id": chat_id, "message": message})).await;
    let first = open.read_until(|chunk| matches!(chunk, shared::UiChunk::ToolInputDelta { .. })).await;
    drop(open);
    let last_id = first.iter().filter_map(|e| e.id).next_back().expect("an event id");

    // Act
    let rest = app.resume(ALICE, chat_id, Some(last_id)).await;

    // Assert
    assert_eq!(rest.final_status(), Some(MessageStatus::Complete), "{}", rest.raw);
    let stored = &messages(&app, ALICE, chat_id).await[1];
    let mut live = Answer::default();
    crate::streams::chunks_of(&first).iter().chain(rest.chunks().iter()).for_each(|chunk| {
        live.apply(chunk);
    });
    assert_eq!(live.parts, stored.parts);
    assert_eq!(tools(&stored.parts)[0].state, ToolState::OutputAvailable);
}

#[sqlx::test(migrations = false)]
async fn tools_are_listed_in_the_config_and_the_models_say_who_can_use_them(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = tool_app(connect.clone(), &[]).await;
    let config = app.get(ALICE, "/api/config").await.json;
    assert_eq!(config["tools"], json!([{"name": "records", "kind": "records", "tools": 7}]));
    let models = app.get(ALICE, "/api/models").await.json;
    assert_eq!(models["models"][0]["tools"], true, "{models}");

    let off = {
        let fake = FakeWorkspace::start().await;
        let env = model_env(&fake).with("CHAT_TOOLS", "none");
        TestApp::spawn_with_fake(connect, fake, env).await
    };
    let chat_id = Uuid::new_v4();
    off.post_chat(ALICE, json!({"id": chat_id, "message": "Hi"})).await;
    let sent = &off.fake().requests()[0].body;
    assert!(sent.get("tools").is_none() && sent.get("tool_choice").is_none(), "{sent}");
    assert!(off.get(ALICE, "/api/config").await.json.get("tools").is_none());
}

const APP_TOKEN: &str = "dapi-app-token";
const ALICE_TOKEN: &str = "alice-user-token";

/// The app on a fake workspace whose Genie space is served by a real MCP server (`genie`), with `extra` settings;
/// returns once the server's tools are listed.
async fn mcp_app(connect: PgConnectOptions, extra: &[(&str, &str)], down: bool) -> TestApp {
    let fake = FakeWorkspace::start().await;
    fake.workspace().add_pat(APP_TOKEN);
    fake.workspace().add_pat(ALICE_TOKEN);
    fake.workspace().set_serving_endpoints(vec![fake_databricks::FakeEndpoint::chat(MODEL)]);
    fake.set_mcp_down(down);
    let mut env = model_env(&fake)
        .with("DATABRICKS_HOST", &fake.url())
        .with("DATABRICKS_TOKEN", APP_TOKEN)
        .with("MCP_SERVERS", &format!("genie={}", fake.mcp_url("/api/2.0/mcp/genie/space1")));
    for (name, value) in extra {
        env = env.with(name, value);
    }
    let app = TestApp::spawn_with_fake(connect, fake, env).await;
    if !down {
        for _ in 0..100 {
            let config = app.get(ALICE, "/api/config").await.json;
            if config["tools"][1]["tools"].as_u64().unwrap_or(0) > 0 {
                return app;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the MCP server's tools were never listed");
    }
    app
}

/// Posts a message as Alice, with her forwarded token.
async fn post_as_alice(app: &TestApp, chat_id: Uuid, message: &str) -> Streamed {
    let request = app
        .request(Some(ALICE), Method::POST, "/api/chat")
        .header("x-forwarded-access-token", ALICE_TOKEN)
        .json(&json!({"id": chat_id, "message": message}));
    app.read_stream(request).await
}

#[sqlx::test(migrations = false)]
async fn an_mcp_tool_runs_with_the_users_own_token_when_models_are_called_as_the_user(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Arrange
    let app = mcp_app(connect, &[("MODEL_AUTH", "user")], false).await;
    let chat_id = Uuid::new_v4();

    // Act
    let turn = post_as_alice(&app, chat_id, "Who am I to Genie? [[fake call=genie__whoami call=genie__broken]]").await;

    // Assert
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    let calls = app.fake().mcp_calls();
    let whoami = calls.iter().find(|c| c.tool == "whoami").expect("whoami reached the MCP server");
    assert_eq!(whoami.authorization.as_deref(), Some("Bearer alice-user-token"), "the user's token, not the app's");
    assert_eq!(whoami.path, "/api/2.0/mcp/genie/space1");
    let answer = &messages(&app, ALICE, chat_id).await[1];
    let parts = tools(&answer.parts);
    assert_eq!(parts[0].output, Some(json!({"authorization": "Bearer alice-user-token"})));
    assert_eq!(
        (parts[1].state, parts[1].error_text.as_deref()),
        (ToolState::OutputError, Some("the warehouse is stopped")),
        "a tool error is shown and told to the model"
    );
    assert!(shared::text_of(&answer.parts).contains("the warehouse is stopped"));
    let offered = model_requests(&app)[0]["tools"].to_string();
    assert!(offered.contains("genie__query_space") && offered.contains("list_chats"), "{offered}");
}

#[sqlx::test(migrations = false)]
async fn an_mcp_tool_marked_destructive_waits_for_approval(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = mcp_app(connect, &[], false).await;
    let chat_id = Uuid::new_v4();
    let turn = post_as_alice(&app, chat_id, "Drop it [[fake call=genie__drop_table args={\"table\":\"sales\"}]]").await;
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    let asked = &messages(&app, ALICE, chat_id).await[1];
    let request = approval(&asked.parts).expect("an approval request");
    assert_eq!((request["source"].as_str(), request["state"].as_str()), (Some("genie"), Some("requested")));
    assert!(app.fake().mcp_calls().iter().all(|c| c.tool != "drop_table"), "not run before the user allows it");

    let id = request["approvalId"].as_str().expect("id").to_owned();
    let allowed = decide(&app, chat_id, &id, json!({"approve": true})).await;
    assert_eq!(allowed.final_status(), Some(MessageStatus::Complete), "{}", allowed.raw);
    let dropped = app.fake().mcp_calls().into_iter().find(|c| c.tool == "drop_table").expect("run once allowed");
    assert_eq!(dropped.arguments, json!({"table": "sales"}));
    assert_eq!(dropped.authorization.as_deref(), Some("Bearer dapi-app-token"), "the app's identity by default");
}

#[sqlx::test(migrations = false)]
async fn a_tool_that_outlives_its_timeout_fails_and_the_model_is_told(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: the tool would take 30 s, the limit is 1 s (the bound is generous on any machine).
    let app = mcp_app(connect, &[("TOOL_TIMEOUT_SECS", "1")], false).await;
    let chat_id = Uuid::new_v4();

    // Act
    let timed_out = post_as_alice(&app, chat_id, "Wait [[fake call=genie__slow args={\"ms\":30000}]]").await;

    // Assert
    assert_eq!(timed_out.final_status(), Some(MessageStatus::Complete), "{}", timed_out.raw);
    let stored = messages(&app, ALICE, chat_id).await;
    let first = tools(&stored[1].parts);
    assert_eq!(first[0].error_text.as_deref(), Some("the tool did not answer within 1 s"));
}

#[sqlx::test(migrations = false)]
async fn stop_during_a_tool_call_cancels_it_and_keeps_the_finished_calls(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: one call that would take a minute, one that answers at once.
    let app = mcp_app(connect, &[], false).await;
    let chat_id = Uuid::new_v4();
    let message = "Wait more [[fake call=genie__slow args={\"ms\":60000} call=current_user]]";

    // Act: stop once the quick call has answered.
    let mut open = app.open_chat(ALICE, json!({"id": chat_id, "message": message})).await;
    open.read_until(|chunk| matches!(chunk, shared::UiChunk::ToolOutputAvailable { .. })).await;
    let stop = app.json(ALICE, Method::POST, &format!("/api/chat/{chat_id}/stop"), json!({})).await;
    let rest = open.rest().await;

    // Assert
    assert!(stop.status.is_success(), "{:?}", stop.json);
    assert!(!rest.is_empty());
    let stored = messages(&app, ALICE, chat_id).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].metadata.status, MessageStatus::Stopped);
    let second = tools(&stored[1].parts);
    assert_eq!(second[0].error_text.as_deref(), Some("stopped by the user before the tool answered"));
    assert_eq!(second[1].state, ToolState::OutputAvailable, "the finished call keeps its result");
}

#[sqlx::test(migrations = false)]
async fn an_mcp_server_that_is_down_offers_no_tools_and_turns_go_on(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = mcp_app(connect, &[], true).await;
    let mut problem = Value::Null;
    for _ in 0..100 {
        problem = app.get(ALICE, "/api/config").await.json["tools"][1].clone();
        if problem["problem"].is_string() && problem["problem"] != "connecting to the MCP server" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!((problem["name"].as_str(), problem["tools"].as_u64()), (Some("genie"), Some(0)), "{problem}");
    assert!(problem["problem"].is_string(), "{problem}");

    let chat_id = Uuid::new_v4();
    let turn = post_as_alice(&app, chat_id, "Hi there").await;
    assert_eq!(turn.final_status(), Some(MessageStatus::Complete), "{}", turn.raw);
    let offered = model_requests(&app)[0]["tools"].to_string();
    assert!(!offered.contains("genie__") && offered.contains("list_chats"), "{offered}");
}

#[sqlx::test(migrations = false)]
async fn each_chat_chooses_its_tool_sources(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange
    let app = mcp_app(connect, &[], false).await;
    let chat_id = Uuid::new_v4();

    // Act: the first message chooses Genie only.
    let request = app
        .request(Some(ALICE), Method::POST, "/api/chat")
        .json(&json!({"id": chat_id, "message": "Hi", "tools": ["genie"]}));
    let first = app.read_stream(request).await;

    // Assert
    assert_eq!(first.final_status(), Some(MessageStatus::Complete), "{}", first.raw);
    let offered = model_requests(&app)[0]["tools"].to_string();
    assert!(offered.contains("genie__lookup") && !offered.contains("list_chats"), "{offered}");
    let chat = app.get(ALICE, &format!("/api/chats/{chat_id}")).await.json;
    assert_eq!(chat["tools"], json!(["genie"]));

    // The choice stays with the chat; a call to a tool of a source it left out is no tool.
    let second = app.post_chat(ALICE, json!({"id": chat_id, "message": "List [[fake call=list_chats]]"})).await;
    assert_eq!(second.final_status(), Some(MessageStatus::Complete));
    let call = &tools(&messages(&app, ALICE, chat_id).await[3].parts)[0];
    assert_eq!(call.error_text.as_deref(), Some("there is no tool named `list_chats`"));

    // PATCH changes it; none at all sends no tools; unknown names are refused and change nothing.
    let none = app.json(ALICE, Method::PATCH, &format!("/api/chats/{chat_id}"), json!({"tools": []})).await;
    assert_eq!((none.status, none.json["tools"].clone()), (StatusCode::OK, json!([])));
    app.post_chat(ALICE, json!({"id": chat_id, "message": "Plain"})).await;
    let sent = model_requests(&app).last().cloned().expect("a request");
    assert!(sent.get("tools").is_none(), "{sent}");
    let unknown = app.json(ALICE, Method::PATCH, &format!("/api/chats/{chat_id}"), json!({"tools": ["shell"]})).await;
    unknown.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        unknown.json["error"]["message"].as_str().is_some_and(|m| m.contains("records, genie")),
        "{}",
        unknown.json
    );
    let empty = app.json(ALICE, Method::PATCH, &format!("/api/chats/{chat_id}"), json!({})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let bob = app.json(BOB, Method::PATCH, &format!("/api/chats/{chat_id}"), json!({"tools": ["records"]})).await;
    assert_eq!(bob.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(ALICE, &format!("/api/chats/{chat_id}")).await.json["tools"], json!([]));
    let refused = app
        .json(ALICE, Method::POST, "/api/chat", json!({"id": Uuid::new_v4(), "message": "x", "tools": ["nope"]}))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
}
