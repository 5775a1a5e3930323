//! The scenarios, in the order they run, and how each one is concluded: wait for the turns to settle, check
//! the invariants and isolation, drop the stage.

mod clients;
mod database;
mod model;
mod process;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;

use super::client::{TurnPlan, TurnRecord};
use super::invariants::{self, TextRule};
use super::isolation::{self, Prober};
use super::stage::Stage;
use super::{Context, Outcome};

/// A named scenario.
pub struct Scenario {
    /// Name in the summary (and `--only`).
    pub name: &'static str,
    /// Runs it; the flag keeps the database when it finds violations.
    pub run: fn(Context, bool) -> LocalBoxFuture<'static, anyhow::Result<Outcome>>,
    /// Runs only with replicas (`--replicas 2` or more).
    pub replicas_only: bool,
}

/// Every scenario.
pub const ALL: &[Scenario] = &[
    Scenario { name: "baseline", run: |c, k| Box::pin(clients::baseline(c, k)), replicas_only: false },
    Scenario { name: "client-disconnects", run: |c, k| Box::pin(clients::disconnects(c, k)), replicas_only: false },
    Scenario { name: "model-stalls", run: |c, k| Box::pin(model::stalls(c, k)), replicas_only: false },
    Scenario {
        name: "model-errors-mid-stream",
        run: |c, k| Box::pin(model::errors_mid_stream(c, k)),
        replicas_only: false,
    },
    Scenario {
        name: "model-malformed-chunks",
        run: |c, k| Box::pin(model::malformed_chunks(c, k)),
        replicas_only: false,
    },
    Scenario { name: "model-429-retry-after", run: |c, k| Box::pin(model::rate_limited(c, k)), replicas_only: false },
    Scenario {
        name: "model-500-before-first-token",
        run: |c, k| Box::pin(model::server_errors(c, k)),
        replicas_only: false,
    },
    Scenario { name: "postgres-restart", run: |c, k| Box::pin(database::restart(c, k)), replicas_only: false },
    Scenario { name: "postgres-outage", run: |c, k| Box::pin(database::outage(c, k)), replicas_only: false },
    Scenario { name: "postgres-stall", run: |c, k| Box::pin(database::stall(c, k)), replicas_only: false },
    Scenario { name: "postgres-suspend", run: |c, k| Box::pin(database::suspend(c, k)), replicas_only: false },
    Scenario { name: "server-sigkill", run: |c, k| Box::pin(process::sigkill(c, k)), replicas_only: false },
    Scenario { name: "server-sigterm", run: |c, k| Box::pin(process::sigterm(c, k)), replicas_only: false },
    Scenario { name: "rolling-restart", run: |c, k| Box::pin(process::rolling_restart(c, k)), replicas_only: true },
];

/// Everything a scenario hands to [`conclude`].
pub struct Ending {
    /// Scenario name.
    pub name: &'static str,
    /// When it started.
    pub started: Instant,
    /// What the clients saw.
    pub records: Vec<TurnRecord>,
    /// How stored text relates to received text.
    pub rule: TextRule,
    /// Faults injected.
    pub faults: usize,
    /// Violations the scenario found itself (timing, exit status, isolation while streaming).
    pub violations: Vec<String>,
    /// A measurement worth showing in the summary (e.g. how long the server took to exit).
    pub note: Option<String>,
}

/// Waits for the turns to settle, checks the invariants and isolation, and drops the stage.
pub async fn conclude(stage: Stage, context: &Context, keep_failed: bool, ending: Ending) -> anyhow::Result<Outcome> {
    let Ending { name, started, records, rule, faults, mut violations, note } = ending;
    stage.settle(Duration::from_secs(60)).await?;
    violations.extend(invariants::check(&stage.db, &records, rule).await?);
    violations.extend(
        isolation::check(&stage.client, &stage.db, &records, context.profile.isolation_sample, context.seed).await?,
    );
    if stage.replicas() > 1 {
        let sample = context.profile.isolation_sample;
        violations.extend(super::replicas::check(&stage.client, &records, sample, stage.replicas()).await);
    }
    if !violations.is_empty() {
        eprintln!("{name}: {} violations; server log: {}", violations.len(), stage.log_file().display());
    }
    stage.finish(keep_failed && !violations.is_empty()).await?;
    Ok(Outcome {
        name,
        turns: records.len(),
        faults,
        client_outcomes: match note {
            Some(note) => format!("{}; {note}", invariants::client_outcomes(&records)),
            None => invariants::client_outcomes(&records),
        },
        violations,
        elapsed: started.elapsed(),
    })
}

/// One violation per acknowledged turn in `records` whose client never read its answer's `finish`; `how` says how
/// the client was following it.
pub fn never_saw_the_end<'a>(records: impl IntoIterator<Item = &'a TurnRecord>, how: &str) -> Vec<String> {
    records
        .into_iter()
        .filter(|record| record.acknowledged && !record.saw_end())
        .map(|record| {
            let failure = record.failure.as_deref().unwrap_or("no failure recorded");
            format!("the client of answer {:?} never saw its end {how} ({failure})", record.answer_id)
        })
        .collect()
}

/// Starts a prober on the plans' chats against the stage's current server.
pub fn probe(stage: &Stage, plans: &[TurnPlan], seed: u64) -> (Arc<Mutex<super::client::ChatClient>>, Prober) {
    let shared = Arc::new(Mutex::new(stage.client.clone()));
    let prober = Prober::start(shared.clone(), plans.to_vec(), seed);
    (shared, prober)
}

/// Adds the prober's findings to the violations; returns how many probes ran.
pub async fn finish_probe(prober: Prober, violations: &mut Vec<String>) -> usize {
    let (probes, found) = prober.finish().await;
    violations.extend(found);
    probes
}
