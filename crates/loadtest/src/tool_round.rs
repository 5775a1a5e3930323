//! `tool-round`: the server's own time in a tool round (model → tool → model), against a baseline of plain turns
//! on the same server process.
//!
//! Two closed-loop loads run back to back: (A) plain answers (`[[fake tokens=K]]`, by default as many text tokens
//! as the tool turn's final answer), then (B) turns whose model first calls the built-in tool `current_user`
//! (`[[fake call=current_user]]`) and, given its result, answers `Results: ...`. Tools are on in both (the
//! server's default), so both offer the same tool definitions to the model; only B's model calls one.
//!
//! The key figure is B's *gap*: from the moment the fake model handed the end of its first answer (the tool calls,
//! then `[DONE]`) to its connection, to the moment the fake received the server's second request. In between the
//! server read the end of the stream, stored the step (a checkpoint), ran the tool, built the next request and
//! sent it; so the gap is the server's time in the round plus the tool's own run time plus two loopback hops and
//! the fake's own HTTP handling (all counted against the server: the figure is an upper bound). `current_user`
//! answers from memory; the server's log gives its run time only in whole milliseconds (rounded down), and the
//! report gives the largest it logged.
//!
//! The timestamps come from the fake running in this process: with [`completions::record_timings`] on, it keeps,
//! per streamed answer, when the request arrived and when the stream ended, on the same clock
//! ([`fake_databricks::clock::micros`]) the clients read; each turn's message is unique, so the two model calls of
//! a round are paired by their user text. That needs no new route and no change to the fake's state, only a
//! process-wide list in the fake's completions module.
//!
//! Besides the gap, for both loads: turn wall time (request sent → finish chunk), the server's time before the
//! first model call (request sent → the fake received it) and after the last (the fake ended its stream → the
//! client got the finish chunk), and the server's CPU time (`/proc/<pid>/stat`) per turn and per stream event.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use eventsource_stream::Eventsource;
use fake_databricks::completions::{self, RequestTiming};
use fake_databricks::{FakeConfig, FakeWorkspace, clock};
use futures::StreamExt;
use shared::UiChunk;
use sqlx::{Connection, PgConnection};

use crate::report::Latencies;
use crate::server_process::{BenchDatabase, ServerProcess, Target, cpu_seconds, postgres_cpu_seconds};

const USER: &str = "bench@example.com";

/// Options of `tool-round`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Turns running at the same time (a closed loop: each client sends its next turn when one ends).
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Turns of each load (the baseline and the tool turns), after a warm-up of `concurrency` turns of each.
    #[arg(long, default_value_t = 400)]
    turns: usize,
    /// Pause before each piece the fake model sends (tool-call pieces and text tokens), in ms. A model's pace keeps
    /// the two cores from saturating, so the gap is the server's work rather than a wait for a free core; the
    /// pauses come before pieces, never between the end of the tool calls and `[DONE]`, so they are not in the gap.
    #[arg(long, default_value_t = 20)]
    delay_ms: u64,
    /// Text tokens of a baseline answer; 2 is the tool turn's final answer (`Results:` and the tool's JSON).
    #[arg(long, default_value_t = 2)]
    tokens: usize,
    /// Server pool size.
    #[arg(long, default_value_t = 32)]
    db_connections: u32,
    /// Diagnosis: the bench database commits without waiting for its WAL to reach the disk
    /// (`synchronous_commit = off`), to see how much of the gap is the step's checkpoint waiting for an fsync.
    #[arg(long)]
    synchronous_commit_off: bool,
    /// The claim: server time in a tool round, in ms, that p50 and p95 of the gap must stay within.
    #[arg(long, default_value_t = 2.0)]
    budget_ms: f64,
}

/// Which load a turn belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A plain answer.
    Baseline,
    /// A tool call, the tool's result, then the answer.
    Tool,
}

/// What one turn observed.
#[derive(Default)]
struct Turn {
    /// The turn's message (unique: how the fake's timings are paired with it).
    message: String,
    /// When the request was sent (µs of the shared clock).
    sent_micros: u64,
    /// When the finish chunk arrived (µs of the shared clock).
    finished_micros: u64,
    /// Request sent → finish chunk.
    wall: Duration,
    /// Stream events received (`[DONE]` excluded).
    events: usize,
    /// Finished with status `complete`.
    completed: bool,
    /// The tool's result reached the client and named the user.
    tool_output: bool,
}

/// Sends one turn and reads it to the end.
async fn run_turn(client: &reqwest::Client, base_url: &str, message: String) -> anyhow::Result<Turn> {
    let body = serde_json::json!({"id": uuid::Uuid::new_v4(), "message": message});
    let started = Instant::now();
    let sent_micros = clock::micros();
    let response =
        client.post(format!("{base_url}/api/chat")).header("x-forwarded-email", USER).json(&body).send().await?;
    ensure!(response.status().is_success(), "POST /api/chat answered {}", response.status());
    let mut events = response.bytes_stream().eventsource();
    let mut turn = Turn { message, sent_micros, ..Turn::default() };
    while let Some(event) = events.next().await {
        let event = event.context("reading the stream")?;
        if event.data == "[DONE]" {
            break;
        }
        turn.events += 1;
        match serde_json::from_str::<UiChunk>(&event.data) {
            Ok(UiChunk::ToolOutputAvailable { output, .. }) => {
                turn.tool_output = output["user"] == USER;
            }
            Ok(UiChunk::Finish { message_metadata }) => {
                turn.finished_micros = clock::micros();
                turn.wall = started.elapsed();
                turn.completed = message_metadata.and_then(|m| m.status) == Some(shared::MessageStatus::Complete);
            }
            _ => {}
        }
    }
    Ok(turn)
}

/// The fake, a fresh database and the server, wired together.
struct Bench {
    _fake: FakeWorkspace,
    server: ServerProcess,
    database: Option<BenchDatabase>,
    client: reqwest::Client,
    log_file: std::path::PathBuf,
}

impl Bench {
    async fn start(args: &Args) -> anyhow::Result<Self> {
        let fake = FakeWorkspace::start_with(FakeConfig { token_delay: Duration::ZERO, record_requests: false }).await;
        let database = BenchDatabase::create(&args.target.admin_url).await?;
        if args.synchronous_commit_off {
            // A database default: every session the server opens on it commits without waiting for the flush.
            let mut admin =
                PgConnection::connect(&args.target.admin_url).await.context("connecting with --admin-url")?;
            sqlx::raw_sql(&format!("alter database {} set synchronous_commit = off", database.name))
                .execute(&mut admin)
                .await?;
        }
        let env = [
            ("LLM_BASE_URL", fake.serving_base_url()),
            ("DATABRICKS_SERVING_ENDPOINT", "bench-model".to_owned()),
            ("TITLE_GENERATION", "false".to_owned()),
            ("DATABASE_MAX_CONNECTIONS", args.db_connections.to_string()),
            ("LLM_HTTP2_PRIOR_KNOWLEDGE", "true".to_owned()),
            // Every source (the default), stated so a CHAT_TOOLS in the caller's environment cannot turn tools off.
            ("CHAT_TOOLS", "all".to_owned()),
        ];
        // The log holds each tool call's run time (`elapsed_ms`); read after the run, then removed.
        let log_file = std::env::temp_dir().join(format!("loadtest-tool-round-{}.log", uuid::Uuid::new_v4()));
        let server = ServerProcess::start_logged(&args.target.server_bin, &database.url, &env, Some(&log_file))?;
        let client = reqwest::Client::builder().pool_max_idle_per_host(4096).build()?;
        Ok(Self { _fake: fake, server, database: Some(database), client, log_file })
    }

    async fn finish(mut self) -> anyhow::Result<()> {
        drop(self.server);
        let _ = std::fs::remove_file(&self.log_file);
        if let Some(database) = self.database.take() {
            database.drop_database().await?;
        }
        Ok(())
    }
}

/// What one load observed.
struct Load {
    kind: Kind,
    turns: Vec<Turn>,
    /// The fake's timings of this load's model calls.
    timings: Vec<RequestTiming>,
    failed: usize,
    elapsed: Duration,
    /// Server CPU seconds over the load.
    server_cpu: f64,
    /// PostgreSQL CPU seconds over the load.
    postgres_cpu: f64,
}

/// The message of a turn: the directives, then a tag that makes it unique.
fn message(kind: Kind, args: &Args, tag: &str) -> String {
    match kind {
        Kind::Baseline => format!("[[fake tokens={} delay_ms={}]] {tag}", args.tokens, args.delay_ms),
        Kind::Tool => format!("[[fake call=current_user delay_ms={}]] {tag}", args.delay_ms),
    }
}

/// Runs `count` turns of `kind` from `concurrency` clients in a closed loop.
async fn closed_loop(
    bench: &Bench,
    args: &Args,
    kind: Kind,
    label: &str,
    count: usize,
) -> anyhow::Result<(Vec<Turn>, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let (client, base_url) = (bench.client.clone(), bench.server.base_url.clone());
        let (next, failed) = (next.clone(), failed.clone());
        let template = message(kind, args, "");
        let label = label.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut turns = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    break;
                }
                match run_turn(&client, &base_url, format!("{template}{label}-{index}")).await {
                    Ok(turn) => turns.push(turn),
                    Err(error) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("turn failed: {error:#}");
                        }
                    }
                }
            }
            turns
        }));
    }
    let mut turns = Vec::with_capacity(count);
    for task in tasks {
        turns.extend(task.await?);
    }
    Ok((turns, failed.load(Ordering::Relaxed)))
}

/// One measured load: the turns, the fake's timings of them and the CPU the server and PostgreSQL used.
async fn measure(bench: &Bench, args: &Args, kind: Kind, label: &str) -> anyhow::Result<Load> {
    // Warm-up of this kind (connections, prepared statements, allocator), not measured.
    closed_loop(bench, args, kind, &format!("{label}-warmup"), args.concurrency).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    completions::take_timings();
    let (server_before, postgres_before) =
        (cpu_seconds(bench.server.pid()).unwrap_or_default(), postgres_cpu_seconds());
    let started = Instant::now();
    let (turns, failed) = closed_loop(bench, args, kind, label, args.turns).await?;
    let elapsed = started.elapsed();
    let server_cpu = cpu_seconds(bench.server.pid()).unwrap_or_default() - server_before;
    let postgres_cpu = postgres_cpu_seconds() - postgres_before;
    let timings = completions::take_timings();
    Ok(Load { kind, turns, timings, failed, elapsed, server_cpu, postgres_cpu })
}

/// Figures of one load.
struct Figures {
    wall: Latencies,
    /// Client sent → fake received the first model request.
    before_model: Latencies,
    /// Fake ended the last answer → client got the finish chunk.
    after_model: Latencies,
    /// Fake ended the tool calls → fake received the next request (tool turns only).
    gap: Latencies,
    /// Turns whose model calls the fake did not see as expected (one call, or two for a tool turn).
    unpaired: usize,
    /// Turns that completed (and, for tool turns, whose tool result reached the client).
    ok: usize,
    events: usize,
}

impl Figures {
    fn of(load: &Load) -> Self {
        let mut calls: std::collections::HashMap<&str, Vec<&RequestTiming>> = std::collections::HashMap::new();
        for timing in &load.timings {
            calls.entry(timing.user_text.as_str()).or_default().push(timing);
        }
        let expected = match load.kind {
            Kind::Baseline => 1,
            Kind::Tool => 2,
        };
        let (mut before, mut after, mut gap, mut unpaired) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for turn in &load.turns {
            let Some(mut model_calls) = calls.get(turn.message.as_str()).cloned().filter(|c| c.len() == expected)
            else {
                unpaired += 1;
                continue;
            };
            model_calls.sort_by_key(|timing| timing.received_micros);
            let (first, last) = (model_calls[0], model_calls[expected - 1]);
            before.push(Duration::from_micros(first.received_micros.saturating_sub(turn.sent_micros)));
            after.push(Duration::from_micros(turn.finished_micros.saturating_sub(last.ended_micros)));
            if expected == 2 {
                gap.push(Duration::from_micros(last.received_micros.saturating_sub(first.ended_micros)));
            }
        }
        let ok = load.turns.iter().filter(|t| t.completed && (load.kind == Kind::Baseline || t.tool_output)).count();
        Self {
            wall: Latencies::new(load.turns.iter().map(|t| t.wall).collect()),
            before_model: Latencies::new(before),
            after_model: Latencies::new(after),
            gap: Latencies::new(gap),
            unpaired,
            ok,
            events: load.turns.iter().map(|t| t.events).sum(),
        }
    }
}

/// Milliseconds with two decimals.
fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// A table row: samples, p50, p95, p99, max.
fn row(name: &str, latencies: &Latencies) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} |",
        latencies.len(),
        ms(latencies.percentile(50.0)),
        ms(latencies.percentile(95.0)),
        ms(latencies.percentile(99.0)),
        ms(latencies.percentile(100.0))
    )
}

/// Each `tool call` line's `elapsed_ms` in the server's log.
fn tool_call_millis(log_file: &std::path::Path) -> Vec<u64> {
    let Ok(log) = std::fs::read_to_string(log_file) else { return Vec::new() };
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["message"] == "tool call")
        .filter_map(|event| event["elapsed_ms"].as_u64())
        .collect()
}

/// `tool-round`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.concurrency > 0 && args.turns > 0, "--concurrency and --turns must be at least 1");
    completions::record_timings(true);
    let bench = Bench::start(&args).await?;
    let baseline = measure(&bench, &args, Kind::Baseline, "baseline").await?;
    let tool = measure(&bench, &args, Kind::Tool, "tool").await?;
    let tool_millis = tool_call_millis(&bench.log_file);
    bench.finish().await?;
    completions::record_timings(false);

    let (a, b) = (Figures::of(&baseline), Figures::of(&tool));
    println!(
        "{} turns per load, {} concurrent (closed loop), a pause of {} ms before each piece the model sends; \
         baseline: {} text tokens; tool turn: a call of `current_user`, then `Results: ...`{}",
        args.turns,
        args.concurrency,
        args.delay_ms,
        args.tokens,
        if args.synchronous_commit_off { "; synchronous_commit = off" } else { "" }
    );
    for (name, load, figures) in [("baseline", &baseline, &a), ("tool turns", &tool, &b)] {
        println!(
            "{name}: {} of {} completed{}, {} failed, {} not paired with the fake's model calls, {:.1} s",
            figures.ok,
            args.turns,
            if load.kind == Kind::Tool { " with the tool's result" } else { "" },
            load.failed,
            figures.unpaired,
            load.elapsed.as_secs_f64()
        );
    }
    println!();
    println!("| measure | samples | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    println!("{}", row("**tool round: fake sent the tool calls' end → fake got the next request**", &b.gap));
    println!("{}", row("baseline: whole turn (request sent → finish chunk)", &a.wall));
    println!("{}", row("tool turn: whole turn", &b.wall));
    println!("{}", row("baseline: request sent → fake got the model call", &a.before_model));
    println!("{}", row("tool turn: request sent → fake got the first model call", &b.before_model));
    println!("{}", row("baseline: fake ended the answer → client got the finish chunk", &a.after_model));
    println!("{}", row("tool turn: fake ended the final answer → client got the finish chunk", &b.after_model));
    println!();
    println!(
        "| load | turns | events per turn | server CPU per turn | server CPU per event | PostgreSQL CPU per turn |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, load, figures) in [("baseline", &baseline, &a), ("tool turns", &tool, &b)] {
        let turns = load.turns.len().max(1) as f64;
        println!(
            "| {name} | {} | {:.1} | {:.0} µs | {:.1} µs | {:.0} µs |",
            load.turns.len(),
            figures.events as f64 / turns,
            load.server_cpu * 1e6 / turns,
            load.server_cpu * 1e6 / figures.events.max(1) as f64,
            load.postgres_cpu * 1e6 / turns,
        );
    }
    let per_turn = |load: &Load| load.server_cpu * 1e6 / load.turns.len().max(1) as f64;
    println!();
    println!(
        "server CPU of a tool round (tool turn − baseline, per turn): {:.0} µs; wall-clock share of the cores: \
         baseline {:.2}, tool turns {:.2}",
        per_turn(&tool) - per_turn(&baseline),
        baseline.server_cpu / baseline.elapsed.as_secs_f64(),
        tool.server_cpu / tool.elapsed.as_secs_f64()
    );
    println!(
        "tool's own run time (server log, whole ms; every call of the run, warm-ups included): {} calls, max {} ms",
        tool_millis.len(),
        tool_millis.iter().max().copied().unwrap_or_default()
    );
    let budget = Duration::from_secs_f64(args.budget_ms / 1000.0);
    let (p50, p95) = (b.gap.percentile(50.0), b.gap.percentile(95.0));
    let verdict = |value: Duration| if value <= budget { "within" } else { "OVER" };
    println!(
        "verdict: the tool round's gap is p50 {} ms ({} {} ms), p95 {} ms ({} {} ms)",
        ms(p50),
        verdict(p50),
        args.budget_ms,
        ms(p95),
        verdict(p95),
        args.budget_ms
    );
    ensure!(b.gap.len() > 0, "no tool round was paired with the fake's model calls");
    Ok(())
}
