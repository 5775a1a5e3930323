//! A real MCP server (streamable HTTP, built with the official SDK `rmcp`) at the Databricks managed MCP paths, for
//! the app's MCP tools to list and call. Every path serves the same tools; the path only tells calls apart in
//! [`FakeWorkspace::mcp_calls`].
//!
//! Paths (any method: the SDK serves `POST`, `GET` and `DELETE` of the MCP session):
//! - `/api/2.0/mcp/genie/{space_id}` (Genie space)
//! - `/api/2.0/mcp/functions/{catalog}/{schema}` (Unity Catalog functions)
//! - `/api/2.0/mcp/vector-search/{catalog}/{schema}` (vector search)
//! - `/mcp/{name}` (an "external" server, outside the workspace APIs)
//!
//! Tools:
//! - `lookup` (read-only): `{"q": string}` → text `found: <q>`.
//! - `query_space` (read-only): `{"question": string}` → structured `{"columns": [...], "rows": [[...]]}`.
//! - `drop_table` (destructive): `{"table": string}` → text `dropped <table>`.
//! - `broken` (read-only): always a tool error (`isError`), text `the warehouse is stopped`.
//! - `slow` (read-only): `{"ms": integer}` → sleeps that long (at most a minute), then text `done`.
//! - `whoami` (read-only): structured `{"authorization": <the request's Authorization header, or null>}`.
//! - `bad_schema`: takes an array, not an object (a client should skip it).
//!
//! Unknown tools and missing arguments are protocol errors (invalid params). Every `tools/call` is recorded, and
//! [`FakeWorkspace::set_mcp_down`] makes all MCP paths answer 503 until switched back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, Content, ErrorData, Implementation, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerInfo, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::FakeWorkspace;

/// One `tools/call` the fake MCP server received.
#[derive(Debug, Clone, PartialEq)]
pub struct McpCall {
    /// Request path (`/api/2.0/mcp/genie/space1`).
    pub path: String,
    /// The tool's name.
    pub tool: String,
    /// Its arguments (`Null` when there were none).
    pub arguments: Value,
    /// `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// The fake MCP server's state: recorded calls, and whether it is down.
#[derive(Default)]
pub struct FakeMcp {
    calls: Mutex<Vec<McpCall>>,
    down: AtomicBool,
}

impl FakeMcp {
    fn calls_lock(&self) -> MutexGuard<'_, Vec<McpCall>> {
        // A plain list: a handler that panicked cannot leave it inconsistent.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<McpCall> {
        self.calls_lock().clone()
    }

    /// Makes every MCP path answer 503 (`true`), or serve again (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Forgets the calls and serves again.
    pub fn reset(&self) {
        self.calls_lock().clear();
        self.set_down(false);
    }
}

impl FakeWorkspace {
    /// Every `tools/call` the fake MCP server received, oldest first.
    pub fn mcp_calls(&self) -> Vec<McpCall> {
        self.state.mcp.calls()
    }

    /// Makes the MCP paths answer 503 (`true`), as a server that is down, or serve again (`false`).
    pub fn set_mcp_down(&self, down: bool) {
        self.state.mcp.set_down(down);
    }

    /// The URL of an MCP path of the fake, e.g. `mcp_url("/api/2.0/mcp/genie/space1")`.
    pub fn mcp_url(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }
}

/// The MCP routes of the fake.
pub fn router(state: Arc<FakeMcp>) -> Router {
    let handler_state = state.clone();
    let service = StreamableHttpService::new(
        move || Ok(FakeMcpServer { state: handler_state.clone() }),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    // `route_service` keeps the request's path as it came: the handler reads it from the request parts.
    Router::new()
        .route_service("/api/2.0/mcp/genie/{space_id}", service.clone())
        .route_service("/api/2.0/mcp/functions/{catalog}/{schema}", service.clone())
        .route_service("/api/2.0/mcp/vector-search/{catalog}/{schema}", service.clone())
        .route_service("/mcp/{name}", service)
        .layer(middleware::from_fn_with_state(state, down_switch))
}

/// Answers 503 while the server is switched down.
async fn down_switch(State(state): State<Arc<FakeMcp>>, request: Request, next: Next) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "the MCP server is down").into_response();
    }
    next.run(request).await
}

/// One MCP session's handler (the SDK makes one per session).
#[derive(Clone)]
struct FakeMcpServer {
    state: Arc<FakeMcp>,
}

fn object(schema: Value) -> JsonObject {
    match schema {
        Value::Object(schema) => schema,
        _ => JsonObject::new(),
    }
}

fn string_input(name: &str) -> JsonObject {
    object(json!({"type": "object", "properties": {name: {"type": "string"}}, "required": [name]}))
}

/// The tools every path serves.
fn tools() -> Vec<Tool> {
    let read_only = || ToolAnnotations::new().read_only(true);
    vec![
        Tool::new("lookup", "Looks a word up.", string_input("q")).annotate(read_only()),
        Tool::new("query_space", "Asks the Genie space a question; answers a table.", string_input("question"))
            .annotate(read_only()),
        Tool::new("drop_table", "Drops a table.", string_input("table"))
            .annotate(ToolAnnotations::new().read_only(false).destructive(true)),
        Tool::new("broken", "Always fails.", object(json!({"type": "object", "properties": {}}))).annotate(read_only()),
        Tool::new(
            "slow",
            "Waits, then answers.",
            object(json!({
                "type": "object",
                "properties": {"ms": {"type": "integer", "minimum": 0}},
                "required": ["ms"],
            })),
        )
        .annotate(read_only()),
        Tool::new("whoami", "The Authorization header of the request.", object(json!({"type": "object"})))
            .annotate(read_only()),
        Tool::new("bad_schema", "Takes an array: no client can call it.", object(json!({"type": "array"}))),
    ]
}

fn argument<'a>(arguments: Option<&'a JsonObject>, name: &str) -> Result<&'a str, ErrorData> {
    arguments
        .and_then(|arguments| arguments.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorData::invalid_params(format!("`{name}` (a string) is required"), None))
}

impl ServerHandler for FakeMcpServer {
    fn get_info(&self) -> ServerInfo {
        ServerInfo {
            capabilities: ServerCapabilities::builder().enable_tools().build(),
            server_info: Implementation {
                name: "fake-databricks-mcp".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                ..Implementation::default()
            },
            ..ServerInfo::default()
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        // The SDK hands the HTTP request's parts (path, headers) to the handler in the context's extensions.
        let parts = context.extensions.get::<Parts>();
        let path = parts.map(|parts| parts.uri.path().to_owned()).unwrap_or_default();
        let authorization = parts
            .and_then(|parts| parts.headers.get(axum::http::header::AUTHORIZATION))
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let arguments = request.arguments.as_ref();
        self.state.calls_lock().push(McpCall {
            path,
            tool: request.name.to_string(),
            arguments: arguments.cloned().map(Value::Object).unwrap_or(Value::Null),
            authorization: authorization.clone(),
        });
        match request.name.as_ref() {
            "lookup" => {
                let q = argument(arguments, "q")?;
                Ok(CallToolResult::success(vec![Content::text(format!("found: {q}"))]))
            }
            "query_space" => {
                let question = argument(arguments, "question")?;
                Ok(CallToolResult::structured(json!({
                    "columns": ["question", "answer"],
                    "rows": [[question, 42]],
                })))
            }
            "drop_table" => {
                let table = argument(arguments, "table")?;
                Ok(CallToolResult::success(vec![Content::text(format!("dropped {table}"))]))
            }
            "broken" => Ok(CallToolResult::error(vec![Content::text("the warehouse is stopped")])),
            "slow" => {
                let ms = arguments
                    .and_then(|arguments| arguments.get("ms"))
                    .and_then(Value::as_u64)
                    .ok_or_else(|| ErrorData::invalid_params("`ms` (an integer) is required", None))?;
                tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
                Ok(CallToolResult::success(vec![Content::text("done")]))
            }
            "whoami" => Ok(CallToolResult::structured(json!({ "authorization": authorization }))),
            other => Err(ErrorData::invalid_params(format!("there is no tool named `{other}`"), None)),
        }
    }
}
