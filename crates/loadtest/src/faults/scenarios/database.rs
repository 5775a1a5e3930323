//! Scenarios about PostgreSQL: on a private cluster, restarted twice while answers stream (a clean stop, then a
//! crash), gone for longer than `CHECKPOINT_FAILURE_LIMIT_SECS`, and gone for long (a suspend: every connection
//! dropped) while clients resume elsewhere; and, on the shared server, stalled (a lock
//! holds every write, as a network blackhole or an overloaded database would) for that long. The server must
//! reconnect by itself; an answer whose checkpoints cannot be written ends with `error` and the client is told
//! so within about the limit.

use std::time::{Duration, Instant};

use fake_databricks::scenario::numbered_text;
use shared::MessageStatus;

use super::{Ending, conclude, finish_probe, never_saw_the_end, probe};
use crate::faults::client::{AfterLeaving, Expect, Leave, TurnPlan};
use crate::faults::cluster::StopMode;
use crate::faults::invariants::{TextRule, late_finishes};
use crate::faults::plan::Planner;
use crate::faults::{Context, Outcome, run_wave, spawn_wave};

fn long_turns(planner: &mut Planner, context: &Context, count: usize, expect: &Expect) -> Vec<TurnPlan> {
    let profile = &context.profile;
    (0..count)
        .map(|_| {
            planner.turn(
                &format!("tokens={} delay_ms={}", profile.long_tokens, profile.long_delay_ms),
                &numbered_text(profile.long_tokens),
                |_| expect.clone(),
            )
        })
        .collect()
}

/// PostgreSQL stops (fast) and starts again, then crashes (immediate) and starts again, while long answers
/// stream and new turns arrive. Afterwards new turns in the same chats must complete.
pub async fn restart(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let profile = &context.profile;
    let stage = context.stage("postgres-restart", true).await?;
    let mut planner = Planner::new("pg-restart", context.seed);
    // A short outage stays under the checkpoint failure limit, but a slow restart may not: both endings are fine.
    let expect = Expect::one_of(&[MessageStatus::Complete, MessageStatus::Error]);
    let plans = long_turns(&mut planner, &context, profile.concurrency, &expect);
    let (_, prober) = probe(&stage, &plans, context.seed);
    let wave = spawn_wave(stage.client.clone(), plans.clone(), profile.ramp());
    tokio::time::sleep(profile.ramp() + Duration::from_secs(1)).await;
    let cluster = stage.cluster()?;
    cluster.stop(StopMode::Fast).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.start_server().await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.stop(StopMode::Immediate).await?;
    // Turns sent while the database is down must be refused (503), never acknowledged and lost.
    let late_plans: Vec<TurnPlan> = (0..profile.concurrency / 4)
        .map(|_| {
            let mut plan = planner.healthy(profile.tokens, profile.delay_ms);
            plan.expect = expect.clone();
            plan
        })
        .collect();
    let late = spawn_wave(stage.client.clone(), late_plans, Duration::from_millis(500));
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.start_server().await?;
    let mut records = wave.await?;
    records.extend(late.await?);
    stage.settle(Duration::from_secs(60)).await?;
    let follow_ups: Vec<TurnPlan> = plans.iter().step_by(4).map(|plan| planner.follow_up(plan, 5)).collect();
    records.extend(run_wave(&stage.client, follow_ups, profile.ramp()).await);
    let mut violations = Vec::new();
    finish_probe(prober, &mut violations).await;
    let ending =
        Ending { name: "postgres-restart", started, records, rule: TextRule::Exact, faults: 2, violations, note: None };
    conclude(stage, &context, keep_failed, ending).await
}

/// PostgreSQL is gone for the checkpoint failure limit plus 4 s while long answers stream: they must end with
/// `error`, the client must get its `finish` within twice the limit (plus slack), and the answers must be stored
/// once the database is back.
pub async fn outage(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let profile = &context.profile;
    let timeouts = context.timeouts();
    let stage = context.stage("postgres-outage", true).await?;
    let mut planner = Planner::new("pg-outage", context.seed);
    let plans = long_turns(&mut planner, &context, profile.concurrency, &Expect::one_of(&[MessageStatus::Error]));
    let (_, prober) = probe(&stage, &plans, context.seed);
    let wave = spawn_wave(stage.client.clone(), plans.clone(), profile.ramp());
    tokio::time::sleep(profile.ramp() + Duration::from_secs(1)).await;
    let cluster = stage.cluster()?;
    let limit = Duration::from_secs(timeouts.checkpoint_failure_limit_secs);
    let outage_started = Instant::now();
    cluster.stop(StopMode::Fast).await?;
    tokio::time::sleep(limit + Duration::from_secs(4)).await;
    cluster.start_server().await?;
    let mut records = wave.await?;
    let mut violations = late_finishes(&records, outage_started, told_within(&context));
    let slowest = records
        .iter()
        .filter_map(|r| r.finished_at.map(|at| at.saturating_duration_since(outage_started)))
        .max()
        .unwrap_or_default();
    let note = format!("last finish {:.1} s into the outage (limit {} s)", slowest.as_secs_f64(), limit.as_secs());
    stage.settle(Duration::from_secs(60)).await?;
    let follow_ups: Vec<TurnPlan> = plans.iter().step_by(4).map(|plan| planner.follow_up(plan, 5)).collect();
    records.extend(run_wave(&stage.client, follow_ups, profile.ramp()).await);
    finish_probe(prober, &mut violations).await;
    let ending = Ending {
        name: "postgres-outage",
        started,
        records,
        rule: TextRule::Exact,
        faults: 1,
        violations,
        note: Some(note),
    };
    conclude(stage, &context, keep_failed, ending).await
}

/// PostgreSQL is gone for `suspend_secs` (what a Lakebase compute scaling to zero, or a long outage, does to the app:
/// every connection dropped, the `LISTEN` ones included) while answers stream, and half of their clients have left
/// them. The answers end with `error`, their ends stored once the database is back, and the clients that left
/// resume (through another replica) to that end. Then every process must take turns again (its pool recovered), and
/// answers followed from another replica must arrive as they are written, however notifications fare: each client
/// of a last wave leaves after a few tokens and resumes, and the wave must end within the answers' own time plus 5 s.
pub async fn suspend(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let profile = &context.profile;
    let stage = context.stage("postgres-suspend", true).await?;
    let mut planner = Planner::new("pg-suspend", context.seed);
    let ended = Expect::one_of(&[MessageStatus::Error, MessageStatus::Complete]);
    let mut plans = long_turns(&mut planner, &context, profile.concurrency / 2, &ended);
    for plan in plans.iter_mut().step_by(2) {
        plan.leave = Leave::AfterTokens(3);
        plan.then = AfterLeaving::Nothing;
    }
    let (_, prober) = probe(&stage, &plans, context.seed);
    let wave = spawn_wave(stage.client.clone(), plans.clone(), profile.ramp());
    tokio::time::sleep(profile.ramp() + Duration::from_secs(1)).await;
    let cluster = stage.cluster()?;
    let gone = Duration::from_secs(profile.suspend_secs);
    cluster.stop(StopMode::Fast).await?;
    tokio::time::sleep(gone).await;
    cluster.start_server().await?;
    let mut records = wave.await?;
    let resumed = records.iter().filter(|r| r.left && r.acknowledged).map(|record| {
        let client = stage.client.clone();
        let mut record = record.clone();
        tokio::spawn(async move {
            client.resume_to_end(&mut record).await;
            record
        })
    });
    let resumed: Vec<_> = futures::future::join_all(resumed.collect::<Vec<_>>()).await.into_iter().flatten().collect();
    let mut violations = never_saw_the_end(&resumed, "resuming after the database came back");
    records.retain(|r| !(r.left && r.acknowledged));
    records.extend(resumed);
    stage.settle(Duration::from_secs(60)).await?;
    // Pools: new turns in the old chats, spread over every process.
    let follow_ups: Vec<TurnPlan> = plans.iter().step_by(2).map(|plan| planner.follow_up(plan, 5)).collect();
    records.extend(run_wave(&stage.client, follow_ups, profile.ramp()).await);
    // Listeners: answers followed from another replica arrive as they are written.
    let (tokens, delay_ms) = (profile.tokens, profile.delay_ms);
    let followed: Vec<TurnPlan> = (0..profile.concurrency / 2)
        .map(|_| {
            let mut plan = planner.healthy(tokens, delay_ms);
            plan.leave = Leave::AfterTokens(2);
            plan.then = AfterLeaving::Resume;
            plan
        })
        .collect();
    let wave_started = Instant::now();
    let followed = run_wave(&stage.client, followed, profile.ramp()).await;
    let allowed = profile.ramp() + Duration::from_millis(tokens as u64 * delay_ms) + Duration::from_secs(5);
    if wave_started.elapsed() > allowed {
        violations.push(format!(
            "answers followed from another replica after the database came back took {:.1} s (their own time and \
             5 s: {:.1} s)",
            wave_started.elapsed().as_secs_f64(),
            allowed.as_secs_f64()
        ));
    }
    records.extend(followed);
    finish_probe(prober, &mut violations).await;
    let note = format!("database gone {} s", gone.as_secs());
    let ending = Ending {
        name: "postgres-suspend",
        started,
        records,
        rule: TextRule::Exact,
        faults: 1,
        violations,
        note: Some(note),
    };
    conclude(stage, &context, keep_failed, ending).await
}

/// How long after the database fails a client may wait for its answer's end: the failure limit, one more
/// checkpoint interval to notice, one final write attempt (bounded by the pool's acquire timeout), and slack.
fn told_within(context: &Context) -> Duration {
    let timeouts = context.timeouts();
    Duration::from_secs(timeouts.checkpoint_failure_limit_secs)
        + Duration::from_millis(timeouts.checkpoint_interval_ms)
        + Duration::from_secs(2)
        + Duration::from_secs(1)
}

/// Every write to `chat.messages` waits behind a lock for the failure limit plus 4 s while long answers stream:
/// a stalled database must count as a failing one, so the answers end with `error` and clients are told.
pub async fn stall(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let profile = &context.profile;
    let timeouts = context.timeouts();
    let stage = context.stage("postgres-stall", false).await?;
    let mut planner = Planner::new("pg-stall", context.seed);
    let plans = long_turns(&mut planner, &context, profile.concurrency, &Expect::one_of(&[MessageStatus::Error]));
    let (_, prober) = probe(&stage, &plans, context.seed);
    let wave = spawn_wave(stage.client.clone(), plans.clone(), profile.ramp());
    tokio::time::sleep(profile.ramp() + Duration::from_secs(1)).await;
    let stall = Duration::from_secs(timeouts.checkpoint_failure_limit_secs + 4);
    let stall_started = Instant::now();
    let mut blocker = stage.db.begin().await?;
    sqlx::raw_sql("lock table chat.messages in access exclusive mode").execute(&mut *blocker).await?;
    tokio::time::sleep(stall).await;
    blocker.rollback().await?;
    let mut records = wave.await?;
    let mut violations = late_finishes(&records, stall_started, told_within(&context));
    let slowest = records
        .iter()
        .filter_map(|r| r.finished_at.map(|at| at.saturating_duration_since(stall_started)))
        .max()
        .unwrap_or_default();
    let note = format!(
        "last finish {:.1} s into a {} s stall (limit {} s)",
        slowest.as_secs_f64(),
        stall.as_secs(),
        timeouts.checkpoint_failure_limit_secs
    );
    stage.settle(Duration::from_secs(60)).await?;
    let follow_ups: Vec<TurnPlan> = plans.iter().step_by(4).map(|plan| planner.follow_up(plan, 5)).collect();
    records.extend(run_wave(&stage.client, follow_ups, profile.ramp()).await);
    finish_probe(prober, &mut violations).await;
    let ending = Ending {
        name: "postgres-stall",
        started,
        records,
        rule: TextRule::Exact,
        faults: 1,
        violations,
        note: Some(note),
    };
    conclude(stage, &context, keep_failed, ending).await
}
