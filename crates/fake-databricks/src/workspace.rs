//! A fake Databricks workspace over real HTTP for tests, browser tests and benchmarks: the OAuth token endpoint,
//! bearer-token checks, SCIM `Me`, serving-endpoint listing and both Lakebase credential APIs, with state the test
//! can inspect and control. Wire shapes follow PROTOCOLS.md B.6, C.4 and E.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// Who a PAT or OAuth client is, as reported by SCIM `Me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIdentity {
    /// SCIM `userName` (an email for users, the application id for service principals).
    pub user_name: String,
    /// SCIM `displayName`.
    pub display_name: String,
}

/// A serving endpoint as listed by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeEndpoint {
    /// Endpoint name.
    pub name: String,
    /// Task type, e.g. `llm/v1/chat`, `llm/v1/embeddings`, `agent/v2/chat`.
    pub task: String,
    /// Whether `state.ready` is `READY`.
    pub ready: bool,
    /// Optional `description`, a human hint shown in model pickers.
    pub description: Option<String>,
}

impl FakeEndpoint {
    /// A ready endpoint with this task.
    pub fn new(name: &str, task: &str) -> Self {
        Self { name: name.to_string(), task: task.to_string(), ready: true, description: None }
    }

    /// A ready `llm/v1/chat` endpoint.
    pub fn chat(name: &str) -> Self {
        Self::new(name, "llm/v1/chat")
    }

    /// The same endpoint reported as `NOT_READY`.
    pub fn not_ready(self) -> Self {
        Self { ready: false, ..self }
    }

    /// The same endpoint with a description.
    pub fn with_description(self, description: &str) -> Self {
        Self { description: Some(description.to_string()), ..self }
    }

    fn to_json(&self) -> Value {
        let mut value = json!({
            "name": self.name,
            "id": format!("fake-{}", self.name),
            "task": self.task,
            "state": {
                "ready": if self.ready { "READY" } else { "NOT_READY" },
                "config_update": "NOT_UPDATING",
            },
            "creator": "creator@example.com",
            "creation_timestamp": 1_700_000_000_000_i64,
        });
        if let (Some(description), Some(object)) = (&self.description, value.as_object_mut()) {
            object.insert("description".into(), json!(description));
        }
        value
    }
}

/// An OAuth token the fake issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The opaque token.
    pub token: String,
    /// The client it was issued to.
    pub client_id: String,
    /// When the fake stops accepting it.
    pub expires_at: Instant,
}

/// What a Lakebase credential was minted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialTarget {
    /// `POST /api/2.0/postgres/credentials`.
    Autoscaling {
        /// The requested endpoint path.
        endpoint: String,
    },
    /// `POST /api/2.0/database/credentials`.
    Provisioned {
        /// The requested instance names.
        instance_names: Vec<String>,
        /// The request's `request_id` (validated as a UUID).
        request_id: String,
    },
}

/// A Lakebase credential the fake minted.
#[derive(Debug, Clone)]
pub struct MintedCredential {
    /// The request it answered.
    pub target: CredentialTarget,
    /// The password handed out.
    pub token: String,
    /// The expiry reported to the caller.
    pub expire_time: DateTime<Utc>,
    /// `userName` of the bearer who asked.
    pub caller: String,
}

struct Inner {
    clients: HashMap<String, String>,
    pats: Vec<String>,
    identities: HashMap<String, FakeIdentity>,
    issued: Vec<IssuedToken>,
    token_lifetime: Duration,
    token_delay: Duration,
    token_requests: usize,
    endpoints: Vec<FakeEndpoint>,
    postgres_endpoints: Vec<String>,
    database_instances: Vec<String>,
    credential_lifetime: Duration,
    minted: Vec<MintedCredential>,
    model_auth_required: bool,
    forbidden_model_tokens: Vec<String>,
    mint_hook: Option<MintHook>,
}

/// Called with each new Lakebase credential before the caller gets it, e.g. to set it as a real role's password.
pub type MintHook = Arc<dyn Fn(MintedCredential) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Controllable state of the fake workspace; share it as `Arc` between the router and the test.
pub struct FakeWorkspaceState {
    inner: Mutex<Inner>,
}

impl Default for FakeWorkspaceState {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                clients: HashMap::new(),
                pats: Vec::new(),
                identities: HashMap::new(),
                issued: Vec::new(),
                token_lifetime: Duration::from_secs(3600),
                token_delay: Duration::ZERO,
                token_requests: 0,
                endpoints: Vec::new(),
                postgres_endpoints: Vec::new(),
                database_instances: Vec::new(),
                credential_lifetime: Duration::from_secs(3600),
                minted: Vec::new(),
                model_auth_required: false,
                forbidden_model_tokens: Vec::new(),
                mint_hook: None,
            }),
        }
    }
}

impl FakeWorkspaceState {
    /// An empty workspace: no clients, PATs, endpoints or databases; tokens and credentials live one hour.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Test state stays usable even if a handler panicked while holding it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers an OAuth client (service principal) for the client-credentials grant.
    pub fn add_client(&self, client_id: &str, client_secret: &str) {
        self.lock().clients.insert(client_id.to_string(), client_secret.to_string());
    }

    /// Unregisters a client; tokens already issued to it stay valid until they expire.
    pub fn remove_client(&self, client_id: &str) {
        self.lock().clients.remove(client_id);
    }

    /// Registers a personal access token.
    pub fn add_pat(&self, token: &str) {
        self.lock().pats.push(token.to_string());
    }

    /// Sets the identity of a PAT or client id (default: `user@example.com` for PATs, the client id for clients).
    pub fn set_identity(&self, pat_or_client_id: &str, identity: FakeIdentity) {
        self.lock().identities.insert(pat_or_client_id.to_string(), identity);
    }

    /// Lifetime of OAuth tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Delay before the token endpoint answers, to make concurrent refreshes overlap.
    pub fn set_token_delay(&self, delay: Duration) {
        self.lock().token_delay = delay;
    }

    /// Number of calls to `POST /oidc/v1/token`, successful or not.
    pub fn token_requests(&self) -> usize {
        self.lock().token_requests
    }

    /// Every OAuth token issued so far.
    pub fn issued_tokens(&self) -> Vec<IssuedToken> {
        self.lock().issued.clone()
    }

    /// Makes every issued OAuth token invalid at once (as if revoked), to exercise 401 handling.
    pub fn revoke_tokens(&self) {
        self.lock().issued.clear();
    }

    /// Replaces the serving endpoints listed by the workspace.
    pub fn set_serving_endpoints(&self, endpoints: Vec<FakeEndpoint>) {
        self.lock().endpoints = endpoints;
    }

    /// Registers a Lakebase Autoscaling endpoint path (`projects/<p>/branches/<b>/endpoints/<e>`).
    pub fn add_postgres_endpoint(&self, endpoint: &str) {
        self.lock().postgres_endpoints.push(endpoint.to_string());
    }

    /// Registers a Lakebase Provisioned database instance name.
    pub fn add_database_instance(&self, instance: &str) {
        self.lock().database_instances.push(instance.to_string());
    }

    /// Lifetime of Lakebase credentials minted from now on.
    pub fn set_credential_lifetime(&self, lifetime: Duration) {
        self.lock().credential_lifetime = lifetime;
    }

    /// Runs `hook` on every credential minted from now on, before the caller receives it.
    pub fn on_mint(&self, hook: MintHook) {
        self.lock().mint_hook = Some(hook);
    }

    /// Whether chat completions check the bearer token.
    pub fn model_auth_required(&self) -> bool {
        self.lock().model_auth_required
    }

    /// Makes chat completions check the bearer token (or stop checking).
    pub fn set_model_auth_required(&self, required: bool) {
        self.lock().model_auth_required = required;
    }

    /// Makes model calls with this (otherwise valid) token fail with 403, as a user token without the
    /// `serving.serving-endpoints` scope does.
    pub fn forbid_model_calls_with(&self, token: &str) {
        self.lock().forbidden_model_tokens.push(token.to_string());
    }

    /// Checks the bearer token of a model call; the error is the response to send.
    pub fn check_bearer(&self, headers: &HeaderMap) -> Result<FakeIdentity, Box<Response>> {
        let identity = self.authenticate(headers).map_err(|e| Box::new(e.into_response()))?;
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if self.lock().forbidden_model_tokens.iter().any(|t| t == token) {
            return Err(databricks_error(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "Provided OAuth token does not have required scopes: serving.serving-endpoints",
            )
            .into_response()
            .into());
        }
        Ok(identity)
    }

    /// Every Lakebase credential minted so far, oldest first.
    pub fn minted_credentials(&self) -> Vec<MintedCredential> {
        self.lock().minted.clone()
    }

    /// Whether `password` is an unexpired minted Lakebase credential (for a fake Postgres front end).
    pub fn is_valid_credential(&self, password: &str) -> bool {
        let now = Utc::now();
        self.lock().minted.iter().any(|m| m.token == password && m.expire_time > now)
    }

    /// The identity behind a bearer token: a registered PAT or an unexpired issued OAuth token.
    fn authenticate(&self, headers: &HeaderMap) -> Result<FakeIdentity, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let inner = self.lock();
        let subject = token.and_then(|token| {
            if inner.pats.iter().any(|p| p == token) {
                return Some((token.to_string(), true));
            }
            let now = Instant::now();
            inner.issued.iter().find(|t| t.token == token && now < t.expires_at).map(|t| (t.client_id.clone(), false))
        });
        match subject {
            Some((subject, is_pat)) => Ok(inner.identities.get(&subject).cloned().unwrap_or_else(|| {
                if is_pat {
                    FakeIdentity { user_name: "user@example.com".into(), display_name: "Fake User".into() }
                } else {
                    FakeIdentity { user_name: subject.clone(), display_name: format!("Service principal {subject}") }
                }
            })),
            None => Err(databricks_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Invalid access token or missing Authorization header.",
            )),
        }
    }

    /// Issues a credential: the hook runs first (e.g. sets it as the role's password), and only then is the
    /// credential recorded and returned, so whoever sees it in [`Self::minted_credentials`] sees it in force.
    async fn mint(&self, target: CredentialTarget, caller: String) -> MintedCredential {
        let (credential, hook) = {
            let inner = self.lock();
            let lifetime = chrono::Duration::from_std(inner.credential_lifetime).unwrap_or(chrono::Duration::hours(1));
            let credential = MintedCredential {
                target,
                token: format!("fake-pg-{}", uuid::Uuid::new_v4().simple()),
                expire_time: Utc::now() + lifetime,
                caller,
            };
            (credential, inner.mint_hook.clone())
        };
        if let Some(hook) = hook {
            hook(credential.clone()).await;
        }
        self.lock().minted.push(credential.clone());
        credential
    }
}

/// The fake's routes over `state`.
pub fn router(state: Arc<FakeWorkspaceState>) -> Router {
    Router::new()
        .route("/oidc/v1/token", post(oidc_token))
        .route("/api/2.0/preview/scim/v2/Me", get(scim_me))
        .route("/api/2.0/serving-endpoints", get(list_endpoints))
        .route("/api/2.0/serving-endpoints/{name}", get(get_endpoint))
        .route("/api/2.0/postgres/credentials", post(postgres_credentials))
        .route("/api/2.0/database/credentials", post(database_credentials))
        .with_state(state)
}

/// Serves the fake on an ephemeral 127.0.0.1 port; returns its address and the server task.
///
/// # Panics
/// If no loopback port can be bound (the test cannot proceed anyway).
pub async fn spawn(state: Arc<FakeWorkspaceState>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake workspace on 127.0.0.1:0");
    let addr = listener.local_addr().expect("read the fake workspace's address");
    let handle = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router(state)).await {
            tracing::error!(%error, "fake workspace stopped");
        }
    });
    (addr, handle)
}

/// An error answer: a status and its JSON body.
struct ApiError {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The standard Databricks error body (B.5).
fn databricks_error(status: StatusCode, error_code: &str, message: &str) -> ApiError {
    ApiError { status, body: json!({ "error_code": error_code, "message": message }) }
}

/// The OAuth error body of the token endpoint.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> ApiError {
    ApiError { status, body: json!({ "error": error, "error_description": description }) }
}

/// Client id and secret from `Authorization: Basic` (C.4), or from the form as a fallback.
fn client_credentials(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<(String, String)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(id, secret)| (id.to_string(), secret.to_string())));
    basic.or_else(|| Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone())))
}

async fn oidc_token(
    State(state): State<Arc<FakeWorkspaceState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let delay = {
        let mut inner = state.lock();
        inner.token_requests += 1;
        inner.token_delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
        ));
    }
    let refused = || oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
    let (client_id, secret) = client_credentials(&headers, &form).ok_or_else(refused)?;
    let mut inner = state.lock();
    if inner.clients.get(&client_id) != Some(&secret) {
        return Err(refused());
    }
    let lifetime = inner.token_lifetime;
    let token = format!("fake-oauth-{}", uuid::Uuid::new_v4().simple());
    inner.issued.push(IssuedToken { token: token.clone(), client_id, expires_at: Instant::now() + lifetime });
    Ok(Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "scope": form.get("scope").map_or("all-apis", String::as_str),
    })))
}

async fn scim_me(State(state): State<Arc<FakeWorkspaceState>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let identity = state.authenticate(&headers)?;
    Ok(Json(json!({
        "id": format!("fake-id-{}", identity.user_name),
        "userName": identity.user_name,
        "displayName": identity.display_name,
        "active": true,
    })))
}

async fn list_endpoints(
    State(state): State<Arc<FakeWorkspaceState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authenticate(&headers)?;
    let endpoints: Vec<Value> = state.lock().endpoints.iter().map(FakeEndpoint::to_json).collect();
    Ok(Json(json!({ "endpoints": endpoints })))
}

async fn get_endpoint(
    State(state): State<Arc<FakeWorkspaceState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authenticate(&headers)?;
    let found = state.lock().endpoints.iter().find(|e| e.name == name).map(FakeEndpoint::to_json);
    found.map(Json).ok_or_else(|| {
        databricks_error(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            &format!("Endpoint with name '{name}' does not exist."),
        )
    })
}

fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        databricks_error(StatusCode::BAD_REQUEST, "MALFORMED_REQUEST", &format!("Could not parse request body: {e}"))
    })
}

fn credential_response(credential: &MintedCredential, expiry_field: &str) -> Json<Value> {
    let mut body = serde_json::Map::new();
    body.insert("token".into(), json!(credential.token));
    body.insert(expiry_field.into(), json!(credential.expire_time.to_rfc3339_opts(SecondsFormat::Millis, true)));
    Json(Value::Object(body))
}

async fn postgres_credentials(
    State(state): State<Arc<FakeWorkspaceState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let identity = state.authenticate(&headers)?;
    let body = parse_json(&body)?;
    let endpoint = body.get("endpoint").and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
        databricks_error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "Field 'endpoint' is required.")
    })?;
    if !state.lock().postgres_endpoints.contains(&endpoint) {
        return Err(databricks_error(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            &format!("Endpoint '{endpoint}' does not exist."),
        ));
    }
    let credential = state.mint(CredentialTarget::Autoscaling { endpoint }, identity.user_name).await;
    Ok(credential_response(&credential, "expire_time"))
}

async fn database_credentials(
    State(state): State<Arc<FakeWorkspaceState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let identity = state.authenticate(&headers)?;
    let body = parse_json(&body)?;
    let instance_names: Option<Vec<String>> = body
        .get("instance_names")
        .and_then(Value::as_array)
        .and_then(|names| names.iter().map(|n| n.as_str().map(str::to_string)).collect());
    let instance_names = instance_names.filter(|names| !names.is_empty()).ok_or_else(|| {
        databricks_error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "Field 'instance_names' must be a non-empty list of strings.",
        )
    })?;
    let request_id = body.get("request_id").and_then(Value::as_str).unwrap_or_default().to_string();
    if uuid::Uuid::parse_str(&request_id).is_err() {
        return Err(databricks_error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "Field 'request_id' must be a UUID.",
        ));
    }
    let unknown = {
        let inner = state.lock();
        instance_names.iter().find(|n| !inner.database_instances.contains(n)).cloned()
    };
    if let Some(name) = unknown {
        return Err(databricks_error(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            &format!("Database instance '{name}' does not exist."),
        ));
    }
    let credential = state.mint(CredentialTarget::Provisioned { instance_names, request_id }, identity.user_name).await;
    Ok(credential_response(&credential, "expiration_time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_credential_is_listed_only_once_its_hook_has_run() {
        let state = FakeWorkspaceState::new();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(Some((started_tx, release_rx))));
        state.on_mint(Arc::new(move |_credential| {
            let gate = gate.lock().expect("gate").take();
            Box::pin(async move {
                if let Some((started, release)) = gate {
                    let _ = started.send(());
                    let _ = release.await;
                }
            })
        }));

        let minting = tokio::spawn({
            let state = state.clone();
            async move { state.mint(CredentialTarget::Autoscaling { endpoint: "e".into() }, "me".into()).await }
        });
        started_rx.await.expect("the hook runs");
        assert!(state.minted_credentials().is_empty(), "listed while its hook (e.g. the password change) runs");
        release_tx.send(()).expect("release the hook");
        let credential = minting.await.expect("mint");

        assert_eq!(state.minted_credentials().iter().map(|c| &c.token).collect::<Vec<_>>(), [&credential.token]);
    }
}
