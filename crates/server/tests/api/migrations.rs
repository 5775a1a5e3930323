//! Migrations are safe when several server instances start at the same moment.

use futures::future::join_all;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::ServerProcess;

/// Number of migrations shipped in `migrations/`.
fn migration_count() -> i64 {
    server::MIGRATOR.iter().count() as i64
}

#[sqlx::test(migrations = false)]
async fn concurrent_migrations_in_one_process_apply_each_migration_once(_: PgPoolOptions, connect: PgConnectOptions) {
    let runs = (0..6).map(|_| {
        let options = connect.clone().options([("search_path", "chat")]);
        async move {
            let pool = PgPoolOptions::new().max_connections(2).connect_with(options).await.expect("pool");
            server::db::migrate(&pool).await
        }
    });

    let results = join_all(runs).await;

    for result in results {
        result.expect("every concurrent migration run succeeds");
    }
    let pool = PgPoolOptions::new().connect_with(connect).await.expect("pool");
    let applied: i64 =
        sqlx::query_scalar("select count(*) from chat._sqlx_migrations").fetch_one(&pool).await.expect("count");
    assert_eq!(applied, migration_count());
}

#[sqlx::test(migrations = false)]
async fn two_server_processes_starting_together_both_come_up(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: a fresh database with no schema at all.
    let url = connect.to_url_lossy().to_string();

    // Act: start two servers at the same instant.
    let first = ServerProcess::start(&url, &[]);
    let second = ServerProcess::start(&url, &[]);
    let addresses = [first.address(), second.address()];

    // Assert: both serve, and every migration was applied exactly once.
    let client = reqwest::Client::new();
    for address in &addresses {
        let health = client.get(format!("http://{address}/api/health")).send().await.expect("health");
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

#[sqlx::test(migrations = false)]
async fn the_local_default_creates_its_database_when_missing(_: PgPoolOptions, connect: PgConnectOptions) {
    // Arrange: the settings the server uses with no DATABASE_URL or PGHOST, on a database name not yet taken.
    let name = format!("chat_local_default_{}", uuid::Uuid::new_v4().simple());
    let mut config = server::config::Config::from_map(&crate::helpers::test_env()).expect("configuration");
    assert!(config.database.create_if_missing, "the local default creates its database");
    config.database.connect = connect.clone().database(&name);

    // Act: twice, as two starts would.
    let first =
        server::db::connect_and_migrate(&config.database, None, &Default::default()).await.expect("first start");
    first.close().await;
    let second =
        server::db::connect_and_migrate(&config.database, None, &Default::default()).await.expect("second start");

    // Assert: created once, migrated, usable.
    let applied: i64 =
        sqlx::query_scalar("select count(*) from chat._sqlx_migrations").fetch_one(&second).await.expect("count");
    assert_eq!(applied, migration_count());
    second.close().await;
    let admin = PgPoolOptions::new().connect_with(connect).await.expect("admin pool");
    sqlx::raw_sql(&format!("drop database {name} with (force)")).execute(&admin).await.expect("drop");
}
