//! Databricks unified client authentication (PROTOCOLS.md C): host normalisation, the credential chain
//! (forced type → PAT → OAuth M2M → config profile) and a single-flight token cache that refreshes ahead of expiry.

use std::collections::HashMap;
use std::error::Error as _;
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::config_file::{self, ConfigFileError, Profile};

/// Workspace URL variable.
pub const ENV_HOST: &str = "DATABRICKS_HOST";
/// Personal access token variable.
pub const ENV_TOKEN: &str = "DATABRICKS_TOKEN";
/// OAuth M2M client id variable.
pub const ENV_CLIENT_ID: &str = "DATABRICKS_CLIENT_ID";
/// OAuth M2M client secret variable.
pub const ENV_CLIENT_SECRET: &str = "DATABRICKS_CLIENT_SECRET";
/// Variable forcing one auth type.
pub const ENV_AUTH_TYPE: &str = "DATABRICKS_AUTH_TYPE";
/// Variable naming the Databricks CLI binary.
pub const ENV_CLI_PATH: &str = "DATABRICKS_CLI_PATH";

/// Per-request timeout for calls to the workspace, so a hung endpoint cannot stall every caller behind the lock.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `databricks auth token` may run.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// Lifetime assumed when the token endpoint omits `expires_in` (C.6: OAuth tokens live one hour).
const DEFAULT_OAUTH_LIFETIME: Duration = Duration::from_secs(3600);
/// After a failed refresh, keep serving the still-valid old value this long before trying again.
const RETRY_BACKOFF: Duration = Duration::from_secs(10);

/// A source of configuration variables, so tests can inject values; blank values count as unset.
pub trait Vars {
    /// The non-blank value of `name`, if any.
    fn var(&self, name: &str) -> Option<String>;
}

impl Vars for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }
}

/// Reads variables from the process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessVars;

impl Vars for ProcessVars {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// The supported ways of obtaining a workspace token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// Personal access token (`DATABRICKS_TOKEN` / `token`).
    Pat,
    /// OAuth client credentials (`DATABRICKS_CLIENT_ID` + `DATABRICKS_CLIENT_SECRET`).
    OAuthM2m,
    /// Tokens from `databricks auth token` (U2M login done by the CLI).
    DatabricksCli,
}

impl AuthType {
    /// The name used by `DATABRICKS_AUTH_TYPE` and `auth_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pat => "pat",
            Self::OAuthM2m => "oauth-m2m",
            Self::DatabricksCli => "databricks-cli",
        }
    }

    /// Parses an auth type name (case-insensitive); None for names this module does not implement.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "pat" => Some(Self::Pat),
            "oauth-m2m" => Some(Self::OAuthM2m),
            "databricks-cli" => Some(Self::DatabricksCli),
            _ => None,
        }
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host value that is not a usable workspace URL.
#[derive(Debug, thiserror::Error)]
#[error(
    "{value:?} is not a valid Databricks workspace URL: {reason}; expected e.g. https://adb-1234567890123456.7.azuredatabricks.net"
)]
pub struct HostError {
    /// The offending value (withheld when it embeds credentials).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Why no token could be produced; the Display text names the auth type and the fix, and never contains secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The configured host is not a usable workspace URL.
    #[error("{origin}: {source}")]
    InvalidHost {
        /// Where the host came from.
        origin: String,
        /// What is wrong with it.
        #[source]
        source: HostError,
    },
    /// `.databrickscfg` or the requested profile could not be used.
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    /// An auth type name this module does not implement.
    #[error("{origin} is {value:?}, which is not supported here; use pat, oauth-m2m or databricks-cli")]
    UnknownAuthType {
        /// Where the name came from.
        origin: String,
        /// The name.
        value: String,
    },
    /// An auth type was forced but its credentials are missing.
    #[error("{auth_type}: selected by {forced_by}, but these are not set: {missing}")]
    MissingCredentials {
        /// The forced type.
        auth_type: AuthType,
        /// Where the type was forced.
        forced_by: String,
        /// The missing variables / profile keys.
        missing: String,
    },
    /// A host is configured but no credentials of any supported type.
    #[error(
        "no Databricks credentials found for {host} (tried pat and oauth-m2m in {searched}); set {ENV_TOKEN}, or {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}, or {ENV_AUTH_TYPE}=databricks-cli after `databricks auth login --host {host}`"
    )]
    NoCredentials {
        /// The normalised host.
        host: String,
        /// Where credentials were looked for.
        searched: String,
    },
    /// The OAuth token endpoint rejected the client id/secret.
    #[error("oauth-m2m: the token endpoint {url} refused the client credentials ({status} {error}); check {fix}")]
    ClientCredentialsRefused {
        /// The token endpoint.
        url: String,
        /// HTTP status code.
        status: u16,
        /// OAuth `error` code.
        error: String,
        /// Which settings hold the client credentials.
        fix: String,
    },
    /// An HTTP exchange with the workspace failed (transport, unexpected status or unreadable body).
    #[error("{context} {url} {reason}")]
    Http {
        /// Auth type or subsystem plus what was being called, e.g. "oauth-m2m: the token endpoint".
        context: String,
        /// The URL called.
        url: String,
        /// What went wrong and what to check.
        reason: String,
    },
    /// The Databricks CLI could not produce a token.
    #[error("databricks-cli: {reason}; run `databricks auth login --host {host}`")]
    Cli {
        /// What went wrong (quotes the CLI's first stderr line).
        reason: String,
        /// The normalised host, for the login hint.
        host: String,
    },
    /// The Lakebase credential API answered with an error.
    #[error("lakebase: POST {url} failed ({status} {error_code}): {message}; check {fix}")]
    Lakebase {
        /// The credential API URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Databricks `error_code`.
        error_code: String,
        /// Databricks `message`.
        message: String,
        /// Which setting to check.
        fix: String,
    },
}

/// Normalises a workspace host to `https://<host>[:port]` without path or trailing slash.
///
/// A missing scheme means https; `http://` is kept only when given explicitly (local fakes). Like the SDKs
/// (`_fix_host_if_needed`), only scheme and authority are kept, so a URL pasted from the browser with `?o=<id>` works.
pub fn normalize_host(raw: &str) -> Result<String, HostError> {
    let trimmed = raw.trim();
    // Never echo a value that embeds credentials.
    let shown = if trimmed.contains('@') { "<withheld>".to_string() } else { trimmed.to_string() };
    let err = |reason: &str| HostError { value: shown.clone(), reason: reason.to_string() };
    if trimmed.is_empty() {
        return Err(err("it is empty"));
    }
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "https" => ("https", rest),
            "http" => ("http", rest),
            other => return Err(err(&format!("unsupported scheme {other:?} (use https://)"))),
        },
        None => ("https", trimmed),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(err("it has no host name"));
    }
    if authority.contains('@') {
        return Err(err("it must not contain user info (user:password@)"));
    }
    let url = reqwest::Url::parse(&format!("{scheme}://{authority}")).map_err(|e| err(&e.to_string()))?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| err("it has no host name"))?;
    Ok(match url.port() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// A secret with the moment it stops working (None: never).
#[derive(Clone)]
pub(crate) struct Fetched {
    pub(crate) secret: SecretString,
    pub(crate) expires: Option<Instant>,
}

/// Converts a wall-clock expiry into a monotonic deadline (already-past times become "now").
pub(crate) fn instant_at(expiry: DateTime<Utc>) -> Instant {
    let now = Instant::now();
    match (expiry - Utc::now()).to_std() {
        Ok(left) => now + left,
        Err(_) => now,
    }
}

#[derive(Clone)]
struct Entry {
    fetched: Fetched,
    refresh_at: Option<Instant>,
}

#[derive(Default)]
struct CacheState {
    entry: Option<Entry>,
    /// Set after a failed refresh that fell back to the old value, to avoid hammering a failing endpoint.
    retry_at: Option<Instant>,
}

/// Caches one expiring secret; refreshes it `lead(lifetime)` before expiry with a single refresh in flight.
pub(crate) struct TokenCache {
    label: &'static str,
    lead: fn(Duration) -> Duration,
    state: Mutex<CacheState>,
    // Held across the fetch so concurrent callers queue behind one refresh instead of each calling the endpoint;
    // tokio's Mutex is released if the refreshing caller is cancelled, letting the next waiter take over.
    refresh: tokio::sync::Mutex<()>,
}

impl TokenCache {
    /// A cache named `label` in logs, refreshing `lead(lifetime)` ahead of expiry.
    pub(crate) fn new(label: &'static str, lead: fn(Duration) -> Duration) -> Self {
        Self { label, lead, state: Mutex::new(CacheState::default()), refresh: tokio::sync::Mutex::new(()) }
    }

    fn state(&self) -> MutexGuard<'_, CacheState> {
        // The state is a plain value that is always consistent, so a panic elsewhere cannot corrupt it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(&self, now: Instant) -> Option<Fetched> {
        self.state().entry.as_ref().filter(|e| e.refresh_at.is_none_or(|at| now < at)).map(|e| e.fetched.clone())
    }

    /// The cached value if fresh, else the result of one `fetch` shared by all concurrent callers.
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<Fetched, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, AuthError>>,
    {
        if let Some(fetched) = self.fresh(Instant::now()) {
            return Ok(fetched);
        }
        let _in_flight = self.refresh.lock().await;
        let now = Instant::now();
        // Whoever held the lock before us may have refreshed already.
        if let Some(fetched) = self.fresh(now) {
            return Ok(fetched);
        }
        let (fallback, retry_at) = {
            let state = self.state();
            let old = state.entry.as_ref().filter(|e| e.fetched.expires.is_none_or(|x| now < x));
            (old.map(|e| e.fetched.clone()), state.retry_at)
        };
        if let (Some(old), Some(retry_at)) = (&fallback, retry_at)
            && now < retry_at
        {
            return Ok(old.clone());
        }
        let started = Instant::now();
        match fetch().await {
            Ok(fetched) => {
                let refresh_at = fetched.expires.map(|expires| {
                    let lead = (self.lead)(expires.saturating_duration_since(started));
                    expires.checked_sub(lead).unwrap_or(started)
                });
                *self.state() =
                    CacheState { entry: Some(Entry { fetched: fetched.clone(), refresh_at }), retry_at: None };
                Ok(fetched)
            }
            Err(error) => match fallback {
                Some(old) if old.expires.is_none_or(|x| Instant::now() < x) => {
                    tracing::warn!(cache = self.label, %error, "refresh failed; serving the cached value until expiry");
                    self.state().retry_at = Some(Instant::now() + RETRY_BACKOFF);
                    Ok(old)
                }
                _ => Err(error),
            },
        }
    }

    /// Forgets the cached value so the next `get` fetches.
    pub(crate) fn invalidate(&self) {
        *self.state() = CacheState::default();
    }
}

/// Workspace tokens are refreshed when less than `min(300 s, 20% of lifetime)` remains.
fn workspace_token_lead(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(300))
}

/// Joins an error's source chain, without repeating the URL, for operator-facing messages.
pub(crate) fn describe_reqwest(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// OAuth credentials for the client-credentials grant.
struct M2m {
    token_url: String,
    client_id: String,
    client_secret: SecretString,
    /// Names the settings that hold the credentials, for error messages.
    fix: String,
}

#[derive(Deserialize)]
struct OAuthToken {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct OAuthErrorBody {
    error: Option<String>,
    error_description: Option<String>,
}

impl M2m {
    async fn fetch(&self, http: &reqwest::Client) -> Result<Fetched, AuthError> {
        let url = &self.token_url;
        let http_err = |reason: String| AuthError::Http {
            context: "oauth-m2m: the token endpoint".into(),
            url: url.clone(),
            reason,
        };
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.client_id,
            self.client_secret.expose_secret()
        ));
        let mut header = HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| http_err("cannot be called: the client credentials are not valid header text".into()))?;
        header.set_sensitive(true);
        let started = Instant::now();
        let response = http
            .post(url)
            .header(AUTHORIZATION, header)
            .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .map_err(|e| http_err(format!("could not be reached ({}); check {ENV_HOST}", describe_reqwest(e))))?;
        let status = response.status();
        let body =
            response.bytes().await.map_err(|e| http_err(format!("failed mid-response ({})", describe_reqwest(e))))?;
        if !status.is_success() {
            let parsed: OAuthErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            let code = parsed.error.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
            if status == reqwest::StatusCode::UNAUTHORIZED
                || matches!(code.as_str(), "invalid_client" | "unauthorized_client")
            {
                return Err(AuthError::ClientCredentialsRefused {
                    url: url.clone(),
                    status: status.as_u16(),
                    error: code,
                    fix: self.fix.clone(),
                });
            }
            let detail = parsed.error_description.map(|d| format!(": {d}")).unwrap_or_default();
            return Err(http_err(format!("answered {} {code}{detail}", status.as_u16())));
        }
        let token: OAuthToken = serde_json::from_slice(&body)
            .map_err(|e| http_err(format!("returned an unreadable token response ({e})")))?;
        let lifetime = token.expires_in.map_or(DEFAULT_OAUTH_LIFETIME, Duration::from_secs);
        Ok(Fetched { secret: token.access_token.into(), expires: Some(started + lifetime) })
    }
}

/// How to run `databricks auth token`.
struct Cli {
    /// `DATABRICKS_CLI_PATH` / `databricks_cli_path`; otherwise `databricks` is searched on `search_path`.
    program: Option<PathBuf>,
    args: Vec<String>,
    search_path: Option<OsString>,
    /// Variables from `Vars` handed to the CLI so it sees the same HOME, PATH and config file as we did.
    child_env: Vec<(&'static str, String)>,
}

#[derive(Deserialize)]
struct CliToken {
    access_token: String,
    expiry: String,
}

impl Cli {
    fn program(&self) -> Result<PathBuf, String> {
        if let Some(program) = &self.program {
            return Ok(program.clone());
        }
        let path = self.search_path.clone().or_else(|| std::env::var_os("PATH")).unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("databricks"))
            .find(|candidate| is_executable(candidate))
            .ok_or_else(|| {
                format!("the Databricks CLI `databricks` was not found on PATH (install it or set {ENV_CLI_PATH})")
            })
    }

    async fn fetch(&self, host: &str) -> Result<Fetched, AuthError> {
        let cli_err = |reason: String| AuthError::Cli { reason, host: host.to_string() };
        let program = self.program().map_err(cli_err)?;
        let shown = format!("databricks {}", self.args.join(" "));
        let mut command = tokio::process::Command::new(&program);
        command.args(&self.args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        for (name, value) in &self.child_env {
            command.env(name, value);
        }
        let output = match tokio::time::timeout(CLI_TIMEOUT, command.output()).await {
            Err(_) => return Err(cli_err(format!("`{shown}` did not finish within {} s", CLI_TIMEOUT.as_secs()))),
            Ok(Err(e)) => return Err(cli_err(format!("could not run {} ({e})", program.display()))),
            Ok(Ok(output)) => output,
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = stderr.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(no error output)");
            let first: String = first.chars().take(300).collect();
            return Err(cli_err(format!("`{shown}` failed ({}): {first}", output.status)));
        }
        let token: CliToken = serde_json::from_slice(&output.stdout)
            .map_err(|e| cli_err(format!("could not parse the JSON printed by `{shown}` ({e})")))?;
        // `expiry` is Go's RFC 3339 with nanoseconds (C.5); `expires_in` is not relied upon.
        let expiry = DateTime::parse_from_rfc3339(&token.expiry)
            .map_err(|e| cli_err(format!("`{shown}` printed an unreadable expiry ({e})")))?;
        Ok(Fetched { secret: token.access_token.into(), expires: Some(instant_at(expiry.with_timezone(&Utc))) })
    }
}

#[cfg(unix)]
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &std::path::Path) -> bool {
    path.is_file()
}

enum Source {
    Pat(SecretString),
    M2m(M2m),
    Cli(Cli),
}

struct Inner {
    host: String,
    auth_type: AuthType,
    profile: Option<String>,
    source: Source,
    http: reqwest::Client,
    cache: TokenCache,
}

/// Workspace credentials resolved once at startup; cheap to clone, shares one token cache.
#[derive(Clone)]
pub struct DatabricksAuth {
    inner: Arc<Inner>,
}

impl fmt::Debug for DatabricksAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabricksAuth")
            .field("host", &self.inner.host)
            .field("auth_type", &self.inner.auth_type)
            .field("profile", &self.inner.profile)
            .finish_non_exhaustive()
    }
}

/// Settings from one place (environment or profile), before the chain picks an auth type.
#[derive(Default)]
struct Settings {
    host: Option<String>,
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    cli_path: Option<String>,
}

impl Settings {
    fn from_vars(vars: &dyn Vars) -> Self {
        Self {
            host: vars.var(ENV_HOST),
            token: vars.var(ENV_TOKEN),
            client_id: vars.var(ENV_CLIENT_ID),
            client_secret: vars.var(ENV_CLIENT_SECRET),
            cli_path: vars.var(ENV_CLI_PATH),
        }
    }

    fn from_profile(profile: &Profile) -> Self {
        let get = |key: &str| profile.get(key).map(str::to_string);
        Self {
            host: get("host"),
            token: get("token"),
            client_id: get("client_id"),
            client_secret: get("client_secret"),
            cli_path: get("databricks_cli_path"),
        }
    }

    fn has_client_credentials(&self) -> bool {
        self.client_id.is_some() && self.client_secret.is_some()
    }
}

/// The environment and the chosen profile, merged per attribute with the environment winning.
struct Resolution<'a> {
    env: Settings,
    file: Settings,
    profile: Option<&'a Profile>,
}

impl Resolution<'_> {
    fn origin(&self, env_name: &str, key: &str, from_env: bool) -> String {
        match (from_env, self.profile) {
            (false, Some(profile)) => profile.describe_key(key),
            _ => env_name.to_string(),
        }
    }

    fn pat(&self) -> Option<Source> {
        let token = self.env.token.clone().or_else(|| self.file.token.clone())?;
        Some(Source::Pat(token.into()))
    }

    fn m2m(&self, host: &str) -> Option<Source> {
        let client_id = self.env.client_id.clone().or_else(|| self.file.client_id.clone())?;
        let client_secret = self.env.client_secret.clone().or_else(|| self.file.client_secret.clone())?;
        let id_origin = self.origin(ENV_CLIENT_ID, "client_id", self.env.client_id.is_some());
        let secret_origin = self.origin(ENV_CLIENT_SECRET, "client_secret", self.env.client_secret.is_some());
        let fix = match (self.env.client_id.is_some(), self.env.client_secret.is_some(), self.profile) {
            (false, false, Some(profile)) => {
                format!("client_id / client_secret in profile [{}] of {}", profile.name(), profile.path().display())
            }
            _ => format!("{id_origin} / {secret_origin}"),
        };
        Some(Source::M2m(M2m {
            token_url: format!("{host}/oidc/v1/token"),
            client_id,
            client_secret: client_secret.into(),
            fix,
        }))
    }

    fn cli(&self, vars: &dyn Vars, host: &str) -> Source {
        let args: Vec<String> = match self.profile {
            Some(profile) => vec!["auth".into(), "token".into(), "--profile".into(), profile.name().into()],
            None => vec!["auth".into(), "token".into(), "--host".into(), host.into()],
        };
        let child_env = ["PATH", "HOME", config_file::ENV_CONFIG_FILE]
            .into_iter()
            .filter_map(|name| vars.var(name).map(|value| (name, value)))
            .collect();
        Source::Cli(Cli {
            program: self.env.cli_path.clone().or_else(|| self.file.cli_path.clone()).map(PathBuf::from),
            args,
            search_path: vars.var("PATH").map(OsString::from),
            child_env,
        })
    }

    /// Builds the source for a forced type, or explains which credentials are missing.
    fn forced(&self, vars: &dyn Vars, host: &str, auth_type: AuthType, forced_by: String) -> Result<Source, AuthError> {
        let missing = |names: &[(&str, &str)]| AuthError::MissingCredentials {
            auth_type,
            forced_by: forced_by.clone(),
            missing: names
                .iter()
                .map(|(env, key)| format!("{env} (or {key} in the profile)"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        match auth_type {
            AuthType::Pat => self.pat().ok_or_else(|| missing(&[(ENV_TOKEN, "token")])),
            AuthType::OAuthM2m => self.m2m(host).ok_or_else(|| {
                let has_id = self.env.client_id.is_some() || self.file.client_id.is_some();
                let has_secret = self.env.client_secret.is_some() || self.file.client_secret.is_some();
                let mut names = Vec::new();
                if !has_id {
                    names.push((ENV_CLIENT_ID, "client_id"));
                }
                if !has_secret {
                    names.push((ENV_CLIENT_SECRET, "client_secret"));
                }
                missing(&names)
            }),
            AuthType::DatabricksCli => Ok(self.cli(vars, host)),
        }
    }
}

/// Whether the config file must be consulted: a profile was named, or the environment alone is incomplete.
fn needs_profile(vars: &dyn Vars, env: &Settings, forced: Option<AuthType>) -> bool {
    if vars.var(config_file::ENV_CONFIG_PROFILE).is_some() || env.host.is_none() {
        return true;
    }
    match forced {
        Some(AuthType::Pat) => env.token.is_none(),
        Some(AuthType::OAuthM2m) => !env.has_client_credentials(),
        Some(AuthType::DatabricksCli) => false,
        None => env.token.is_none() && !env.has_client_credentials(),
    }
}

impl DatabricksAuth {
    /// Resolves host and credentials from `vars`; None when no Databricks host is configured anywhere (env or profile).
    pub fn from_vars(vars: &dyn Vars, http: reqwest::Client) -> Result<Option<Self>, AuthError> {
        let forced_env = match vars.var(ENV_AUTH_TYPE) {
            Some(value) => Some(
                AuthType::from_name(&value)
                    .ok_or_else(|| AuthError::UnknownAuthType { origin: ENV_AUTH_TYPE.into(), value })?,
            ),
            None => None,
        };
        let env = Settings::from_vars(vars);
        let profile = if needs_profile(vars, &env, forced_env) { config_file::load_profile(vars)? } else { None };
        let file = profile.as_ref().map(Settings::from_profile).unwrap_or_default();
        let resolution = Resolution { env, file, profile: profile.as_ref() };

        let Some(raw_host) = resolution.env.host.as_deref().or(resolution.file.host.as_deref()) else {
            tracing::debug!("no Databricks host configured; Databricks features are off");
            return Ok(None);
        };
        let host_origin = resolution.origin(ENV_HOST, "host", resolution.env.host.is_some());
        let host = normalize_host(raw_host).map_err(|source| AuthError::InvalidHost { origin: host_origin, source })?;
        if let (Some(_), Some(profile_host), Some(profile)) =
            (&resolution.env.host, &resolution.file.host, resolution.profile)
            && normalize_host(profile_host).ok().as_deref() != Some(host.as_str())
        {
            // Env wins (spec), but the profile's credentials were issued for another host: say so once.
            tracing::warn!(profile = profile.name(), %host, "DATABRICKS_HOST overrides the host of the config profile");
        }

        let profile_auth_type = match resolution.profile.and_then(|p| p.get("auth_type").map(|v| (p, v))) {
            Some((p, value)) => Some((
                AuthType::from_name(value).ok_or_else(|| AuthError::UnknownAuthType {
                    origin: p.describe_key("auth_type"),
                    value: value.to_string(),
                })?,
                p.describe_key("auth_type"),
            )),
            None => None,
        };
        // Env credentials beat everything from the file (spec order: PAT → M2M → profile); the profile's
        // `auth_type` only decides among the profile's own credentials.
        let source = if let Some(auth_type) = forced_env {
            resolution.forced(vars, &host, auth_type, ENV_AUTH_TYPE.to_string())?
        } else if let Some(token) = resolution.env.token.clone() {
            Source::Pat(token.into())
        } else if resolution.env.has_client_credentials() {
            resolution.m2m(&host).ok_or_else(|| no_credentials(&host, resolution.profile))?
        } else if let Some((auth_type, forced_by)) = profile_auth_type {
            resolution.forced(vars, &host, auth_type, forced_by)?
        } else if let Some(source) = resolution.pat() {
            source
        } else {
            resolution.m2m(&host).ok_or_else(|| no_credentials(&host, resolution.profile))?
        };
        let auth_type = match &source {
            Source::Pat(_) => AuthType::Pat,
            Source::M2m(_) => AuthType::OAuthM2m,
            Source::Cli(_) => AuthType::DatabricksCli,
        };
        let profile_name = resolution.profile.map(|p| p.name().to_string());
        tracing::debug!(%host, %auth_type, profile = profile_name.as_deref(), "resolved Databricks authentication");
        Ok(Some(Self {
            inner: Arc::new(Inner {
                host,
                auth_type,
                profile: profile_name,
                source,
                http,
                cache: TokenCache::new("databricks-token", workspace_token_lead),
            }),
        }))
    }

    /// The normalised workspace URL, e.g. `https://adb-1.7.azuredatabricks.net`.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The auth type the chain selected.
    pub fn auth_type(&self) -> AuthType {
        self.inner.auth_type
    }

    /// The config profile used, if any.
    pub fn profile(&self) -> Option<&str> {
        self.inner.profile.as_deref()
    }

    /// The HTTP client used for token and credential calls.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// A valid bearer token, cached; refreshed ahead of expiry with a single refresh in flight.
    pub async fn token(&self) -> Result<SecretString, AuthError> {
        Ok(self.fetched().await?.secret)
    }

    /// The token with its expiry, for callers that cache derived credentials.
    pub(crate) async fn fetched(&self) -> Result<Fetched, AuthError> {
        let inner = &*self.inner;
        inner.cache.get(|| inner.fetch()).await
    }

    /// Forget the cached token (e.g. after a 401) so the next call fetches a new one.
    pub fn invalidate(&self) {
        self.inner.cache.invalidate();
    }
}

impl Inner {
    async fn fetch(&self) -> Result<Fetched, AuthError> {
        match &self.source {
            Source::Pat(token) => Ok(Fetched { secret: token.clone(), expires: None }),
            Source::M2m(m2m) => m2m.fetch(&self.http).await,
            Source::Cli(cli) => cli.fetch(&self.host).await,
        }
    }
}

fn no_credentials(host: &str, profile: Option<&Profile>) -> AuthError {
    let searched = match profile {
        Some(p) => format!("the environment and profile [{}] of {}", p.name(), p.path().display()),
        None => "the environment (no config profile found)".to_string(),
    };
    AuthError::NoCredentials { host: host.to_string(), searched }
}
