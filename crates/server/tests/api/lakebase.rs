//! Lakebase passwords end to end: the app starts from the variables a Databricks Apps database resource injects
//! (no password), mints its password from the (fake) workspace, and keeps connecting after the password is
//! rotated or revoked. The database is a private PostgreSQL cluster with password (SCRAM) authentication, where
//! every minted credential becomes the role's password, as Lakebase accepts only a current credential.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_databricks::FakeWorkspace;
use fake_databricks::workspace::MintedCredential;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::helpers::{ALICE, TestApp, test_env};

const ROLE: &str = "chat_app_sp";
const ENDPOINT: &str = "projects/chat/branches/production/endpoints/primary";
const PAT: &str = "dapi-app-token";

/// A throwaway PostgreSQL cluster on a free port: password authentication over TCP, trust over its socket.
struct ScramPostgres {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl ScramPostgres {
    fn start() -> Self {
        let bin = postgres_bin_dir();
        let root = std::env::temp_dir().join(format!("chat-scram-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root).expect("create the cluster directory");
        // PostgreSQL refuses to run as root; in CI the tests run as root, so the cluster runs as `postgres`.
        let as_root = run(Command::new("id").arg("-u")).trim() == "0";
        if as_root {
            run(Command::new("chown").args(["postgres:postgres"]).arg(&root));
        }
        let data = root.join("data");
        let pg = |program: &str| {
            let path = bin.join(program);
            if as_root {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(path);
                command
            } else {
                Command::new(path)
            }
        };
        run(pg("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        ]));
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c password_encryption=scram-sha-256",
            root.display()
        );
        run(pg("pg_ctl").arg("-D").arg(&data).args(["-o", &options, "-l"]).arg(root.join("log")).args(["-w", "start"]));
        Self { root, bin, port }
    }

    /// A superuser connection over the cluster's socket.
    async fn admin(&self) -> PgPool {
        let options = PgConnectOptions::new_without_pgpass()
            .socket(&self.root)
            .port(self.port)
            .username("postgres")
            .database("postgres");
        PgPoolOptions::new().max_connections(2).connect_with(options).await.expect("admin connection")
    }

    /// Connects over TCP as the app's role with `password`.
    async fn connect_as_app(&self, password: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
        PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .username(ROLE)
            .password(password)
            .database("chat")
            .connect()
            .await
    }
}

impl Drop for ScramPostgres {
    fn drop(&mut self) {
        let data = self.root.join("data");
        let pg_ctl = self.bin.join("pg_ctl");
        let mut stop = if run(Command::new("id").arg("-u")).trim() == "0" {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(pg_ctl);
            command
        } else {
            Command::new(pg_ctl)
        };
        let _ = stop.arg("-D").arg(&data).args(["-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn postgres_bin_dir() -> PathBuf {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|dir| dir.join("initdb").exists())
        .expect("PostgreSQL server binaries (initdb, pg_ctl) are needed for this test; scripts/test.sh installs them")
}

#[track_caller]
fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("address").port()
}

/// Sets the app role's password to each newly minted credential, before the app receives it.
fn rotate_role_password_on_mint(fake: &FakeWorkspace, admin: PgPool) {
    fake.workspace().on_mint(Arc::new(move |credential: MintedCredential| {
        let admin = admin.clone();
        Box::pin(async move {
            set_password(&admin, &credential.token).await;
        })
    }));
}

async fn set_password(admin: &PgPool, password: &str) {
    // ALTER ROLE takes no bind parameters; the password is quoted as a literal.
    let statement = format!("alter role {ROLE} password '{}'", password.replace('\'', "''"));
    sqlx::raw_sql(&statement).execute(admin).await.expect("set the role's password");
}

/// Closes every connection of the app's role, so the next query must log in again.
async fn drop_app_connections(admin: &PgPool) {
    sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where usename = $1")
        .bind(ROLE)
        .execute(admin)
        .await
        .expect("terminate the app's connections");
}

fn minted(fake: &FakeWorkspace) -> Vec<MintedCredential> {
    fake.workspace().minted_credentials()
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn new_connections_get_each_rotated_lakebase_password() {
    // Arrange: a database and role as the Apps database resource creates them, and a workspace that mints
    // six-second credentials (replaced 1.2 s before expiry) for the Autoscaling endpoint.
    server::telemetry::init_for_test();
    let postgres = ScramPostgres::start();
    let admin = postgres.admin().await;
    sqlx::raw_sql(&format!("create role {ROLE} login password 'not-a-credential'"))
        .execute(&admin)
        .await
        .expect("create role");
    sqlx::raw_sql(&format!("create database chat owner {ROLE}")).execute(&admin).await.expect("create database");
    let fake = FakeWorkspace::start().await;
    fake.workspace().add_pat(PAT);
    fake.workspace().add_postgres_endpoint(ENDPOINT);
    fake.workspace().set_credential_lifetime(Duration::from_secs(6));
    rotate_role_password_on_mint(&fake, admin.clone());
    let env = test_env()
        .with("DATABRICKS_HOST", &fake.url())
        .with("DATABRICKS_TOKEN", PAT)
        .with("LAKEBASE_ENDPOINT", ENDPOINT)
        .with("PGHOST", "127.0.0.1")
        .with("PGPORT", &postgres.port.to_string())
        .with("PGUSER", ROLE)
        .with("PGDATABASE", "chat")
        .with("PGSSLMODE", "disable");
    let config = server::config::Config::from_map(&env).expect("variables parse");

    // Act 1: the app starts with a minted password.
    let app = TestApp::run(server::Application::build(config).await.expect("the app starts"));
    let chat = app.create_chat(ALICE, json!({"title": "kept"})).await;
    let first = minted(&fake);
    assert_eq!(first.len(), 1, "one credential minted at start");
    assert!(
        matches!(&first[0].target, fake_databricks::workspace::CredentialTarget::Autoscaling { endpoint } if endpoint == ENDPOINT)
    );

    // Act 2: the credential is replaced before it expires, and the old one stops working.
    wait_until("a second credential is minted", async || minted(&fake).len() >= 2).await;
    let old = postgres.connect_as_app(&first[0].token).await.expect_err("the first credential no longer logs in");
    assert!(matches!(&old, sqlx::Error::Database(db) if db.code().as_deref() == Some("28P01")), "{old}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop_app_connections(&admin).await;

    // Assert: new connections log in with the new credential.
    let response = app.get(ALICE, &format!("/api/chats/{}", chat.id)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.json);
    assert_eq!(response.json["title"], "kept");

    // Act 3: the credential is revoked (the role's password changes behind the app's back).
    fake.workspace().set_credential_lifetime(Duration::from_secs(3600));
    wait_until("the app holds a long-lived credential", async || {
        minted(&fake).last().is_some_and(|m| m.expire_time > chrono::Utc::now() + chrono::Duration::minutes(30))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = minted(&fake).len();
    set_password(&admin, "revoked").await;
    drop_app_connections(&admin).await;

    // Assert: the refusal (28P01) is answered as "try again" and makes the app mint at once; it then recovers.
    let refused = app.get(ALICE, "/api/chats").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.json);
    assert!(!refused.json.to_string().contains("28P01"), "internals stay in the log: {}", refused.json);
    wait_until("the app answers again", async || app.get(ALICE, "/api/chats").await.status == StatusCode::OK).await;
    assert!(minted(&fake).len() > before, "a new credential was minted after the refusal");
    app.shutdown().await;
}
