//! `loadtest replicas`: the same closed-loop load against 1, 2 and 3 server processes on one PostgreSQL, always
//! through HAProxy (so the one-replica row pays the same proxy hop), one fresh database per row. Prints per row: turns
//! and tokens per second, the latency the path adds to each token (fake model → server → proxy → client, one clock),
//! whole turns, database transactions per turn and the most connections open, and the CPU each part used, with the
//! servers' CPU per relayed token (the figure that stays comparable on a busy machine).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use fake_databricks::{FakeConfig, FakeWorkspace};
use sqlx::{Connection, PgConnection};
use tokio::sync::Mutex;

use crate::proxy::{Proxy, free_port};
use crate::report::Latencies;
use crate::server_process::{BenchDatabase, ServerProcess, Target, cpu_seconds, postgres_cpu_seconds};
use crate::turns::run_turn;

/// Options of `replicas`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Server processes of each row.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2, 3])]
    counts: Vec<usize>,
    /// Clients sending turns back to back.
    #[arg(long, default_value_t = 48)]
    clients: usize,
    /// Tokens per answer.
    #[arg(long, default_value_t = 40)]
    tokens: usize,
    /// Pause before each token, in ms.
    #[arg(long, default_value_t = 5)]
    delay_ms: u64,
    /// Measured seconds per row (after a warm-up of a fifth of it).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Pool size of each server process.
    #[arg(long, default_value_t = 16)]
    db_connections: u32,
}

/// Runs every row and prints the table.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let fake = FakeWorkspace::start_with(FakeConfig { token_delay: Duration::ZERO, record_requests: false }).await;
    println!(
        "{} clients in a closed loop, {} tokens per answer {} ms apart, {} s measured per row, pool {} per replica",
        args.clients, args.tokens, args.delay_ms, args.seconds, args.db_connections
    );
    println!();
    println!(
        "| replicas | turns/s | tokens/s | added per token p50 / p99 ms | turn p99 ms | failed | DB transactions per turn \
         | DB connections (most) | CPU cores: servers / PostgreSQL / load | server CPU per token µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &count in &args.counts {
        let row = row(&args, &fake, count.max(1)).await?;
        println!("{row}");
    }
    Ok(())
}

async fn row(args: &Args, fake: &FakeWorkspace, count: usize) -> anyhow::Result<String> {
    let database = BenchDatabase::create(&args.target.admin_url).await?;
    let result = measure(args, fake, count, &database).await;
    database.drop_database().await?;
    result
}

async fn measure(args: &Args, fake: &FakeWorkspace, count: usize, database: &BenchDatabase) -> anyhow::Result<String> {
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..count {
        let port = free_port()?;
        let env = [
            ("PORT", port.to_string()),
            ("LLM_BASE_URL", fake.serving_base_url()),
            ("DATABRICKS_SERVING_ENDPOINT", "bench-model".to_owned()),
            ("TITLE_GENERATION", "false".to_owned()),
            ("DATABASE_MAX_CONNECTIONS", args.db_connections.to_string()),
            ("LLM_HTTP2_PRIOR_KNOWLEDGE", "true".to_owned()),
        ];
        servers.push(ServerProcess::start(&args.target.server_bin, &database.url, &env)?);
        ports.push(port);
    }
    let proxy = Proxy::start(&ports)?;
    let base_url = proxy.http1_url.clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(4096).build()?;
    let mut stats = PgConnection::connect(&args.target.admin_url).await.context("connecting for statistics")?;
    let message = format!("[[fake tokens={} delay_ms={} stamp=1]]", args.tokens, args.delay_ms);
    let warmup = Duration::from_secs(args.seconds.div_ceil(5));
    let measured = Duration::from_secs(args.seconds);
    let started = Instant::now();
    let (measure_from, measure_until) = (started + warmup, started + warmup + measured);

    let server_cpu = |servers: &[ServerProcess]| servers.iter().filter_map(|s| cpu_seconds(s.pid())).sum::<f64>();
    let (mut cpu_before, mut pg_before, mut own_before, mut xacts_before) = (0.0, 0.0, 0.0, 0);
    let (completed, ran, failed, tokens) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (added, turns) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (client, base_url, message) = (client.clone(), base_url.clone(), message.clone());
        let (completed, ran, failed, tokens) = (completed.clone(), ran.clone(), failed.clone(), tokens.clone());
        let (added, turns) = (added.clone(), turns.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < measure_until {
                let turn_started = Instant::now();
                let result = run_turn(&client, &base_url, &message, None).await;
                let in_window = turn_started >= measure_from && Instant::now() <= measure_until;
                if turn_started >= measure_from {
                    ran.fetch_add(1, Ordering::Relaxed);
                }
                match result {
                    Ok(turn) if turn.completed => {
                        if in_window {
                            completed.fetch_add(1, Ordering::Relaxed);
                            tokens.fetch_add(turn.tokens, Ordering::Relaxed);
                            turns.lock().await.push(turn_started.elapsed());
                            added.lock().await.extend(turn.added_micros.iter().map(|m| Duration::from_micros(*m)));
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Counters from the start of the measured window; connections sampled through it.
    tokio::time::sleep_until(measure_from.into()).await;
    let mut most_connections = 0i64;
    if Instant::now() < measure_until {
        cpu_before = server_cpu(&servers);
        pg_before = postgres_cpu_seconds();
        own_before = cpu_seconds(std::process::id()).unwrap_or_default();
        xacts_before = transactions(&mut stats, &database.name).await?;
        while Instant::now() < measure_until {
            most_connections = most_connections.max(connections(&mut stats, &database.name).await?);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let window = measured.as_secs_f64();
    let servers_cpu = server_cpu(&servers) - cpu_before;
    let pg_cpu = postgres_cpu_seconds() - pg_before;
    let own_cpu = cpu_seconds(std::process::id()).unwrap_or_default() - own_before;
    let xacts = transactions(&mut stats, &database.name).await? - xacts_before;
    for task in tasks {
        task.await?;
    }
    let (done, relayed) = (completed.load(Ordering::Relaxed), tokens.load(Ordering::Relaxed));
    let started_turns = ran.load(Ordering::Relaxed).max(1);
    let added = Latencies::new(std::mem::take(&mut *added.lock().await));
    let turns = Latencies::new(std::mem::take(&mut *turns.lock().await));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    drop(proxy);
    drop(servers);
    stats.close().await?;
    Ok(format!(
        "| {count} | {:.0} | {:.0} | {:.2} / {:.2} | {:.0} | {} | {:.1} | {most_connections} | {:.2} / {:.2} / {:.2} | {:.1} |",
        done as f64 / window,
        relayed as f64 / window,
        ms(added.percentile(0.50)),
        ms(added.percentile(0.99)),
        ms(turns.percentile(0.99)),
        failed.load(Ordering::Relaxed),
        xacts as f64 / started_turns as f64,
        servers_cpu / window,
        pg_cpu / window,
        own_cpu / window,
        servers_cpu * 1e6 / relayed.max(1) as f64,
    ))
}

/// Transactions committed or rolled back in the database so far (PostgreSQL's statistics, flushed about once a
/// second, so a window of many seconds is what makes the per-turn figure meaningful).
async fn transactions(conn: &mut PgConnection, database: &str) -> anyhow::Result<i64> {
    let total: Option<i64> =
        sqlx::query_scalar("select (xact_commit + xact_rollback)::bigint from pg_stat_database where datname = $1")
            .bind(database)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(total.unwrap_or_default())
}

/// Connections open to the database now.
async fn connections(conn: &mut PgConnection, database: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("select count(*) from pg_stat_activity where datname = $1")
        .bind(database)
        .fetch_one(conn)
        .await?)
}
