//! Turn benchmarks. The fake model runs in this process and stamps each token with the moment it sends it;
//! the clients (also here) compare that with the moment the token arrives through the server, so the figure is
//! the latency the server adds (plus two loopback hops), measured on one clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use eventsource_stream::Eventsource;
use fake_databricks::{FakeConfig, FakeWorkspace, clock};
use futures::StreamExt;
use shared::UiChunk;
use tokio::sync::Mutex;

use crate::report::Latencies;
use crate::server_process::{BenchDatabase, ServerProcess, Target, cpu_seconds, postgres_cpu_seconds};

const USER: &str = "bench@example.com";

/// Options shared by the turn benchmarks.
#[derive(clap::Args, Clone)]
pub struct Common {
    #[command(flatten)]
    target: Target,
    /// Server pool size.
    #[arg(long, default_value_t = 32)]
    db_connections: u32,
    /// Reach the fake model over HTTP/1.1, one connection per turn, instead of one multiplexed HTTP/2
    /// connection (what a Databricks endpoint negotiates over TLS).
    #[arg(long)]
    upstream_http1: bool,
    /// Let the server title each new chat with the same model (the app's default): the title arrives while the
    /// answer streams, and the report counts any token a client received twice.
    #[arg(long)]
    titles: bool,
    /// Also stream the same load from an agent (an MLflow AgentServer app speaking the Responses API, named in
    /// CHAT_AGENTS) after the chat-completions load, on the same server: the two reports side by side.
    #[arg(long)]
    agent: bool,
    /// Keep the per-user turn limits on (set too high to refuse anything), to measure what checking them costs:
    /// they are off by default here, where one load-generator user stands for many people.
    #[arg(long)]
    limits: bool,
}

/// The agent's id in the benchmarks (an app of the fake workspace).
const AGENT: &str = "bench-agent";

/// Options of `stream-latency`.
#[derive(clap::Args)]
pub struct StreamArgs {
    #[command(flatten)]
    common: Common,
    /// Turns streaming at the same time.
    #[arg(long, default_value_t = 1000)]
    concurrency: usize,
    /// Tokens per answer.
    #[arg(long, default_value_t = 500)]
    tokens: usize,
    /// Pause before each token, in ms.
    #[arg(long, default_value_t = 20)]
    delay_ms: u64,
    /// Seconds over which the turns are started.
    #[arg(long, default_value_t = 5.0)]
    ramp_secs: f64,
}

/// Options of `short-turns`.
#[derive(clap::Args)]
pub struct ShortArgs {
    #[command(flatten)]
    common: Common,
    /// Clients sending turns back to back.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Tokens per answer.
    #[arg(long, default_value_t = 20)]
    tokens: usize,
    /// Measured seconds (after a warm-up of a fifth of it).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

/// A fake model, a fresh database and the server, wired together.
struct Bench {
    _fake: FakeWorkspace,
    server: ServerProcess,
    database: Option<BenchDatabase>,
    client: reqwest::Client,
}

impl Bench {
    async fn start(common: &Common) -> anyhow::Result<Self> {
        let fake = FakeWorkspace::start_with(FakeConfig { token_delay: Duration::ZERO, record_requests: false }).await;
        let database = BenchDatabase::create(&common.target.admin_url).await?;
        let env = [
            ("LLM_BASE_URL", fake.serving_base_url()),
            ("DATABRICKS_SERVING_ENDPOINT", "bench-model".to_owned()),
            ("TITLE_GENERATION", common.titles.to_string()),
            ("DATABASE_MAX_CONNECTIONS", common.db_connections.to_string()),
            ("LLM_HTTP2_PRIOR_KNOWLEDGE", (!common.upstream_http1).to_string()),
            ("CHAT_AGENTS", format!("{AGENT}={}/apps/{AGENT}", fake.url())),
        ];
        let limits =
            [("TURNS_PER_MINUTE", "1000000".to_owned()), ("MAX_CONCURRENT_TURNS_PER_USER", "100000".to_owned())];
        let env: Vec<_> = env.into_iter().chain(limits.into_iter().filter(|_| common.limits)).collect();
        let server = ServerProcess::start(&common.target.server_bin, &database.url, &env)?;
        let client = reqwest::Client::builder().pool_max_idle_per_host(4096).build()?;
        Ok(Self { _fake: fake, server, database: Some(database), client })
    }

    async fn finish(mut self) -> anyhow::Result<()> {
        drop(self.server);
        if let Some(database) = self.database.take() {
            database.drop_database().await?;
        }
        Ok(())
    }
}

/// What one turn observed.
#[derive(Default)]
pub(crate) struct TurnObservation {
    /// Request sent → first text token received.
    ttft: Option<Duration>,
    /// Per token: arrival − emission, in µs.
    pub(crate) added_micros: Vec<u64>,
    /// Per token: arrival time (µs of the shared clock).
    arrivals: Vec<u64>,
    pub(crate) tokens: usize,
    /// Tokens received again (a stamp or numbered word not after the previous one).
    duplicated: usize,
    pub(crate) completed: bool,
}

/// The order of a token of the fake's answer: its stamp (microseconds, increasing) or the N of `wN`.
fn token_order(word: &str) -> Option<u64> {
    word.parse::<u64>().ok().or_else(|| word.strip_prefix('w')?.parse().ok())
}

/// Sends one turn (to the default model, or to `model`) and reads it to the end.
pub(crate) async fn run_turn(
    client: &reqwest::Client,
    base_url: &str,
    message: &str,
    model: Option<&str>,
) -> anyhow::Result<TurnObservation> {
    let chat_id = uuid::Uuid::new_v4();
    let started = Instant::now();
    let mut body = serde_json::json!({"id": chat_id, "message": message});
    if let Some(model) = model {
        body["model"] = serde_json::json!(model);
    }
    let response =
        client.post(format!("{base_url}/api/chat")).header("x-forwarded-email", USER).json(&body).send().await?;
    ensure!(response.status().is_success(), "POST /api/chat answered {}", response.status());
    let mut events = response.bytes_stream().eventsource();
    let mut observation = TurnObservation::default();
    let mut last_order: Option<u64> = None;
    while let Some(event) = events.next().await {
        let event = event.context("reading the stream")?;
        if event.data == "[DONE]" {
            break;
        }
        match serde_json::from_str::<UiChunk>(&event.data) {
            Ok(UiChunk::TextDelta { delta, .. }) => {
                let now = clock::micros();
                observation.ttft.get_or_insert_with(|| started.elapsed());
                observation.tokens += 1;
                for order in delta.split_whitespace().filter_map(token_order) {
                    if last_order.is_some_and(|last| order <= last) {
                        observation.duplicated += 1;
                    }
                    last_order = last_order.max(Some(order));
                }
                if let Ok(stamp) = delta.trim().parse::<u64>() {
                    observation.added_micros.push(now.saturating_sub(stamp));
                    observation.arrivals.push(now);
                }
            }
            Ok(UiChunk::Finish { message_metadata }) => {
                observation.completed =
                    message_metadata.and_then(|m| m.status) == Some(shared::MessageStatus::Complete);
            }
            _ => {}
        }
    }
    Ok(observation)
}

/// `stream-latency`: the chat-completions load, and with `--agent` the same load from an agent after it.
pub async fn stream_latency(args: StreamArgs) -> anyhow::Result<()> {
    let bench = Bench::start(&args.common).await?;
    let mut duplicated = stream_load(&bench, &args, None).await?;
    if args.common.agent {
        println!();
        println!("### The same load from an agent (Responses API, MLflow AgentServer app)");
        println!();
        duplicated += stream_load(&bench, &args, Some(AGENT)).await?;
    }
    bench.finish().await?;
    ensure!(duplicated == 0, "clients received {duplicated} tokens twice");
    Ok(())
}

/// One `stream-latency` load against the running bench; returns the tokens clients received twice.
async fn stream_load(bench: &Bench, args: &StreamArgs, model: Option<&str>) -> anyhow::Result<usize> {
    let base_url = bench.server.base_url.clone();
    // Warm up: connections, prepared statements, allocator.
    for _ in 0..20 {
        run_turn(&bench.client, &base_url, "[[fake tokens=20 delay_ms=1]]", model).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline_kib = bench.server.rss_kib().context("reading the server's RSS")?;
    let message = format!("[[fake tokens={} delay_ms={} stamp=1]]", args.tokens, args.delay_ms);
    let peak_kib = Arc::new(AtomicU64::new(baseline_kib));
    let sampler = {
        let peak_kib = peak_kib.clone();
        let pid = bench.server.pid();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(rss) = crate::server_process::rss_kib(pid) {
                    peak_kib.fetch_max(rss, Ordering::Relaxed);
                }
            }
        })
    };
    let observations = Arc::new(Mutex::new(Vec::with_capacity(args.concurrency)));
    let errors = Arc::new(AtomicUsize::new(0));
    let cpu = CpuMeter::start(&bench.server);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.concurrency);
    for index in 0..args.concurrency {
        let start_at = started + Duration::from_secs_f64(args.ramp_secs * index as f64 / args.concurrency as f64);
        let (client, base_url, message) = (bench.client.clone(), bench.server.base_url.clone(), message.clone());
        let (observations, errors) = (observations.clone(), errors.clone());
        let model = model.map(str::to_owned);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start_at.into()).await;
            match run_turn(&client, &base_url, &message, model.as_deref()).await {
                Ok(observation) => observations.lock().await.push(observation),
                Err(error) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("turn failed: {error:#}");
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    sampler.abort();
    let observations = std::mem::take(&mut *observations.lock().await);
    let relayed: usize = observations.iter().map(|o| o.tokens).sum();
    let cpu = cpu.stop(&bench.server, elapsed, relayed, "relayed token");
    let completed = observations.iter().filter(|o| o.completed && o.tokens == args.tokens).count();
    let added = Latencies::new(
        observations.iter().flat_map(|o| o.added_micros.iter().map(|&m| Duration::from_micros(m))).collect(),
    );
    let first_token_added = Latencies::new(
        observations.iter().filter_map(|o| o.added_micros.first().map(|&m| Duration::from_micros(m))).collect(),
    );
    let ttft = Latencies::new(observations.iter().filter_map(|o| o.ttft).collect());
    let peak = peak_kib.load(Ordering::Relaxed);
    let duplicated: usize = observations.iter().map(|o| o.duplicated).sum();
    println!(
        "{} concurrent turns x {} tokens every {} ms, ramped over {} s, titles {}; {} completed in full, {} failed, \
         {:.1} s; {} tokens received twice",
        args.concurrency,
        args.tokens,
        args.delay_ms,
        args.ramp_secs,
        if args.common.titles { "on" } else { "off" },
        completed,
        errors.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        duplicated
    );
    println!();
    println!("| measure | samples | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    println!("{}", added.row("added latency per token (model sent → client received)"));
    println!("{}", first_token_added.row("added latency of the first token"));
    println!("{}", ttft.row("time to first token (request sent → first token)"));
    println!();
    println!(
        "server RSS: {} KiB idle, {} KiB peak; growth {:.1} KiB per concurrent turn",
        baseline_kib,
        peak,
        (peak.saturating_sub(baseline_kib)) as f64 / args.concurrency as f64
    );
    println!("{cpu}");
    if std::env::var_os("PER_SECOND").is_some() {
        per_second(&observations);
    }
    Ok(duplicated)
}

/// p99 of the added latency per second of the run, to see whether the tail is steady or comes in bursts.
fn per_second(observations: &[TurnObservation]) {
    let mut buckets: std::collections::BTreeMap<u64, Vec<Duration>> = std::collections::BTreeMap::new();
    for o in observations {
        for (&arrival, &added) in o.arrivals.iter().zip(&o.added_micros) {
            buckets.entry(arrival / 1_000_000).or_default().push(Duration::from_micros(added));
        }
    }
    println!();
    println!("| second | tokens | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (second, samples) in buckets {
        let l = Latencies::new(samples);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {second} | {} | {:.2} | {:.2} | {:.2} |",
            l.len(),
            ms(l.percentile(50.0)),
            ms(l.percentile(99.0)),
            ms(l.percentile(100.0))
        );
    }
}

/// CPU used by the server, PostgreSQL and this process over a run.
struct CpuMeter {
    server: f64,
    postgres: f64,
    own: f64,
}

impl CpuMeter {
    fn start(server: &ServerProcess) -> Self {
        Self {
            server: cpu_seconds(server.pid()).unwrap_or_default(),
            postgres: postgres_cpu_seconds(),
            own: cpu_seconds(std::process::id()).unwrap_or_default(),
        }
    }

    /// The CPU shares over `elapsed`, and the server's CPU time per event (`events` of `unit`, e.g. relayed tokens):
    /// the figure that stays comparable when the machine is busy.
    fn stop(self, server: &ServerProcess, elapsed: Duration, events: usize, unit: &str) -> String {
        let secs = elapsed.as_secs_f64();
        let server_secs = cpu_seconds(server.pid()).unwrap_or_default() - self.server;
        let share = |before: f64, after: f64| (after - before) / secs;
        format!(
            "CPU (cores busy on average): server {:.2}, PostgreSQL {:.2}, load generator + fake model {:.2}; \
             server CPU per {unit}: {:.1} µs",
            server_secs / secs,
            share(self.postgres, postgres_cpu_seconds()),
            share(self.own, cpu_seconds(std::process::id()).unwrap_or_default()),
            server_secs * 1e6 / events.max(1) as f64,
        )
    }
}

/// `short-turns`.
pub async fn short_turns(args: ShortArgs) -> anyhow::Result<()> {
    let bench = Bench::start(&args.common).await?;
    let message = format!("[[fake tokens={}]]", args.tokens);
    let warmup = Duration::from_secs(args.seconds.div_ceil(5));
    let measured = Duration::from_secs(args.seconds);
    let started = Instant::now();
    let measure_from = started + warmup;
    let measure_until = measure_from + measured;
    let completed = Arc::new(AtomicUsize::new(0));
    // Every turn the server ran, warm-up included: what its CPU time is divided by.
    let ran = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let cpu = CpuMeter::start(&bench.server);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (client, base_url, message) = (bench.client.clone(), bench.server.base_url.clone(), message.clone());
        let (completed, ran, failed, latencies) = (completed.clone(), ran.clone(), failed.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < measure_until {
                let turn_started = Instant::now();
                let result = run_turn(&client, &base_url, &message, None).await;
                ran.fetch_add(1, Ordering::Relaxed);
                let in_window = turn_started >= measure_from && Instant::now() <= measure_until;
                match result {
                    Ok(o) if o.completed && in_window => {
                        completed.fetch_add(1, Ordering::Relaxed);
                        latencies.lock().await.push(turn_started.elapsed());
                    }
                    Ok(o) if !o.completed => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("turn failed: {error:#}");
                        }
                    }
                    Ok(_) => {}
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let done = completed.load(Ordering::Relaxed);
    let cpu = cpu.stop(&bench.server, started.elapsed(), ran.load(Ordering::Relaxed), "turn");
    let turn_latency = Latencies::new(std::mem::take(&mut *latencies.lock().await));
    println!(
        "{} clients, {} tokens per answer, no model delay: {} turns completed in {} s = {:.0} turns/s ({} failed)",
        args.clients,
        args.tokens,
        done,
        measured.as_secs(),
        done as f64 / measured.as_secs_f64(),
        failed.load(Ordering::Relaxed)
    );
    println!();
    println!("| measure | samples | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    println!("{}", turn_latency.row("whole turn (request sent → [DONE])"));
    println!();
    println!("{cpu}");
    bench.finish().await
}
