//! The fault suite (`loadtest faults`): runs the real server binary against PostgreSQL and the fake model under
//! many concurrent turns, injects one fault per scenario (clients leaving, a model that stalls, fails, sends
//! garbage or refuses, PostgreSQL restarting or gone, the server killed or stopped), then checks the database and
//! the API against what the clients were told (see [`invariants`] and [`isolation`]). Prints a summary table
//! and fails when any invariant is broken.

mod client;
mod cluster;
mod invariants;
mod isolation;
mod plan;
mod replicas;
mod scenarios;
mod stage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_databricks::{FakeConfig, FakeWorkspace};

use self::client::{ChatClient, TurnPlan, TurnRecord};
use crate::server_process::Target;

/// Options of `faults`.
#[derive(clap::Args)]
pub struct Args {
    /// `ci` (a few minutes on two cores) or `full` (more turns at once, longer answers).
    #[arg(long, value_enum, default_value_t = ProfileName::Ci)]
    profile: ProfileName,
    /// Run only the scenarios whose name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Seed of every random choice (printed by each run, to repeat it).
    #[arg(long)]
    seed: Option<u64>,
    /// Databases come from `--admin-url`; the PostgreSQL restarts use a private cluster instead.
    #[command(flatten)]
    target: Target,
    /// Keep the database of a scenario that found violations (its name is printed).
    #[arg(long)]
    keep_failed: bool,
    /// Server processes on the one database. More than one: behind HAProxy (round robin per request, HTTP/1.1 and
    /// HTTP/2 cleartext to the replicas), each turn's start, resume and stop sent to different replicas, process
    /// faults on replica 0, and the rolling-restart scenario.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
}

/// Profile names.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ProfileName {
    Ci,
    Full,
}

/// How big the scenarios are.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Turns started together in one wave.
    pub concurrency: usize,
    /// Tokens of an ordinary answer.
    pub tokens: usize,
    /// Pause before each token of an ordinary answer, in ms.
    pub delay_ms: u64,
    /// Tokens of an answer that must outlast a fault of the server or the database.
    pub long_tokens: usize,
    /// Pause before each token of such an answer, in ms.
    pub long_delay_ms: u64,
    /// Turns whose chat every route is asked about by a stranger after each scenario.
    pub isolation_sample: usize,
    /// Server pool size.
    pub db_connections: u32,
    /// How long PostgreSQL is gone in the suspend scenario (Lakebase scaling to zero, or an outage), in seconds.
    pub suspend_secs: u64,
}

impl Profile {
    fn of(name: ProfileName) -> Self {
        match name {
            ProfileName::Ci => Self {
                concurrency: 50,
                tokens: 40,
                delay_ms: 20,
                long_tokens: 160,
                long_delay_ms: 50,
                isolation_sample: 8,
                db_connections: 16,
                suspend_secs: 10,
            },
            ProfileName::Full => Self {
                concurrency: 200,
                tokens: 120,
                delay_ms: 20,
                long_tokens: 300,
                long_delay_ms: 40,
                isolation_sample: 40,
                db_connections: 32,
                suspend_secs: 30,
            },
        }
    }

    /// How long starting a wave is spread over.
    pub fn ramp(&self) -> Duration {
        Duration::from_millis(500 + self.concurrency as u64 * 5)
    }
}

/// What every scenario gets.
pub struct Context {
    /// Sizes.
    pub profile: Profile,
    /// Seed of this scenario's random choices.
    pub seed: u64,
    /// Server processes per stage.
    pub replicas: usize,
    fake: Arc<FakeWorkspace>,
    admin_url: String,
    server_bin: String,
    log_dir: PathBuf,
}

impl Context {
    /// The server settings every stage runs with.
    pub fn timeouts(&self) -> stage::Timeouts {
        stage::Timeouts::default()
    }

    /// A fresh stage for the scenario `name`.
    pub async fn stage(&self, name: &str, private_postgres: bool) -> anyhow::Result<stage::Stage> {
        stage::Stage::start(
            self.fake.clone(),
            stage::StageOptions {
                admin_url: &self.admin_url,
                server_bin: &self.server_bin,
                log_dir: &self.log_dir,
                name,
                private_postgres,
                db_connections: self.profile.db_connections,
                replicas: self.replicas,
            },
            self.timeouts(),
        )
        .await
    }
}

/// The result of one scenario, a row of the summary.
pub struct Outcome {
    /// Scenario name.
    pub name: &'static str,
    /// Turns sent.
    pub turns: usize,
    /// Faults injected (failing model answers, clients leaving, restarts, kills...).
    pub faults: usize,
    /// How the clients' streams ended.
    pub client_outcomes: String,
    /// Broken invariants.
    pub violations: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs the suite; an error when any violation was found.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let profile = Profile::of(args.profile);
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
    });
    let log_dir = std::env::temp_dir().join(format!("chat-faults-{seed}"));
    std::fs::create_dir_all(&log_dir)?;
    let fake =
        Arc::new(FakeWorkspace::start_with(FakeConfig { token_delay: Duration::ZERO, record_requests: false }).await);
    println!(
        "fault suite, profile {:?}: {} turns per wave, {} server process{}, seed {seed} (repeat with --seed {seed}); \
         server logs in {}",
        args.profile,
        profile.concurrency,
        args.replicas,
        if args.replicas == 1 { "" } else { "es behind HAProxy" },
        log_dir.display()
    );
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for (index, scenario) in scenarios::ALL.iter().enumerate() {
        if args.only.as_deref().is_some_and(|only| !scenario.name.contains(only))
            || (scenario.replicas_only && args.replicas < 2)
        {
            continue;
        }
        let context = Context {
            profile: profile.clone(),
            seed: seed.wrapping_add(index as u64 * 1_000_003),
            replicas: args.replicas.max(1),
            fake: fake.clone(),
            admin_url: args.target.admin_url.clone(),
            server_bin: args.target.server_bin.clone(),
            log_dir: log_dir.clone(),
        };
        eprintln!("scenario {} ...", scenario.name);
        let scenario_started = Instant::now();
        let outcome = match (scenario.run)(context, args.keep_failed).await {
            Ok(outcome) => outcome,
            Err(error) => Outcome {
                name: scenario.name,
                turns: 0,
                faults: 0,
                client_outcomes: String::new(),
                violations: vec![format!("the scenario could not run: {error:#}")],
                elapsed: scenario_started.elapsed(),
            },
        };
        eprintln!(
            "scenario {}: {} turns, {} violations, {:.1} s",
            outcome.name,
            outcome.turns,
            outcome.violations.len(),
            outcome.elapsed.as_secs_f64()
        );
        outcomes.push(outcome);
    }
    print_summary(&outcomes, started.elapsed());
    let violations: usize = outcomes.iter().map(|o| o.violations.len()).sum();
    anyhow::ensure!(violations == 0, "{violations} invariant violations (details above; seed {seed})");
    Ok(())
}

fn print_summary(outcomes: &[Outcome], elapsed: Duration) {
    println!();
    println!("| scenario | turns | faults injected | client saw | violations | seconds |");
    println!("|---|---|---|---|---|---|");
    for o in outcomes {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} |",
            o.name,
            o.turns,
            o.faults,
            o.client_outcomes,
            o.violations.len(),
            o.elapsed.as_secs_f64()
        );
    }
    let turns: usize = outcomes.iter().map(|o| o.turns).sum();
    let faults: usize = outcomes.iter().map(|o| o.faults).sum();
    let violations: usize = outcomes.iter().map(|o| o.violations.len()).sum();
    println!("| **total** | {turns} | {faults} | | {violations} | {:.1} |", elapsed.as_secs_f64());
    for o in outcomes.iter().filter(|o| !o.violations.is_empty()) {
        println!();
        println!("{}: {} violations", o.name, o.violations.len());
        for violation in o.violations.iter().take(25) {
            println!("  - {violation}");
        }
        if o.violations.len() > 25 {
            println!("  - ... and {} more", o.violations.len() - 25);
        }
    }
}

/// Starts every plan (spread over `ramp`) and collects the records when all have ended.
pub fn spawn_wave(
    client: ChatClient,
    plans: Vec<TurnPlan>,
    ramp: Duration,
) -> tokio::task::JoinHandle<Vec<TurnRecord>> {
    tokio::spawn(async move {
        let count = plans.len().max(1);
        let started = tokio::time::Instant::now();
        let tasks: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(index, plan)| {
                let client = client.clone();
                let start_at = started + ramp.mul_f64(index as f64 / count as f64);
                tokio::spawn(async move {
                    tokio::time::sleep_until(start_at).await;
                    client.run_turn(plan).await
                })
            })
            .collect();
        let mut records = Vec::with_capacity(tasks.len());
        for task in tasks {
            if let Ok(record) = task.await {
                records.push(record);
            }
        }
        records
    })
}

/// Runs a wave to its end.
pub async fn run_wave(client: &ChatClient, plans: Vec<TurnPlan>, ramp: Duration) -> Vec<TurnRecord> {
    spawn_wave(client.clone(), plans, ramp).await.unwrap_or_default()
}
