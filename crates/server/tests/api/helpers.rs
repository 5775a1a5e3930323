//! Spawning the application for a test and talking to it as one or more users.

use std::net::SocketAddr;

use fake_databricks::FakeWorkspace;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use server::config::{Config, DatabaseSource, EnvMap};
use server::startup::Application;
use server::state::AppState;
use shared::ChatSummary;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::oneshot;
use uuid::Uuid;

/// The default test user.
pub const ALICE: &str = "alice@example.com";
/// A second user, for isolation tests.
pub const BOB: &str = "bob@example.com";

/// A running application and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// Pool on the test database (for fixtures and assertions).
    pub db: PgPool,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The fake model endpoint, when the app was started with one.
    pub fake: Option<std::sync::Arc<FakeWorkspace>>,
    shutdown: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A response with its body parsed as JSON (or `Null` when empty).
#[derive(Debug)]
pub struct TestResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Parsed body.
    pub json: Value,
}

impl TestResponse {
    /// Asserts the status and that the body is the standard error envelope with this code.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.json);
        assert_eq!(self.json["error"]["code"], code, "body: {}", self.json);
        assert!(self.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {}", self.json);
    }

    /// Parses the body into a type.
    #[track_caller]
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.json.clone()).unwrap_or_else(|e| panic!("unexpected body {}: {e}", self.json))
    }
}

/// Variables every test app gets: trusted identity headers and a random port. The in-process local model is
/// off (tests that use it turn it on), so that no test loads it by accident.
pub fn test_env() -> EnvMap {
    EnvMap::default()
        .with("TRUST_FORWARDED_HEADERS", "true")
        .with("HOST", "127.0.0.1")
        .with("PORT", "0")
        .with("LOCAL_MODEL", "off")
}

/// The model name the fake answers as.
pub const MODEL: &str = "fake-model";

/// Variables that point the app at a fake model endpoint, with fast checkpoints and retries.
pub fn model_env(fake: &FakeWorkspace) -> EnvMap {
    test_env()
        .with("LLM_BASE_URL", &fake.serving_base_url())
        .with("DATABRICKS_SERVING_ENDPOINT", MODEL)
        .with("CHAT_MODELS", "other-model=Other Model")
        .with("TITLE_GENERATION", "false")
        .with("CHECKPOINT_INTERVAL_MS", "100")
        .with("LLM_RETRY_BASE_DELAY_MS", "20")
        .with("SHUTDOWN_DRAIN_SECS", "2")
}

impl TestApp {
    /// Starts the application on the given fresh database.
    pub async fn spawn(connect: PgConnectOptions) -> Self {
        Self::spawn_with(connect, test_env()).await
    }

    /// Starts the application with extra configuration.
    pub async fn spawn_with(connect: PgConnectOptions, env: EnvMap) -> Self {
        server::telemetry::init_for_test();
        let mut config = Config::from_map(&env).expect("test configuration is valid");
        config.database.connect = connect;
        config.database.source = DatabaseSource::Url;
        config.database.create_if_missing = false;
        let app = Application::build(config).await.expect("application starts");
        Self::run(app)
    }

    /// Starts the application with a fresh fake model endpoint.
    pub async fn spawn_with_model(connect: PgConnectOptions) -> Self {
        let fake = FakeWorkspace::start().await;
        let env = model_env(&fake);
        Self::spawn_with_fake(connect, fake, env).await
    }

    /// Starts the application with the given fake and variables (see [`model_env`]).
    pub async fn spawn_with_fake(connect: PgConnectOptions, fake: FakeWorkspace, env: EnvMap) -> Self {
        let mut app = Self::spawn_with(connect, env).await;
        app.fake = Some(std::sync::Arc::new(fake));
        app
    }

    /// Runs an already built application (tests that need special state build it themselves).
    pub fn run(app: Application) -> Self {
        let address: SocketAddr = app.local_addr();
        let db = app.state().db.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let stopped = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        TestApp {
            address: format!("http://{address}"),
            db,
            client: reqwest::Client::new(),
            fake: None,
            shutdown: Some(tx),
            stopped: Some(stopped),
        }
    }

    /// A client for a server running elsewhere (e.g. a child process), with a pool on its database.
    pub fn client_only(address: String, db: PgPool) -> Self {
        TestApp { address, db, client: reqwest::Client::new(), fake: None, shutdown: None, stopped: None }
    }

    /// The fake model endpoint.
    #[track_caller]
    pub fn fake(&self) -> &FakeWorkspace {
        self.fake.as_deref().expect("the app was started with a fake model")
    }

    /// Shuts the server down as SIGTERM would and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            stopped.await.expect("server task").expect("server stops cleanly");
        }
    }

    /// Builds a request as `user` (None: without identity headers).
    pub fn request(&self, user: Option<&str>, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.address));
        match user {
            Some(email) => builder.header("x-forwarded-email", email),
            None => builder,
        }
    }

    /// Sends a request and parses the response.
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> TestResponse {
        let response = builder.send().await.expect("request is sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body is read");
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        TestResponse { status, headers, json }
    }

    /// `GET path` as `user`.
    pub async fn get(&self, user: &str, path: &str) -> TestResponse {
        self.send(self.request(Some(user), Method::GET, path)).await
    }

    /// `DELETE path` as `user`.
    pub async fn delete(&self, user: &str, path: &str) -> TestResponse {
        self.send(self.request(Some(user), Method::DELETE, path)).await
    }

    /// A JSON request as `user`.
    pub async fn json(&self, user: &str, method: Method, path: &str, body: Value) -> TestResponse {
        self.send(self.request(Some(user), method, path).json(&body)).await
    }

    /// Creates a chat and returns it.
    pub async fn create_chat(&self, user: &str, body: Value) -> ChatSummary {
        let response = self.json(user, Method::POST, "/api/chats", body).await;
        assert_eq!(response.status, StatusCode::CREATED, "body: {}", response.json);
        response.parse()
    }

    /// Number of chats in the database, all users together.
    pub async fn chat_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from chat.chats").fetch_one(&self.db).await.expect("count")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// State around a pool of the test's own, with an engine that runs nothing in the background (for routes that
/// only read, e.g. against an unreachable database).
pub fn state_with_pool(db: PgPool) -> AppState {
    let config = Config::from_map(&test_env()).expect("test configuration is valid");
    let engine = server::engine::Engine::detached(db.clone(), &config);
    AppState { db, config: std::sync::Arc::new(config), engine, refusals: Default::default() }
}

/// Inserts `count` messages into a chat with the given text pattern (fixture; `{i}` is replaced by the index): one
/// branch, questions and answers in turn, which the chat shows.
pub async fn insert_messages(db: &PgPool, chat_id: Uuid, count: i64, text: &str) {
    sqlx::query(
        "insert into chat.messages (message_id, chat_id, seq, role, parts, status, parent_id, depth)
         select md5($1::text || s)::uuid, $1, s, case when s % 2 = 1 then 'user' else 'assistant' end,
                jsonb_build_array(jsonb_build_object('type', 'text', 'text', replace($3, '{i}', s::text))), 'complete',
                case when s > 1 then md5($1::text || (s - 1))::uuid end, s
         from generate_series(1, $2) s",
    )
    .bind(chat_id)
    .bind(count)
    .bind(text)
    .execute(db)
    .await
    .expect("fixture messages");
    sqlx::query("update chat.chats set last_seq = $2, active_leaf = md5($1::text || $2)::uuid where chat_id = $1")
        .bind(chat_id)
        .bind(count)
        .execute(db)
        .await
        .expect("fixture seq");
}

/// The real server binary running as a child process; killed (SIGKILL) on drop.
pub struct ServerProcess {
    child: std::process::Child,
    address: std::sync::mpsc::Receiver<String>,
    known: std::cell::OnceCell<String>,
}

impl ServerProcess {
    /// Starts the binary on `database_url` with a random port and the given extra variables.
    pub fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("PORT", "0")
            .env("HOST", "127.0.0.1")
            .env("LOG_FORMAT", "json")
            .env("LOCAL_MODEL", "off")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("server binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && let Some(address) = event["address"].as_str()
                {
                    let _ = tx.send(address.to_owned());
                }
            }
        });
        ServerProcess { child, address: rx, known: std::cell::OnceCell::new() }
    }

    /// `host:port` the server listens on (waits for it to start).
    pub fn address(&self) -> String {
        self.known
            .get_or_init(|| {
                self.address.recv_timeout(std::time::Duration::from_secs(60)).expect("server reported its address")
            })
            .clone()
    }

    /// Kills the process at once (SIGKILL), as a crash or an out-of-memory kill would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // The kill(1) command rather than libc: the workspace forbids unsafe code.
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.child.wait().expect("server exits")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
