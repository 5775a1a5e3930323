//! The stage of one scenario: a fresh database (on the shared PostgreSQL, or in a private cluster that may be
//! restarted), the fake model, the server binary on them (which may be killed and started again), a client and a
//! pool the invariant checker reads through. With replicas, several server processes on the one database behind a
//! real reverse proxy (`crate::proxy`); the client then goes through the proxy, and a process fault hits replica 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fake_databricks::FakeWorkspace;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use super::client::ChatClient;
use super::cluster::PrivateCluster;
use crate::proxy::{Proxy, free_port};
use crate::server_process::{BenchDatabase, ServerProcess};

/// Server settings every scenario shares: short timeouts, so faults show their effect within seconds.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// `LLM_IDLE_TIMEOUT_SECS`.
    pub llm_idle_secs: u64,
    /// `CHECKPOINT_INTERVAL_MS`.
    pub checkpoint_interval_ms: u64,
    /// `CHECKPOINT_FAILURE_LIMIT_SECS`.
    pub checkpoint_failure_limit_secs: u64,
    /// `SHUTDOWN_DRAIN_SECS`.
    pub shutdown_drain_secs: u64,
    /// `LLM_MAX_RETRIES`.
    pub llm_max_retries: u64,
    /// `LLM_MAX_RETRY_WAIT_SECS`.
    pub llm_max_retry_wait_secs: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            llm_idle_secs: 2,
            checkpoint_interval_ms: 250,
            checkpoint_failure_limit_secs: 3,
            shutdown_drain_secs: 3,
            llm_max_retries: 3,
            llm_max_retry_wait_secs: 5,
        }
    }
}

/// Where a scenario's database lives.
enum Database {
    Shared(BenchDatabase),
    Private { cluster: PrivateCluster, url: String },
}

/// Everything a scenario runs against.
pub struct Stage {
    database: Option<Database>,
    /// Kept alive for as long as the server may call it.
    _fake: Arc<FakeWorkspace>,
    /// Replica 0 (the one process faults hit), then the others.
    servers: Vec<Option<ServerProcess>>,
    /// With replicas: the port each listens on (kept across restarts, so the proxy finds it again).
    ports: Vec<u16>,
    proxy: Option<Proxy>,
    server_bin: String,
    env: Vec<(&'static str, String)>,
    log_file: PathBuf,
    /// Client of the current server process.
    pub client: ChatClient,
    /// Pool on the scenario's database, for the invariant checker and fault bookkeeping.
    pub db: PgPool,
}

/// How to build a stage.
pub struct StageOptions<'a> {
    /// Admin URL of the shared PostgreSQL (for a fresh database there).
    pub admin_url: &'a str,
    /// The server binary.
    pub server_bin: &'a str,
    /// Directory for server logs.
    pub log_dir: &'a std::path::Path,
    /// Scenario name (log file name).
    pub name: &'a str,
    /// Run PostgreSQL privately, so it can be restarted.
    pub private_postgres: bool,
    /// Server pool size.
    pub db_connections: u32,
    /// Server processes (more than one: behind the proxy).
    pub replicas: usize,
}

impl Stage {
    /// Creates the database, starts the server on it and connects the checker.
    pub async fn start(
        fake: Arc<FakeWorkspace>,
        options: StageOptions<'_>,
        timeouts: Timeouts,
    ) -> anyhow::Result<Self> {
        let (database, url) = if options.private_postgres {
            let cluster = PrivateCluster::start().await.context("starting a private PostgreSQL cluster")?;
            let mut admin = PgConnection::connect(&cluster.url("postgres")).await?;
            sqlx::raw_sql("create database faults").execute(&mut admin).await?;
            admin.close().await?;
            let url = cluster.url("faults");
            (Database::Private { cluster, url: url.clone() }, url)
        } else {
            let database = BenchDatabase::create(options.admin_url).await?;
            let url = database.url.clone();
            (Database::Shared(database), url)
        };
        let env = vec![
            ("LLM_BASE_URL", fake.serving_base_url()),
            ("DATABRICKS_SERVING_ENDPOINT", "fault-model".to_owned()),
            // Titles on, as by default: a new chat's title is asked of the same model with the same directives but
            // `max_tokens` 32, so for most turns it arrives while the answer streams (and fails when it fails).
            ("TITLE_GENERATION", "true".to_owned()),
            ("LLM_HTTP2_PRIOR_KNOWLEDGE", "true".to_owned()),
            ("DATABASE_MAX_CONNECTIONS", options.db_connections.to_string()),
            ("DATABASE_ACQUIRE_TIMEOUT_SECS", "2".to_owned()),
            ("LLM_IDLE_TIMEOUT_SECS", timeouts.llm_idle_secs.to_string()),
            ("LLM_CONNECT_TIMEOUT_SECS", "2".to_owned()),
            ("LLM_RETRY_BASE_DELAY_MS", "100".to_owned()),
            ("LLM_MAX_RETRIES", timeouts.llm_max_retries.to_string()),
            ("LLM_MAX_RETRY_WAIT_SECS", timeouts.llm_max_retry_wait_secs.to_string()),
            ("CHECKPOINT_INTERVAL_MS", timeouts.checkpoint_interval_ms.to_string()),
            ("CHECKPOINT_FAILURE_LIMIT_SECS", timeouts.checkpoint_failure_limit_secs.to_string()),
            ("SHUTDOWN_DRAIN_SECS", timeouts.shutdown_drain_secs.to_string()),
            ("STREAM_KEEPALIVE_SECS", "1".to_owned()),
        ];
        let log_file = options.log_dir.join(format!("{}.log", options.name));
        let (servers, ports, proxy, client) = if options.replicas > 1 {
            let ports = (0..options.replicas).map(|_| free_port()).collect::<anyhow::Result<Vec<_>>>()?;
            let mut servers = Vec::new();
            for port in &ports {
                let env = with_port(&env, *port);
                servers.push(Some(ServerProcess::start_logged(options.server_bin, &url, &env, Some(&log_file))?));
            }
            let proxy = Proxy::start(&ports)?;
            let client = ChatClient::through(&proxy, options.replicas)?;
            (servers, ports, Some(proxy), client)
        } else {
            let server = ServerProcess::start_logged(options.server_bin, &url, &env, Some(&log_file))?;
            let client = ChatClient::new(&server.base_url)?;
            (vec![Some(server)], Vec::new(), None, client)
        };
        let db = PgPoolOptions::new().max_connections(4).connect(&url).await.context("connecting the checker")?;
        Ok(Self {
            database: Some(database),
            _fake: fake,
            servers,
            ports,
            proxy,
            server_bin: options.server_bin.to_owned(),
            env,
            log_file,
            client,
            db,
        })
    }

    /// The server log file.
    pub fn log_file(&self) -> &std::path::Path {
        &self.log_file
    }

    /// The running server process (replica 0).
    pub fn server(&mut self) -> anyhow::Result<&mut ServerProcess> {
        self.replica(0)
    }

    /// A running replica.
    pub fn replica(&mut self, index: usize) -> anyhow::Result<&mut ServerProcess> {
        self.servers.get_mut(index).and_then(Option::as_mut).context("the server is not running")
    }

    /// How many server processes the stage runs.
    pub fn replicas(&self) -> usize {
        self.servers.len()
    }

    /// Takes the server process (replica 0) out (to signal it and wait for it without holding the stage).
    pub fn take_server(&mut self) -> Option<ServerProcess> {
        self.take_replica(0)
    }

    /// Takes a replica out.
    pub fn take_replica(&mut self, index: usize) -> Option<ServerProcess> {
        self.servers.get_mut(index).and_then(Option::take)
    }

    /// Starts a new server process (replica 0) on the same database; alone, the client follows it to its new port.
    pub fn restart_server(&mut self) -> anyhow::Result<()> {
        self.restart_replica(0)
    }

    /// Starts replica `index` again (killing it first if it runs), on its own port behind the proxy.
    pub fn restart_replica(&mut self, index: usize) -> anyhow::Result<()> {
        if let Some(mut old) = self.take_replica(index) {
            old.kill();
        }
        let url = self.url();
        let env = match self.ports.get(index) {
            Some(port) => with_port(&self.env, *port),
            None => self.env.clone(),
        };
        let server = ServerProcess::start_logged(&self.server_bin, &url, &env, Some(&self.log_file))?;
        if self.proxy.is_none() {
            self.client = self.client.at(&server.base_url);
        }
        if let Some(slot) = self.servers.get_mut(index) {
            *slot = Some(server);
        }
        Ok(())
    }

    /// The private cluster, for scenarios that restart PostgreSQL.
    pub fn cluster(&self) -> anyhow::Result<&PrivateCluster> {
        match &self.database {
            Some(Database::Private { cluster, .. }) => Ok(cluster),
            _ => anyhow::bail!("this stage runs on the shared PostgreSQL"),
        }
    }

    fn url(&self) -> String {
        match &self.database {
            Some(Database::Shared(database)) => database.url.clone(),
            Some(Database::Private { url, .. }) => url.clone(),
            None => String::new(),
        }
    }

    /// Stops the server and drops the database (unless `keep`).
    pub async fn finish(mut self, keep: bool) -> anyhow::Result<()> {
        for mut server in self.servers.drain(..).flatten() {
            server.kill();
        }
        self.proxy = None;
        self.db.close().await;
        match self.database.take() {
            Some(Database::Shared(database)) if !keep => database.drop_database().await?,
            Some(Database::Shared(database)) => eprintln!("kept database {} for inspection", database.name),
            // Dropping the cluster deletes it.
            Some(Database::Private { .. }) | None => {}
        }
        Ok(())
    }

    /// Waits until no answer is streaming (all turns settled), at most `limit`. Returns the ids still streaming.
    pub async fn settle(&self, limit: Duration) -> anyhow::Result<Vec<uuid::Uuid>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let streaming = sqlx::query_scalar::<_, uuid::Uuid>(
                "select message_id from chat.messages where role = 'assistant' and status = 'streaming'",
            )
            .fetch_all(&self.db)
            .await;
            match streaming {
                Ok(ids) if ids.is_empty() || tokio::time::Instant::now() >= deadline => return Ok(ids),
                Err(error) if tokio::time::Instant::now() >= deadline => {
                    return Err(error).context("reading the database to see whether turns settled");
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// The server settings with a fixed port (a replica keeps its port across restarts).
fn with_port(env: &[(&'static str, String)], port: u16) -> Vec<(&'static str, String)> {
    let mut env = env.to_vec();
    env.push(("PORT", port.to_string()));
    env
}
