//! The soak benchmark (`loadtest soak`): a steady closed loop of concurrent turns for many minutes (each virtual
//! client starts its next turn when one ends), sampled per minute: the server's memory, file descriptors and TCP
//! connections, its database connections, completed turns, time to first token and inter-token latency. Ends
//! with a verdict on whether memory, connections and the tail latency stay flat.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use fake_databricks::{FakeConfig, FakeWorkspace, clock};
use futures::StreamExt;
use shared::{MessageStatus, UiChunk};
use sqlx::postgres::PgPoolOptions;

use crate::report::Latencies;
use crate::server_process::{BenchDatabase, ServerProcess, Target, cpu_seconds, rss_kib};

/// Options of `soak`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Server pool size.
    #[arg(long, default_value_t = 32)]
    db_connections: u32,
    /// Minutes to run.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Virtual clients, each with one turn streaming at a time.
    #[arg(long, default_value_t = 300)]
    clients: usize,
    /// Tokens per answer.
    #[arg(long, default_value_t = 200)]
    tokens: usize,
    /// Pause before each token, in ms.
    #[arg(long, default_value_t = 5)]
    delay_ms: u64,
    /// Turns a client sends in one chat before starting a new chat (the history sent to the model grows).
    #[arg(long, default_value_t = 10)]
    turns_per_chat: usize,
    /// Allowed change between the second and the last minute for the verdict, in percent.
    #[arg(long, default_value_t = 15.0)]
    tolerance_percent: f64,
}

const USERS: usize = 20;

/// What the clients measured during one minute (turns are counted in the minute they end).
#[derive(Default)]
struct Bucket {
    completed: usize,
    errors: usize,
    ttft: Vec<Duration>,
    gaps_micros: Vec<u32>,
    added_micros: Vec<u32>,
}

/// One row of the table.
struct Minute {
    index: u64,
    completed: usize,
    errors: usize,
    ttft_p50: Duration,
    ttft_p99: Duration,
    gap_p99: Duration,
    added_p99: Duration,
    rss_kib: u64,
    fds: usize,
    tcp: usize,
    db_connections: i64,
    server_cpu: f64,
    /// The machine's 1-minute load average: shows whether something else competed for the cores.
    load_average: f64,
}

/// Runs the soak and prints the table and the verdict.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let fake = FakeWorkspace::start_with(FakeConfig { token_delay: Duration::ZERO, record_requests: false }).await;
    let database = BenchDatabase::create(&args.target.admin_url).await?;
    let env = [
        ("LLM_BASE_URL", fake.serving_base_url()),
        ("DATABRICKS_SERVING_ENDPOINT", "soak-model".to_owned()),
        ("TITLE_GENERATION", "false".to_owned()),
        ("DATABASE_MAX_CONNECTIONS", args.db_connections.to_string()),
        ("LLM_HTTP2_PRIOR_KNOWLEDGE", "true".to_owned()),
        // Finished event logs are deleted after a minute, so the purge runs (every 5 minutes) within the soak.
        ("STREAM_RETENTION_SECS", "60".to_owned()),
    ];
    let server = ServerProcess::start(&args.target.server_bin, &database.url, &env)?;
    let result = soak(&args, &server, &database).await;
    drop(server);
    database.drop_database().await?;
    drop(fake);
    result
}

async fn soak(args: &Args, server: &ServerProcess, database: &BenchDatabase) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.clients * 2).build()?;
    let bucket = Arc::new(Mutex::new(Bucket::default()));
    let running = Arc::new(AtomicBool::new(true));
    let message = format!("[[fake tokens={} delay_ms={} stamp=1]]", args.tokens, args.delay_ms);
    let started = Instant::now();
    let mut clients = Vec::with_capacity(args.clients);
    for index in 0..args.clients {
        let (client, bucket, running) = (client.clone(), bucket.clone(), running.clone());
        let (base_url, message, turns_per_chat) = (server.base_url.clone(), message.clone(), args.turns_per_chat);
        // Spread the first turns over five seconds so the loop does not start as one burst.
        let first = Duration::from_millis(5000 * index as u64 / args.clients as u64);
        clients.push(tokio::spawn(async move {
            tokio::time::sleep(first).await;
            let user = format!("soak-{}@example.com", index % USERS);
            let mut chat_id = uuid::Uuid::new_v4();
            let mut turns_in_chat = 0;
            while running.load(Ordering::Relaxed) {
                if turns_in_chat == turns_per_chat {
                    chat_id = uuid::Uuid::new_v4();
                    turns_in_chat = 0;
                }
                turns_in_chat += 1;
                let outcome = one_turn(&client, &base_url, &user, chat_id, &message).await;
                let failed = outcome.is_err();
                if let Ok(mut bucket) = bucket.lock() {
                    match outcome {
                        Ok(turn) => {
                            bucket.completed += 1;
                            bucket.ttft.extend(turn.ttft);
                            bucket.gaps_micros.extend(turn.gaps_micros);
                            bucket.added_micros.extend(turn.added_micros);
                        }
                        Err(_) => bucket.errors += 1,
                    }
                }
                if failed {
                    // A new chat, in case the failure left this one busy; and no hot loop against a failing server.
                    chat_id = uuid::Uuid::new_v4();
                    turns_in_chat = 0;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }
    let checker = PgPoolOptions::new().max_connections(1).connect(&database.url).await?;
    let mut minutes = Vec::new();
    let mut cpu_before = cpu_seconds(server.pid()).unwrap_or_default();
    println!(
        "soak: {} clients in a closed loop, {} tokens every {} ms, {} turns per chat, {} minutes",
        args.clients, args.tokens, args.delay_ms, args.turns_per_chat, args.minutes
    );
    println!();
    println!(
        "| minute | turns completed | errors | TTFT p50 ms | TTFT p99 ms | inter-token p99 ms | added p99 ms | server RSS MiB | fds | TCP conns | DB conns | server CPU | load avg |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for index in 1..=args.minutes {
        tokio::time::sleep_until((started + Duration::from_secs(60 * index)).into()).await;
        let taken = bucket.lock().map(|mut b| std::mem::take(&mut *b)).unwrap_or_default();
        let cpu_now = cpu_seconds(server.pid()).unwrap_or_default();
        let db_connections: i64 =
            sqlx::query_scalar("select count(*) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()")
                .bind(&database.name)
                .fetch_one(&checker)
                .await
                .unwrap_or(-1);
        let pid = server.pid();
        let to_duration =
            |micros: Vec<u32>| Latencies::new(micros.into_iter().map(|m| Duration::from_micros(m.into())).collect());
        let ttft = Latencies::new(taken.ttft);
        let minute = Minute {
            index,
            completed: taken.completed,
            errors: taken.errors,
            ttft_p50: ttft.percentile(50.0),
            ttft_p99: ttft.percentile(99.0),
            gap_p99: to_duration(taken.gaps_micros).percentile(99.0),
            added_p99: to_duration(taken.added_micros).percentile(99.0),
            rss_kib: rss_kib(pid).unwrap_or_default(),
            fds: open_fds(pid),
            tcp: tcp_connections(pid),
            db_connections,
            server_cpu: (cpu_now - cpu_before) / 60.0,
            load_average: load_average(),
        };
        cpu_before = cpu_now;
        print_row(&minute);
        minutes.push(minute);
    }
    running.store(false, Ordering::Relaxed);
    for client in clients {
        let _ = client.await;
    }
    checker.close().await;
    print_verdict(&minutes, args.tolerance_percent);
    Ok(())
}

fn print_row(m: &Minute) {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {:.2} | {:.1} |",
        m.index,
        m.completed,
        m.errors,
        ms(m.ttft_p50),
        ms(m.ttft_p99),
        ms(m.gap_p99),
        ms(m.added_p99),
        m.rss_kib as f64 / 1024.0,
        m.fds,
        m.tcp,
        m.db_connections,
        m.server_cpu,
        m.load_average
    );
}

/// Compares the last minute with the second (the first includes the ramp and the allocator's growth).
fn print_verdict(minutes: &[Minute], tolerance: f64) {
    let (Some(reference), Some(last)) = (minutes.get(1), minutes.last()) else {
        println!("\nverdict: too short to judge (needs at least two minutes)");
        return;
    };
    // (name, minute 2, last minute, whether a rise is the bad direction): falling memory or latency, or rising
    // throughput, is the machine getting quieter, not the server degrading.
    let checks = [
        ("server RSS", reference.rss_kib as f64, last.rss_kib as f64, true),
        ("open file descriptors", reference.fds as f64, last.fds as f64, true),
        ("TCP connections", reference.tcp as f64, last.tcp as f64, true),
        ("database connections", reference.db_connections as f64, last.db_connections as f64, true),
        ("turns completed per minute", reference.completed as f64, last.completed as f64, false),
        ("TTFT p99", reference.ttft_p99.as_secs_f64() * 1000.0, last.ttft_p99.as_secs_f64() * 1000.0, true),
        ("inter-token p99", reference.gap_p99.as_secs_f64() * 1000.0, last.gap_p99.as_secs_f64() * 1000.0, true),
    ];
    println!();
    println!("verdict (minute {} against minute 2, tolerance {tolerance:.0} %):", last.index);
    let mut flat = true;
    for (name, before, after, rise_is_bad) in checks {
        let change = if before == 0.0 { 0.0 } else { (after - before) / before * 100.0 };
        let worse = if rise_is_bad { change > tolerance } else { change < -tolerance };
        let judgement = match (worse, change.abs() <= tolerance) {
            (true, _) => "WORSE",
            (false, true) => "flat",
            (false, false) => "better",
        };
        flat &= !worse;
        println!("- {name}: {before:.1} → {after:.1} ({change:+.1} %): {judgement}");
    }
    let errors: usize = minutes.iter().map(|m| m.errors).sum();
    println!("- errors over the run: {errors}");
    println!("overall: {}", if flat && errors == 0 { "steady" } else { "NOT steady (see above)" });
}

/// What one turn measured.
struct TurnMeasures {
    ttft: Option<Duration>,
    gaps_micros: Vec<u32>,
    added_micros: Vec<u32>,
}

async fn one_turn(
    client: &reqwest::Client,
    base_url: &str,
    user: &str,
    chat_id: uuid::Uuid,
    message: &str,
) -> anyhow::Result<TurnMeasures> {
    let sent = Instant::now();
    let response = client
        .post(format!("{base_url}/api/chat"))
        .header("x-forwarded-email", user)
        .json(&serde_json::json!({"id": chat_id, "message": message}))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "POST /api/chat answered {}", response.status());
    let mut events = response.bytes_stream().eventsource();
    let mut measures = TurnMeasures { ttft: None, gaps_micros: Vec::new(), added_micros: Vec::new() };
    let mut previous: Option<Instant> = None;
    let mut status = None;
    while let Some(event) = events.next().await {
        let event = event?;
        if event.data == shared::DONE_SENTINEL {
            break;
        }
        match serde_json::from_str::<UiChunk>(&event.data) {
            Ok(UiChunk::TextDelta { delta, .. }) => {
                let now = Instant::now();
                let now_micros = clock::micros();
                measures.ttft.get_or_insert_with(|| sent.elapsed());
                if let Some(previous) = previous {
                    measures.gaps_micros.push(now.duration_since(previous).as_micros().min(u32::MAX as u128) as u32);
                }
                previous = Some(now);
                if let Ok(stamp) = delta.trim().parse::<u64>() {
                    measures.added_micros.push(now_micros.saturating_sub(stamp).min(u64::from(u32::MAX)) as u32);
                }
            }
            Ok(UiChunk::Finish { message_metadata }) => status = message_metadata.and_then(|m| m.status),
            _ => {}
        }
    }
    anyhow::ensure!(status == Some(MessageStatus::Complete), "the turn ended {status:?}");
    Ok(measures)
}

/// Open file descriptors of a process (Linux).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|entries| entries.count()).unwrap_or(0)
}

/// TCP sockets of a process: its socket descriptors that appear in the kernel's TCP tables (Linux).
fn tcp_connections(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    let inodes: HashSet<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']')).map(str::to_owned)
        })
        .collect();
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| line.split_whitespace().nth(9).map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .filter(|inode| inodes.contains(inode))
        .count()
}

/// The machine's 1-minute load average (Linux).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(-1.0)
}
