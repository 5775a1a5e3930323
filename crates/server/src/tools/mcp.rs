//! Tools of MCP servers (streamable HTTP, through the official SDK `rmcp`): Databricks managed MCP (Genie, Unity
//! Catalog functions, vector search) or any MCP server.
//!
//! Each configured server is one [`ToolSource`]. [`McpServer::start`] lists its tools at once and again every
//! refresh period; a server that cannot be listed offers no tools and reports why ([`ToolSource::problem`]) until a
//! later listing (tried sooner after a failure) works again. A server that is down never fails a turn: its tools are
//! simply not offered.
//!
//! Credentials: workspace tokens never go to a host outside the workspace. A server on the workspace host (same
//! scheme, host and port) is called with the user's token when tools run on the user's behalf (`user_auth` and the
//! call carries one), else with the app's token; any other server is called with no `Authorization` header at all.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientInfo, Implementation, JsonObject, RawContent, Tool};
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError};
use rmcp::{RoleClient, ServiceError, ServiceExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{SourceTool, ToolContext, ToolSource};
use crate::config::McpServerConfig;
use crate::llm::token::TokenSource;

/// The Databricks workspace: its host, and the app's own credentials.
#[derive(Clone)]
pub struct Workspace {
    /// `https://<workspace host>`, no trailing slash.
    pub host: String,
    /// The app's token.
    pub tokens: Arc<dyn TokenSource>,
}

/// The first wait after a failed listing; it doubles with each failure, up to the refresh period.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// Longest the opening of a session (TCP, TLS, the MCP handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a listing of the tools may take, connection included.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest error text of a tool handed back to the model (characters).
const MAX_ERROR_CHARS: usize = 2000;
/// Longest message of the server's own protocol error kept (characters): it is the server's text, not ours.
const MAX_REMOTE_MESSAGE_CHARS: usize = 200;

/// An open MCP session (the SDK's client), and the token it was opened with.
type Client = RunningService<RoleClient, ClientInfo>;

/// The long-lived session shared by the app-token calls and the listings.
struct Session {
    client: Client,
    /// The token the session sends: the session is opened again when the app's token changes (OAuth refresh).
    token: Option<SecretString>,
}

/// What the last listing found.
struct Listing {
    tools: Arc<[SourceTool]>,
    /// Why the server cannot be used; `None` once a listing worked.
    problem: Option<String>,
}

/// One MCP server as a source of tools.
pub struct McpServer {
    config: McpServerConfig,
    workspace: Option<Workspace>,
    /// The server is on the workspace host: it may receive workspace tokens.
    on_workspace: bool,
    /// Call with the user's token when the call carries one (and the server is on the workspace host).
    user_auth: bool,
    refresh: Duration,
    /// The HTTP client of every session (`None`: it could not be built).
    http: Option<reqwest::Client>,
    listing: Mutex<Listing>,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
}

impl McpServer {
    /// A server; its tools are listed once [`McpServer::start`] is called.
    pub fn new(config: McpServerConfig, workspace: Option<Workspace>, user_auth: bool, refresh: Duration) -> Arc<Self> {
        let on_workspace = workspace.as_ref().is_some_and(|workspace| same_origin(&config.url, &workspace.host));
        if workspace.is_some() && !on_workspace {
            tracing::info!(server = %config.name, "MCP server outside the workspace: called without credentials");
        }
        // No overall request timeout: the session's event stream stays open; callers time their calls out.
        let http = reqwest::Client::builder()
            .user_agent(concat!("databricks-chat/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .inspect_err(|error| {
                // Only when the TLS backend cannot start: the server then reports it as its problem, rather than
                // the app failing to start.
                tracing::error!(server = %config.name, error = %error, "could not build the MCP HTTP client");
            })
            .ok();
        Arc::new(Self {
            config,
            workspace,
            on_workspace,
            user_auth,
            refresh,
            http,
            listing: Mutex::new(Listing {
                tools: Arc::from(Vec::new()),
                problem: Some("connecting to the MCP server".to_owned()),
            }),
            session: tokio::sync::Mutex::new(None),
        })
    }

    /// Lists the server's tools now, and again every `refresh` (sooner after a failure: 5 s, doubling up to
    /// `refresh`) until `closing` is cancelled or the server is dropped.
    pub fn start(self: &Arc<Self>, closing: CancellationToken) {
        // A weak reference: the task must not keep a server nobody uses alive.
        let server = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut retry = FIRST_RETRY;
            loop {
                let Some(this) = server.upgrade() else { return };
                let listed = tokio::select! {
                    _ = closing.cancelled() => break,
                    listed = this.list() => listed,
                };
                let wait = if listed {
                    retry = FIRST_RETRY;
                    this.refresh
                } else {
                    let wait = retry.min(this.refresh);
                    retry = (retry * 2).min(this.refresh);
                    wait
                };
                drop(this);
                tokio::select! {
                    _ = closing.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            close(&server).await;
        });
    }

    /// Lists the tools once and records the outcome; whether it worked.
    async fn list(&self) -> bool {
        let outcome = match tokio::time::timeout(LIST_TIMEOUT, self.list_tools()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Timeout),
        };
        let mut listing = self.listing.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(tools) => {
                if listing.problem.is_some() || listing.tools.len() != tools.len() {
                    tracing::info!(server = %self.config.name, tools = tools.len(), "MCP server ready");
                }
                *listing = Listing { tools: Arc::from(tools), problem: None };
                true
            }
            Err(failure) => {
                let problem = failure.text("the MCP server");
                // Once per change of state, not at every retry: a server that stays down would flood the log.
                if listing.problem.as_deref() != Some(problem.as_str()) {
                    tracing::warn!(server = %self.config.name, problem = %problem, "MCP server unavailable");
                }
                *listing = Listing { tools: Arc::from(Vec::new()), problem: Some(problem) };
                false
            }
        }
    }

    /// The server's tools, as sources of tools describe them; a tool that cannot be offered is left out.
    async fn list_tools(&self) -> Result<Vec<SourceTool>, Failure> {
        let session = self.shared().await?;
        let tools = match session.client.list_all_tools().await {
            Ok(tools) => tools,
            // Listing only reads: a broken session is opened again and the listing retried once.
            Err(error) if is_transport(&error) => {
                self.forget(&session).await;
                self.shared().await?.client.list_all_tools().await.map_err(|error| Failure::from_service(&error))?
            }
            Err(error) => return Err(Failure::from_service(&error)),
        };
        Ok(tools.into_iter().filter_map(|tool| self.source_tool(tool)).collect())
    }

    fn source_tool(&self, tool: Tool) -> Option<SourceTool> {
        let (read_only, needs_approval) = hints(&tool);
        let schema = Value::Object(tool.input_schema.as_ref().clone());
        match SourceTool::new(
            tool.name.as_ref(),
            tool.description.as_deref().unwrap_or_default(),
            schema,
            read_only,
            needs_approval,
        ) {
            Ok(tool) => Some(tool),
            Err(error) => {
                tracing::warn!(server = %self.config.name, tool = %tool.name, error = %error, "MCP tool skipped");
                None
            }
        }
    }

    /// The app's token for this server: none when the server is outside the workspace.
    async fn app_token(&self) -> Result<Option<SecretString>, Failure> {
        match &self.workspace {
            Some(workspace) if self.on_workspace => workspace.tokens.bearer().await.map_err(|_| Failure::Credentials),
            _ => Ok(None),
        }
    }

    /// The shared session, opened (again) when there is none, it closed, or the app's token changed.
    async fn shared(&self) -> Result<Arc<Session>, Failure> {
        let token = self.app_token().await?;
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref()
            && !session.client.is_transport_closed()
            && same_token(session.token.as_ref(), token.as_ref())
        {
            return Ok(session.clone());
        }
        // Dropping the old session ends it (the SDK closes it in the background).
        *slot = None;
        let client = match self.connect(token.as_ref()).await {
            Ok(client) => client,
            Err(failure) => {
                if token.is_some()
                    && matches!(failure, Failure::Refused | Failure::NotMcp)
                    && let Some(workspace) = &self.workspace
                {
                    // Perhaps the token was revoked or expired early: the next attempt gets a fresh one.
                    workspace.tokens.invalidate();
                }
                return Err(failure);
            }
        };
        let session = Arc::new(Session { client, token });
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Drops the shared session if it is still this one (another call may have replaced it already).
    async fn forget(&self, failed: &Arc<Session>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|session| Arc::ptr_eq(session, failed)) {
            *slot = None;
        }
    }

    /// Opens a session with this token (none: no `Authorization` header).
    async fn connect(&self, token: Option<&SecretString>) -> Result<Client, Failure> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.config.url.as_str());
        if let Some(token) = token {
            // rmcp wants the bare token: it sends it as `Authorization: Bearer <token>`.
            config = config.auth_header(token.expose_secret());
        }
        let http = self.http.clone().ok_or(Failure::NoClient)?;
        let transport = StreamableHttpClientTransport::with_client(http, config);
        match tokio::time::timeout(CONNECT_TIMEOUT, client_info().serve(transport)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => {
                let failure = Failure::from_initialize(&error);
                tracing::debug!(server = %self.config.name, error = %error, "MCP session could not be opened");
                Err(failure)
            }
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Calls a tool with the user's token on a session of its own.
    ///
    /// A session per call costs a handshake (two requests) and a closing request on top of the call itself; a
    /// session per user would save them but would have to follow each user's token as it changes. Calls are few
    /// (a handful per answer), so simplicity wins.
    async fn call_as_user(&self, params: CallToolRequestParams, token: &SecretString) -> Result<Value, String> {
        let client = self.connect(Some(token)).await.map_err(|failure| self.call_failure(&failure))?;
        let result = client.call_tool(params).await;
        // Closing waits for the server to forget the session; the caller need not.
        tokio::spawn(async move {
            let _ = client.cancel().await;
        });
        self.call_result(result)
    }

    /// Calls a tool on the shared session (app token, or none), on a fresh session once if the first one broke
    /// and running the call again cannot do anything twice.
    async fn call_shared(&self, params: CallToolRequestParams, read_only: bool) -> Result<Value, String> {
        let session = self.shared().await.map_err(|failure| self.call_failure(&failure))?;
        let result = match session.client.call_tool(params.clone()).await {
            Err(error) if is_transport(&error) => {
                let failure = Failure::from_service(&error);
                self.forget(&session).await;
                // A write is repeated only when the server surely did not run it (it refused the request or could
                // not be reached); a read is always safe to repeat.
                if !read_only && !failure.before_running() {
                    return Err(self.call_failure(&failure));
                }
                let session = self.shared().await.map_err(|failure| self.call_failure(&failure))?;
                session.client.call_tool(params).await
            }
            result => result,
        };
        self.call_result(result)
    }

    fn call_result(&self, result: Result<CallToolResult, ServiceError>) -> Result<Value, String> {
        match result {
            Ok(result) => tool_result(result),
            Err(error) => Err(self.call_failure(&Failure::from_service(&error))),
        }
    }

    fn call_failure(&self, failure: &Failure) -> String {
        let text = failure.text(&format!("the MCP server `{}`", self.config.name));
        tracing::warn!(server = %self.config.name, problem = %text, "MCP call failed");
        text
    }
}

/// Closes the shared session of a server whose refresh task ends.
async fn close(server: &Weak<McpServer>) {
    let Some(server) = server.upgrade() else { return };
    let session = server.session.lock().await.take();
    if let Some(session) = session.and_then(Arc::into_inner) {
        let _ = session.client.cancel().await;
    }
}

impl ToolSource for McpServer {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> &'static str {
        "mcp"
    }

    fn tools(&self) -> Arc<[SourceTool]> {
        self.listing.lock().unwrap_or_else(PoisonError::into_inner).tools.clone()
    }

    fn problem(&self) -> Option<String> {
        self.listing.lock().unwrap_or_else(PoisonError::into_inner).problem.clone()
    }

    fn call<'a>(
        &'a self,
        tool: &'a SourceTool,
        input: Value,
        context: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move {
            let arguments = match input {
                Value::Object(arguments) => Some(arguments),
                Value::Null => None,
                _ => return Err("the arguments must be a JSON object".to_owned()),
            };
            let params = call_params(&tool.name, arguments);
            match context.user_token.as_ref().filter(|_| self.user_auth && self.on_workspace) {
                Some(token) => self.call_as_user(params, token).await,
                None => self.call_shared(params, tool.read_only).await,
            }
        })
    }
}

/// How this app introduces itself to MCP servers.
fn client_info() -> ClientInfo {
    ClientInfo {
        client_info: Implementation {
            name: "databricks-chat".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..Implementation::default()
        },
        ..ClientInfo::default()
    }
}

fn call_params(name: &str, arguments: Option<JsonObject>) -> CallToolRequestParams {
    CallToolRequestParams { meta: None, name: name.to_owned().into(), arguments, task: None }
}

/// `(read_only, needs_approval)` from the tool's annotations: only an explicit `readOnlyHint: true` makes a read,
/// only an explicit `destructiveHint: true` asks the user first.
fn hints(tool: &Tool) -> (bool, bool) {
    let annotations = tool.annotations.as_ref();
    (
        annotations.and_then(|a| a.read_only_hint) == Some(true),
        annotations.and_then(|a| a.destructive_hint) == Some(true),
    )
}

/// Whether two URLs have the same origin (scheme, host and port, default ports filled in).
fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            let (a, b) = (a.origin(), b.origin());
            // Opaque origins (not http or https) are never equal to one another anyway; stated for the reader.
            a.is_tuple() && a == b
        }
        _ => false,
    }
}

fn same_token(a: Option<&SecretString>, b: Option<&SecretString>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
        _ => false,
    }
}

/// A tool's answer as the model gets it: its structured content, else its one text, else its content items; an
/// answer marked as an error is an error, with the tool's text.
fn tool_result(result: CallToolResult) -> Result<Value, String> {
    if result.is_error == Some(true) {
        let texts: Vec<&str> =
            result.content.iter().filter_map(|item| item.as_text()).map(|t| t.text.as_str()).collect();
        let mut text = texts.join("\n");
        if text.trim().is_empty()
            && let Some(structured) = &result.structured_content
        {
            text = structured.to_string();
        }
        return Err(if text.trim().is_empty() { "the tool failed".to_owned() } else { cut(&text, MAX_ERROR_CHARS) });
    }
    if let Some(structured) = result.structured_content {
        return Ok(structured);
    }
    if let [item] = result.content.as_slice()
        && let RawContent::Text(text) = &item.raw
    {
        return Ok(Value::String(text.text.clone()));
    }
    serde_json::to_value(&result.content).map_err(|_| "the tool's answer could not be read".to_owned())
}

/// At most `max` characters of `text`, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Whether a call failed in the transport (the session may be broken) rather than in the server's answer.
fn is_transport(error: &ServiceError) -> bool {
    matches!(error, ServiceError::TransportSend(_) | ServiceError::TransportClosed)
}

/// Why a server could not be used, in words safe to show anyone: never a token, never an upstream body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// No connection: refused, reset, unknown host (the detail, when known).
    Unreachable(Option<&'static str>),
    /// No answer in time.
    Timeout,
    /// An HTTP answer that is not MCP: an error status, a login page, a wrong URL.
    NotMcp,
    /// The server asked for credentials (401 with `WWW-Authenticate`).
    Refused,
    /// The server's own protocol error (an unknown tool, invalid arguments), its message shortened.
    Rejected(String),
    /// The app could not get its own token.
    Credentials,
    /// The session ended under the call.
    Closed,
    /// Anything else the protocol did not expect.
    Protocol,
    /// This app's HTTP client could not be built.
    NoClient,
}

impl Failure {
    /// The failure in words, about `subject` ("the MCP server", "the MCP server `genie`").
    fn text(&self, subject: &str) -> String {
        match self {
            Self::Unreachable(Some(detail)) => format!("cannot reach {subject} ({detail})"),
            Self::Unreachable(None) => format!("cannot reach {subject}"),
            Self::Timeout => format!("{subject} did not answer in time"),
            Self::NotMcp => format!("{subject} did not answer as an MCP server (an HTTP error, or not an MCP URL)"),
            Self::Refused => format!("{subject} refused the credentials"),
            Self::Rejected(message) => format!("{subject} refused the request: {message}"),
            Self::Credentials => format!("the app could not sign in to Databricks to call {subject}"),
            Self::Closed => format!("the connection to {subject} closed"),
            Self::Protocol => format!("{subject} gave an answer that is not valid MCP"),
            Self::NoClient => format!("the app could not set up HTTP to call {subject}; see the server log"),
        }
    }

    /// Whether the request surely did not run: it was refused or never arrived.
    fn before_running(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::NotMcp | Self::Refused | Self::Credentials)
    }

    fn from_initialize(error: &ClientInitializeError) -> Self {
        match error {
            ClientInitializeError::TransportError { error, .. } => Self::from_error(error),
            ClientInitializeError::JsonRpcError(data) => Self::Rejected(cut(&data.message, MAX_REMOTE_MESSAGE_CHARS)),
            ClientInitializeError::ConnectionClosed(_) => Self::Closed,
            ClientInitializeError::Cancelled => Self::Closed,
            _ => Self::Protocol,
        }
    }

    fn from_service(error: &ServiceError) -> Self {
        match error {
            ServiceError::TransportSend(error) => Self::from_error(error),
            ServiceError::TransportClosed | ServiceError::Cancelled { .. } => Self::Closed,
            ServiceError::McpError(data) => Self::Rejected(cut(&data.message, MAX_REMOTE_MESSAGE_CHARS)),
            ServiceError::Timeout { .. } => Self::Timeout,
            _ => Self::Protocol,
        }
    }

    /// Looks through an error's causes for the transport's own error, or the HTTP client's, or the socket's.
    fn from_error(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut cause = Some(error);
        while let Some(error) = cause {
            if let Some(error) = error.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
                return match error {
                    StreamableHttpError::Client(error) => Self::from_reqwest(error),
                    StreamableHttpError::Io(error) => Self::from_io(error),
                    StreamableHttpError::AuthRequired(_) => Self::Refused,
                    StreamableHttpError::UnexpectedContentType(_) => Self::NotMcp,
                    StreamableHttpError::TransportChannelClosed | StreamableHttpError::UnexpectedEndOfStream => {
                        Self::Closed
                    }
                    _ => Self::Protocol,
                };
            }
            if let Some(error) = error.downcast_ref::<reqwest::Error>() {
                return Self::from_reqwest(error);
            }
            if let Some(error) = error.downcast_ref::<std::io::Error>() {
                return Self::from_io(error);
            }
            cause = error.source();
        }
        Self::Protocol
    }

    fn from_reqwest(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            return Self::Timeout;
        }
        if error.is_status() || error.is_decode() {
            return Self::NotMcp;
        }
        // The socket's error, when there is one, says more (refused, reset).
        let mut cause = std::error::Error::source(error);
        while let Some(error) = cause {
            if let Some(error) = error.downcast_ref::<std::io::Error>() {
                return Self::from_io(error);
            }
            cause = error.source();
        }
        if error.is_connect() { Self::Unreachable(None) } else { Self::Closed }
    }

    fn from_io(error: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::ConnectionRefused => Self::Unreachable(Some("connection refused")),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => Self::Unreachable(Some("connection reset")),
            ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Unreachable(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{Content, ToolAnnotations};
    use serde_json::json;

    use super::*;

    fn tool(annotations: Option<ToolAnnotations>) -> Tool {
        let schema = json!({"type": "object"}).as_object().cloned().unwrap();
        let mut tool = Tool::new("t", "a tool", schema);
        tool.annotations = annotations;
        tool
    }

    #[test]
    fn origins_match_on_scheme_host_and_port() {
        assert!(same_origin(
            "https://adb-1.azuredatabricks.net/api/2.0/mcp/genie/1",
            "https://adb-1.azuredatabricks.net"
        ));
        assert!(same_origin("https://ADB-1.azuredatabricks.net:443/x", "https://adb-1.azuredatabricks.net/"));
        assert!(same_origin("http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080"));
        assert!(!same_origin("http://127.0.0.1:8080/mcp", "https://127.0.0.1:8080"));
        assert!(!same_origin("http://127.0.0.1:8081/mcp", "http://127.0.0.1:8080"));
        assert!(!same_origin("http://localhost:8080/mcp", "http://127.0.0.1:8080"));
        assert!(!same_origin("https://adb-1.azuredatabricks.net.evil.com/mcp", "https://adb-1.azuredatabricks.net"));
        assert!(!same_origin(
            "https://evil.com/?https://adb-1.azuredatabricks.net",
            "https://adb-1.azuredatabricks.net"
        ));
        assert!(!same_origin("https://user@evil.com/", "https://evil.com@adb-1.azuredatabricks.net"));
        assert!(!same_origin("not a url", "not a url"));
        assert!(!same_origin("data:text/plain,x", "data:text/plain,x"));
    }

    #[test]
    fn annotations_give_read_only_and_approval() {
        assert_eq!(hints(&tool(None)), (false, false));
        assert_eq!(hints(&tool(Some(ToolAnnotations::new().read_only(true)))), (true, false));
        assert_eq!(hints(&tool(Some(ToolAnnotations::new().read_only(false).destructive(true)))), (false, true));
        // No hint is no promise: a tool that does not say it only reads counts as a write, but asks no approval.
        assert_eq!(hints(&tool(Some(ToolAnnotations::new()))), (false, false));
    }

    #[test]
    fn one_text_becomes_a_string() {
        let result = CallToolResult::success(vec![Content::text("found: x")]);
        assert_eq!(tool_result(result), Ok(json!("found: x")));
    }

    #[test]
    fn structured_content_wins() {
        let result = CallToolResult::structured(json!({"columns": ["a"], "rows": [[1]]}));
        assert_eq!(tool_result(result), Ok(json!({"columns": ["a"], "rows": [[1]]})));
    }

    #[test]
    fn several_items_become_an_array() {
        let result = CallToolResult::success(vec![Content::text("a"), Content::text("b")]);
        assert_eq!(tool_result(result), Ok(json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])));
        let result = CallToolResult::success(vec![Content::image("aGk=", "image/png")]);
        assert_eq!(tool_result(result), Ok(json!([{"type": "image", "data": "aGk=", "mimeType": "image/png"}])));
    }

    #[test]
    fn errors_carry_the_tools_text_cut_short() {
        let result = CallToolResult::error(vec![Content::text("the warehouse"), Content::text("is stopped")]);
        assert_eq!(tool_result(result), Err("the warehouse\nis stopped".to_owned()));
        assert_eq!(tool_result(CallToolResult::error(Vec::new())), Err("the tool failed".to_owned()));
        let long = "é".repeat(5000);
        let error = tool_result(CallToolResult::error(vec![Content::text(long)])).unwrap_err();
        assert_eq!(error.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(error.ends_with('…'));
    }

    #[test]
    fn failures_read_well() {
        let refused = Failure::Unreachable(Some("connection refused"));
        assert_eq!(refused.text("the MCP server"), "cannot reach the MCP server (connection refused)");
        assert_eq!(Failure::Timeout.text("the MCP server `genie`"), "the MCP server `genie` did not answer in time");
        assert!(refused.before_running());
        assert!(!Failure::Closed.before_running());
        assert!(!Failure::Timeout.before_running());
    }

    #[test]
    fn io_errors_are_classified() {
        let error = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(Failure::from_error(&error), Failure::Unreachable(Some("connection refused")));
        let error: StreamableHttpError<reqwest::Error> = StreamableHttpError::UnexpectedContentType(None);
        assert_eq!(Failure::from_error(&error), Failure::NotMcp);
    }
}
