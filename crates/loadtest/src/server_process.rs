//! A fresh database and the server binary running on it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::{Connection, PgConnection};

/// Where a benchmark gets its databases and its server: the options every subcommand shares.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// Database the benchmark may create its own databases from.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")]
    pub admin_url: String,
    /// Server binary to run (`cargo build --release -p server` builds the default).
    #[arg(long, default_value = "target/release/server")]
    pub server_bin: String,
}

/// A database created for one benchmark run and dropped afterwards.
pub struct BenchDatabase {
    /// Admin URL (a database the benchmark may create databases from).
    admin_url: String,
    /// Name of the created database.
    pub name: String,
    /// URL of the created database.
    pub url: String,
}

impl BenchDatabase {
    /// Creates a uniquely named database.
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("chat_bench_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(admin_url).await.context("connecting with --admin-url")?;
        sqlx::raw_sql(&format!("create database {name}")).execute(&mut admin).await?;
        let (without_query, query) = admin_url.split_once('?').map_or((admin_url, None), |(u, q)| (u, Some(q)));
        let base = without_query.rsplit_once('/').map(|(base, _)| base).context("admin url has no database part")?;
        let url = match query {
            Some(query) => format!("{base}/{name}?{query}"),
            None => format!("{base}/{name}"),
        };
        Ok(Self { admin_url: admin_url.to_owned(), url, name })
    }

    /// Drops the database.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::raw_sql(&format!("drop database if exists {} with (force)", self.name)).execute(&mut admin).await?;
        Ok(())
    }
}

/// The server binary, killed on drop.
pub struct ServerProcess {
    child: Child,
    /// `http://host:port`.
    pub base_url: String,
}

impl ServerProcess {
    /// Starts `binary` with the given extra environment and waits until it listens.
    pub fn start(binary: &str, database_url: &str, extra_env: &[(&str, String)]) -> anyhow::Result<Self> {
        Self::start_logged(binary, database_url, extra_env, None)
    }

    /// Like [`ServerProcess::start`], also appending the server's log lines to `log_file` (to explain a failure
    /// after the fact without flooding the report).
    pub fn start_logged(
        binary: &str,
        database_url: &str,
        extra_env: &[(&str, String)],
        log_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut log = match log_file {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            ),
            None => None,
        };
        let mut command = Command::new(binary);
        command
            .env("DATABASE_URL", database_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", "warn,server=info")
            .env("TRUST_FORWARDED_HEADERS", "true")
            // Benchmarks measure the server against the fake model; the in-process model would compete for the CPU.
            .env("LOCAL_MODEL", "off")
            // One load-generator user stands for many people: the per-user limits would measure themselves.
            .env("TURNS_PER_MINUTE", "0")
            .env("MAX_CONCURRENT_TURNS_PER_USER", "0")
            .env_remove("DATABRICKS_APP_NAME")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let mut child =
            command.spawn().with_context(|| format!("starting {binary} (build it with cargo build --release)"))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(log) = log.as_mut() {
                    let _ = writeln!(log, "{line}");
                }
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(address) = event["address"].as_str()
                {
                    let _ = tx.send(address.to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(address) => Ok(Self { child, base_url: format!("http://{address}") }),
            Err(_) => {
                let _ = child.kill();
                bail!("the server did not report its address within 2 minutes")
            }
        }
    }
}

impl ServerProcess {
    /// Resident set size of the server process, in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Resident set size of a process, in KiB (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

impl ServerProcess {
    /// Kills the process at once (SIGKILL), as a crash or an out-of-memory kill would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (what Databricks Apps sends before stopping an app) and waits, at most `limit`, for the
    /// process to exit. `None` when it was still running at the limit (it is then killed).
    pub fn terminate(&mut self, limit: Duration) -> anyhow::Result<Option<std::process::ExitStatus>> {
        // The kill(1) command rather than libc: the workspace forbids unsafe code.
        let sent = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        anyhow::ensure!(sent.success(), "kill -TERM {} failed", self.child.id());
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Ok(None)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) a process has used so far (Linux).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds used so far by all PostgreSQL server processes on this machine (Linux).
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .filter_map(cpu_seconds)
        .sum()
}
