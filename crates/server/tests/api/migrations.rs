//! Migrations are safe when several server instances start at the same moment.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::future::join_all;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Number of migrations shipped in `migrations/`.
fn migration_count() -> i64 {
    server::MIGRATOR.iter().count() as i64
}

#[sqlx::test(migrations = false)]
async fn concurrent_migrations_in_one_process_apply_each_migration_once(_: PgPoolOptions, connect: PgConnectOptions) {
    let runs = (0..6).map(|_| {
        let options = connect.clone().options([("search_path", "chat")]);
        async move {
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .connect_with(options)
                .await
                .expect("pool");
            server::db::migrate(&pool).await
        }
    });

    let results = join_all(runs).await;

    for result in results {
        result.expect("every concurrent migration run succeeds");
    }
    let pool = PgPoolOptions::new().connect_with(connect).await.expect("pool");
    let applied: i64 = sqlx::query_scalar("select count(*) from chat._sqlx_migrations")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(applied, migration_count());
}

/// A server process started on a database; killed on drop.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the real server binary and returns it with the address it listens on.
fn start_server(database_url: &str) -> (ServerProcess, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(address) = event["address"].as_str()
            {
                let _ = tx.send(address.to_owned());
            }
        }
    });
    (ServerProcess(child), rx)
}

#[sqlx::test(migrations = false)]
async fn two_server_processes_starting_together_both_come_up(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: a fresh database with no schema at all.
    let url = connect.to_url_lossy().to_string();

    // Act: start two servers at the same instant.
    let (first, first_addr) = start_server(&url);
    let (second, second_addr) = start_server(&url);
    let addresses: Vec<String> = [first_addr, second_addr]
        .into_iter()
        .map(|rx| {
            rx.recv_timeout(Duration::from_secs(60))
                .expect("server reported its address")
        })
        .collect();

    // Assert: both serve, and every migration was applied exactly once.
    let client = reqwest::Client::new();
    for address in &addresses {
        let health = client
            .get(format!("http://{address}/api/health"))
            .send()
            .await
            .expect("health");
        assert_eq!(health.status(), reqwest::StatusCode::OK);
    }
    let pool = PgPoolOptions::new().connect_with(connect).await.expect("pool");
    let applied: i64 = sqlx::query_scalar("select count(*) from chat._sqlx_migrations where success")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(applied, migration_count());
    drop((first, second));
}
