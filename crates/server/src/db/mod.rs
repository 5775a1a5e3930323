//! PostgreSQL access: the pool, the schema bootstrap and migrations, and one module of queries per resource.
//!
//! Queries are plain SQL checked at compile time by `sqlx::query!` (offline data in `.sqlx/`), and every
//! table is schema-qualified (`chat.chats`), so they do not depend on the connection's `search_path`.

pub mod allowances;
pub mod answers;
pub mod approvals;
pub mod chats;
pub mod credentials;
pub mod cursor;
pub mod events;
pub mod feedback;
pub mod shares;
pub mod summaries;
pub mod thread;
pub mod workers;

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::DatabaseConfig;
use crate::databricks::LakebasePasswords;
pub use credentials::PasswordRefusals;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Schema that holds every table of the app.
pub const SCHEMA: &str = "chat";

/// Key of the advisory lock that serialises schema setup between server instances starting together.
const MIGRATION_LOCK_KEY: i64 = 0x6368_6174_6d69_6772; // "chatmigr"

/// How long startup keeps retrying an unreachable database (Lakebase may be resuming from scale-to-zero).
const STARTUP_CONNECT_DEADLINE: Duration = Duration::from_secs(30);

/// Opens the pool, creating the local database when allowed, and brings the schema up to date. With Lakebase
/// `passwords`, connections authenticate with minted credentials that a background task keeps current, minting a
/// new one at once when the pool's users note a refused password in `refusals`.
pub async fn connect_and_migrate(
    config: &DatabaseConfig,
    passwords: Option<LakebasePasswords>,
    refusals: &PasswordRefusals,
) -> anyhow::Result<PgPool> {
    if config.create_if_missing {
        ensure_database_exists(&config.connect).await?;
    }
    // sqlx keeps its migration bookkeeping in the first schema of the search path; ours is the only schema
    // the app is sure to own in Lakebase (no CREATE on `public` since PostgreSQL 15).
    let mut options = config.connect.clone().options([("search_path", SCHEMA)]);
    let mut rotation = None;
    if let Some(passwords) = passwords {
        let ssl_mode = lakebase_ssl_mode(options.get_ssl_mode(), config.tls_verify);
        options = options.ssl_mode(ssl_mode);
        let (started, with_password, expires) = credentials::PasswordRotation::start(passwords, options).await?;
        options = with_password;
        rotation = Some((started, expires));
    }
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(1)
        .acquire_timeout(config.acquire_timeout)
        // Re-check connections that sat idle, so a database restart does not hand out dead ones.
        .test_before_acquire(true)
        .idle_timeout(Duration::from_secs(300))
        .max_lifetime(Duration::from_secs(1800))
        .connect_lazy_with(options);
    let rotating = rotation.is_some();
    if let Some((rotation, expires)) = rotation {
        rotation.spawn(pool.clone(), expires, refusals.clone());
    }
    wait_until_reachable(&pool, rotating, refusals).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// TLS for a connection that sends a Lakebase credential: `prefer` and `require` (what Databricks Apps injects)
/// encrypt without checking the certificate, so they become `verify-full`, making sure the bearer credential only
/// reaches the server named in PGHOST. An explicit `verify-ca`/`verify-full`/`disable`/`allow` is kept, and so is
/// everything when verification is turned off (`DATABASE_TLS_VERIFY=false`).
fn lakebase_ssl_mode(configured: PgSslMode, verify: bool) -> PgSslMode {
    match configured {
        PgSslMode::Prefer | PgSslMode::Require if verify => PgSslMode::VerifyFull,
        other => other,
    }
}

async fn wait_until_reachable(
    pool: &PgPool,
    rotating_password: bool,
    refusals: &PasswordRefusals,
) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        match pool.acquire().await {
            Ok(_) => return Ok(()),
            Err(error) if credentials::is_auth_failure(&error) && !rotating_password => {
                return Err(error).context("PostgreSQL refused the password; check PGPASSWORD or DATABASE_URL");
            }
            // A refused Lakebase password (28P01) also counts: the rotation, told, mints a new one.
            Err(error) if started.elapsed() < STARTUP_CONNECT_DEADLINE && crate::error::is_connection_error(&error) => {
                refusals.observe(&error);
                tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                return Err(error).context("cannot connect to PostgreSQL; check DATABASE_URL or the PG* variables");
            }
        }
    }
}

/// Creates the `chat` schema and applies pending migrations, holding an advisory lock so that instances
/// starting at the same moment take turns (sqlx's own lock is taken only after it creates its table).
///
/// The lock is polled rather than waited for: an index built concurrently waits for every transaction open when it
/// starts, and a statement blocked in `pg_advisory_lock` is one, which the index would wait for while it waits for
/// the lock: a deadlock. Each poll is a transaction of its own that ends at once.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await.context("acquiring a connection for migrations")?;
    while !sqlx::query_scalar!("select pg_try_advisory_lock($1) as \"locked!\"", MIGRATION_LOCK_KEY)
        .fetch_one(&mut *conn)
        .await?
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = async {
        sqlx::query!("create schema if not exists chat").execute(&mut *conn).await.map_err(explain_privileges)?;
        drop_unfinished_indexes(&mut conn).await?;
        MIGRATOR.run(&mut *conn).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(db) => explain_privileges(db),
            other => anyhow::Error::new(other),
        })
    }
    .await;
    sqlx::query!("select pg_advisory_unlock($1)", MIGRATION_LOCK_KEY).fetch_one(&mut *conn).await?;
    result.context("applying database migrations")
}

/// Drops the indexes a concurrent build left unfinished (a process that died during it, or a build a deadlock ended):
/// PostgreSQL keeps such an index, invalid, and `create index concurrently if not exists` would then take it for
/// done. The migration that builds it was not recorded, so it runs again next and builds it whole. Called with the
/// migration lock held: no other process is building one.
async fn drop_unfinished_indexes(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let unfinished = sqlx::query_scalar!(
        // language=PostgreSQL
        r#"
        select c.relname as "name!"
        from pg_index i
        join pg_class c on c.oid = i.indexrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'chat' and not i.indisvalid
        "#
    )
    .fetch_all(&mut *conn)
    .await?;
    for name in unfinished {
        tracing::warn!(index = %name, "dropping an index whose concurrent build did not finish; it is built again");
        // An identifier cannot be a bind parameter; the name comes from the catalog and is quoted.
        let statement = format!("drop index concurrently if exists chat.\"{}\"", name.replace('"', "\"\""));
        sqlx::raw_sql(&statement).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Adds the fix to "permission denied": the classic Lakebase pitfall is a `chat` schema created by a person
/// (e.g. in the SQL editor) instead of by the app's service principal.
fn explain_privileges(error: sqlx::Error) -> anyhow::Error {
    let denied = matches!(&error, sqlx::Error::Database(db) if db.code().as_deref() == Some("42501"));
    let error = anyhow::Error::new(error);
    if denied {
        error.context(
            "the app's database role may not create or change the `chat` schema. The role that runs the app must \
             own it: as its current owner run `ALTER SCHEMA chat OWNER TO \"<app role>\"` (the app role is PGUSER, \
             the service principal's client id), or drop the schema and let the app create it",
        )
    } else {
        error
    }
}

/// Creates the configured database if it does not exist (local development only).
async fn ensure_database_exists(options: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    match options.connect().await {
        Ok(conn) => return conn.close().await.context("closing probe connection"),
        // 3D000 invalid_catalog_name: the database does not exist yet.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("3D000") => {}
        Err(error) => {
            return Err(error).context(format!(
                "cannot connect to the local PostgreSQL at {}:{} as `{}`; start PostgreSQL or set DATABASE_URL",
                options.get_host(),
                options.get_port(),
                options.get_username()
            ));
        }
    }
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("connecting to the `postgres` database to create the app's database")?;
    // An identifier cannot be a bind parameter, so this one statement is built as text; the name is quoted.
    let statement = format!("create database \"{}\"", name.replace('"', "\"\""));
    match sqlx::raw_sql(&statement).execute(&mut admin).await {
        Ok(_) => tracing::info!(database = %name, "created the local database"),
        // 42P04 duplicate_database: another instance created it first.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
        Err(error) => return Err(error).context(format!("creating database `{name}`")),
    }
    admin.close().await.ok();
    Ok(())
}

/// Whether the database answers a trivial query (for `GET /api/health`).
pub async fn ping(pool: &PgPool) -> bool {
    let probe = async {
        let mut conn = pool.acquire().await?;
        conn.ping().await
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), probe).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgSslMode;

    use super::lakebase_ssl_mode;

    #[test]
    fn lakebase_credentials_only_travel_over_verified_tls() {
        assert!(matches!(lakebase_ssl_mode(PgSslMode::Require, true), PgSslMode::VerifyFull));
        assert!(matches!(lakebase_ssl_mode(PgSslMode::Prefer, true), PgSslMode::VerifyFull));
        assert!(matches!(lakebase_ssl_mode(PgSslMode::VerifyCa, true), PgSslMode::VerifyCa));
        assert!(matches!(lakebase_ssl_mode(PgSslMode::Disable, true), PgSslMode::Disable));
        assert!(matches!(lakebase_ssl_mode(PgSslMode::Require, false), PgSslMode::Require));
    }
}
