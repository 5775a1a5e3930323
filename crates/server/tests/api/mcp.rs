//! MCP servers as a source of tools, against the fake workspace's real MCP server (`fake_databricks::mcp`): what is
//! listed (names, read-only and approval from the annotations), what calls answer (text, structured content, tool
//! errors), a server that is down and comes back, and which token reaches which server (the user's, the app's, or
//! none outside the workspace). These tests use [`McpServer`] directly and need no database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_databricks::FakeWorkspace;
use secrecy::SecretString;
use serde_json::{Value, json};
use server::config::McpServerConfig;
use server::llm::token::StaticToken;
use server::tools::mcp::{McpServer, Workspace};
use server::tools::{SourceTool, ToolContext, ToolSource};
use tokio_util::sync::CancellationToken;

const APP_TOKEN: &str = "app-token";
const USER_TOKEN: &str = "user-token";
const GENIE: &str = "/api/2.0/mcp/genie/space1";
const FUNCTIONS: &str = "/api/2.0/mcp/functions/main/tools";
const EXTERNAL: &str = "/mcp/ext";

/// A started server and what stops it.
struct Started {
    server: Arc<McpServer>,
    closing: CancellationToken,
}

impl Drop for Started {
    fn drop(&mut self) {
        self.closing.cancel();
    }
}

/// The workspace of the fake, at `host`, with the app's token.
fn workspace(host: String) -> Workspace {
    Workspace { host, tokens: Arc::new(StaticToken(Some(SecretString::from(APP_TOKEN)))) }
}

/// A server named `fake` at `url`, listed at once and again every `refresh`.
fn start(url: String, workspace: Option<Workspace>, user_auth: bool, refresh: Duration) -> Started {
    let server = McpServer::new(McpServerConfig { name: "fake".into(), url }, workspace, user_auth, refresh);
    let closing = CancellationToken::new();
    server.start(closing.clone());
    Started { server, closing }
}

/// Waits until the server offers tools (or fails the test after 20 s).
async fn listed(server: &McpServer) -> Arc<[SourceTool]> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tools = server.tools();
        if !tools.is_empty() {
            return tools;
        }
        assert!(Instant::now() < deadline, "no tools listed; problem: {:?}", server.problem());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the server reports a problem (or fails the test after 20 s).
async fn problem(server: &McpServer) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(problem) = server.problem().filter(|_| server.tools().is_empty())
            && problem != "connecting to the MCP server"
        {
            return problem;
        }
        assert!(Instant::now() < deadline, "no problem reported; tools: {:?}", server.tools());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tool(tools: &[SourceTool], name: &str) -> SourceTool {
    tools.iter().find(|tool| tool.name == name).cloned().unwrap_or_else(|| panic!("no tool `{name}` in {tools:?}"))
}

fn context(user_token: Option<&str>) -> ToolContext {
    let mut context = ToolContext::new("alice@example.com", uuid::Uuid::new_v4());
    context.user_token = user_token.map(SecretString::from);
    context
}

/// Calls `whoami` and returns the `Authorization` header the fake saw (`None`: there was none).
async fn whoami(server: &McpServer, user_token: Option<&str>) -> Option<String> {
    let tools = listed(server).await;
    let answer = server.call(&tool(&tools, "whoami"), json!({}), &context(user_token)).await;
    let answer = answer.unwrap_or_else(|error| panic!("whoami failed: {error}"));
    answer["authorization"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn tools_are_listed_with_their_annotations() {
    let fake = FakeWorkspace::start().await;
    let started = start(fake.mcp_url(GENIE), Some(workspace(fake.url())), false, Duration::from_secs(300));
    let server = &started.server;

    let tools = listed(server).await;
    let mut names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    names.sort_unstable();
    // `bad_schema` takes an array: it cannot be offered, and is skipped.
    assert_eq!(names, ["broken", "drop_table", "lookup", "query_space", "slow", "whoami"]);
    let lookup = tool(&tools, "lookup");
    assert!(lookup.read_only && !lookup.needs_approval);
    assert_eq!(lookup.description, "Looks a word up.");
    assert_eq!(lookup.input_schema["required"], json!(["q"]));
    let drop_table = tool(&tools, "drop_table");
    assert!(!drop_table.read_only && drop_table.needs_approval);
    assert_eq!(server.problem(), None);
    assert_eq!(server.name(), "fake");
    assert_eq!(server.kind(), "mcp");
}

#[tokio::test]
async fn calls_answer_and_tool_errors_come_back_as_errors() {
    let fake = FakeWorkspace::start().await;
    let started = start(fake.mcp_url(FUNCTIONS), Some(workspace(fake.url())), false, Duration::from_secs(300));
    let server = &started.server;
    let tools = listed(server).await;
    let context = context(None);

    // One text: a string.
    let answer = server.call(&tool(&tools, "lookup"), json!({"q": "spark"}), &context).await;
    assert_eq!(answer, Ok(json!("found: spark")));
    // Structured content: as it is.
    let answer = server.call(&tool(&tools, "query_space"), json!({"question": "how many?"}), &context).await;
    assert_eq!(answer, Ok(json!({"columns": ["question", "answer"], "rows": [["how many?", 42]]})));
    // A tool error: its text, as the error.
    let answer = server.call(&tool(&tools, "broken"), json!({}), &context).await;
    assert_eq!(answer, Err("the warehouse is stopped".to_owned()));
    // A protocol error (an argument missing): an error naming the server, with the server's short message.
    let error = server.call(&tool(&tools, "lookup"), json!({}), &context).await.unwrap_err();
    assert!(error.contains("`fake`") && error.contains("`q`"), "{error}");

    let calls = fake.mcp_calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(calls[0].path, FUNCTIONS);
    assert_eq!(calls[0].tool, "lookup");
    assert_eq!(calls[0].arguments, json!({"q": "spark"}));
    assert_eq!(calls[2].tool, "broken");
}

#[tokio::test]
async fn slow_calls_answer_and_a_callers_timeout_leaves_the_server_usable() {
    let fake = FakeWorkspace::start().await;
    let started = start(fake.mcp_url(GENIE), None, false, Duration::from_secs(300));
    let server = &started.server;
    let tools = listed(server).await;
    let slow = tool(&tools, "slow");
    let context = context(None);

    let begun = Instant::now();
    assert_eq!(server.call(&slow, json!({"ms": 300}), &context).await, Ok(json!("done")));
    assert!(begun.elapsed() >= Duration::from_millis(300));

    // The caller applies timeouts (the toolbox does): a call given up on leaves the session to the next calls.
    let given_up = tokio::time::timeout(Duration::from_millis(100), server.call(&slow, json!({"ms": 5000}), &context));
    assert!(given_up.await.is_err());
    let answer = server.call(&tool(&tools, "lookup"), json!({"q": "after"}), &context).await;
    assert_eq!(answer, Ok(json!("found: after")));
}

#[tokio::test]
async fn a_server_that_is_down_offers_nothing_and_comes_back() {
    let fake = FakeWorkspace::start().await;
    fake.set_mcp_down(true);
    // A short refresh: retries come at most this far apart.
    let started = start(fake.mcp_url(GENIE), Some(workspace(fake.url())), false, Duration::from_millis(300));
    let server = &started.server;

    let problem_text = problem(server).await;
    // rmcp does not tell the status of a refused request apart from any other answer that is not MCP.
    assert_eq!(problem_text, "the MCP server did not answer as an MCP server (an HTTP error, or not an MCP URL)");
    assert!(server.tools().is_empty());

    fake.set_mcp_down(false);
    let tools = listed(server).await;
    assert_eq!(server.problem(), None);
    let lookup = tool(&tools, "lookup");
    assert_eq!(server.call(&lookup, json!({"q": "up"}), &context(None)).await, Ok(json!("found: up")));

    // Down again: the listing finds it, the tools go, and a call fails with a short reason instead of hanging.
    fake.set_mcp_down(true);
    problem(server).await;
    let error = server.call(&lookup, json!({"q": "down"}), &context(None)).await.unwrap_err();
    assert_eq!(error, "the MCP server `fake` did not answer as an MCP server (an HTTP error, or not an MCP URL)");

    // And back: the session is opened again.
    fake.set_mcp_down(false);
    listed(server).await;
    assert_eq!(server.call(&lookup, json!({"q": "back"}), &context(None)).await, Ok(json!("found: back")));
}

#[tokio::test]
async fn an_unreachable_server_says_why() {
    // A port nobody listens on any more.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp/gone", listener.local_addr().unwrap());
    drop(listener);
    let started = start(url, None, false, Duration::from_secs(300));

    let problem_text = problem(&started.server).await;
    assert_eq!(problem_text, "cannot reach the MCP server (connection refused)");
}

#[tokio::test]
async fn the_users_token_reaches_a_workspace_server_with_user_auth() {
    let fake = FakeWorkspace::start().await;
    let started = start(fake.mcp_url(GENIE), Some(workspace(fake.url())), true, Duration::from_secs(300));
    let server = &started.server;

    assert_eq!(whoami(server, Some(USER_TOKEN)).await.as_deref(), Some("Bearer user-token"));
    // A call without the user's token (e.g. not on the user's behalf) uses the app's.
    assert_eq!(whoami(server, None).await.as_deref(), Some("Bearer app-token"));
    let calls = fake.mcp_calls();
    let seen: Vec<Option<&str>> = calls.iter().map(|call| call.authorization.as_deref()).collect();
    assert_eq!(seen, [Some("Bearer user-token"), Some("Bearer app-token")]);
    assert!(calls.iter().all(|call| call.path == GENIE));
}

#[tokio::test]
async fn the_apps_token_is_used_without_user_auth() {
    let fake = FakeWorkspace::start().await;
    let started = start(fake.mcp_url(GENIE), Some(workspace(fake.url())), false, Duration::from_secs(300));

    assert_eq!(whoami(&started.server, Some(USER_TOKEN)).await.as_deref(), Some("Bearer app-token"));
    assert_eq!(fake.mcp_calls()[0].authorization.as_deref(), Some("Bearer app-token"));
}

#[tokio::test]
async fn no_credentials_go_to_a_server_outside_the_workspace() {
    let fake = FakeWorkspace::start().await;
    // The same fake, under another origin: `localhost` is not `127.0.0.1`.
    let port = fake.url().rsplit(':').next().unwrap().to_owned();
    let outside = format!("http://localhost:{port}");
    let started = start(fake.mcp_url(EXTERNAL), Some(workspace(outside)), true, Duration::from_secs(300));
    let server = &started.server;

    assert_eq!(whoami(server, Some(USER_TOKEN)).await, None);
    assert_eq!(whoami(server, None).await, None);
    let calls = fake.mcp_calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|call| call.authorization.is_none() && call.path == EXTERNAL), "{calls:?}");
    assert_eq!(calls[0].arguments, Value::Object(Default::default()));
}
