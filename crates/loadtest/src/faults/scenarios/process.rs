//! Scenarios about the server process: killed with SIGKILL mid-stream and started again on the same database
//! (its answers become `interrupted`, their text kept, and clients sending their message again get that same
//! answer), and stopped with SIGTERM (short answers finish, long ones are stored `interrupted` at the drain
//! deadline, nothing is left streaming, and the process exits 0 in time). With replicas, these faults hit replica 0
//! while the others serve on, and a rolling restart takes every replica down and up again in turn under load.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fake_databricks::scenario::numbered_text;
use shared::MessageStatus;
use uuid::Uuid;

use super::{Ending, conclude, finish_probe, never_saw_the_end, probe};
use crate::faults::client::{Expect, Step, TurnPlan, TurnRecord};
use crate::faults::invariants::TextRule;
use crate::faults::plan::Planner;
use crate::faults::stage::Stage;
use crate::faults::{Context, Outcome, run_wave, spawn_wave};

fn turns(planner: &mut Planner, count: usize, tokens: usize, delay_ms: u64, expect: &Expect) -> Vec<TurnPlan> {
    (0..count)
        .map(|_| {
            planner.turn(&format!("tokens={tokens} delay_ms={delay_ms}"), &numbered_text(tokens), |_| expect.clone())
        })
        .collect()
}

/// New turns in every fourth chat of `records`: the chats must accept them and the answers complete.
fn follow_ups(planner: &mut Planner, records: &[TurnRecord]) -> Vec<TurnPlan> {
    records.iter().step_by(4).map(|r| planner.follow_up(&r.plan, 5)).collect()
}

/// How long surviving replicas may take to store a killed replica's answers as interrupted: a sweep every 10 s, after
/// 3 s of missed heartbeats, and a checkpoint interval (README, "Several replicas").
const RECOVERY_BOUND: Duration = Duration::from_secs(20);

/// SIGKILL while long answers stream and new turns arrive, then a new process on the same database. With replicas,
/// replica 0 is killed; its clients resume through the others, which must store its answers as interrupted within
/// [`RECOVERY_BOUND`] (measured before replica 0 starts again, so no process of its own recovers them).
pub async fn sigkill(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let profile = &context.profile;
    let mut stage = context.stage("server-sigkill", false).await?;
    let replicated = stage.replicas() > 1;
    let mut planner = Planner::new("sigkill", context.seed);
    let interrupted = Expect::one_of(&[MessageStatus::Interrupted, MessageStatus::Complete]);
    let mut plans = turns(&mut planner, profile.concurrency, profile.long_tokens, profile.long_delay_ms, &interrupted);
    plans.iter_mut().for_each(|plan| plan.resume_on_break = replicated);
    let on_killed = chats_started_on_replica_0(&stage, &plans);
    let (shared_client, prober) = probe(&stage, &plans, context.seed);
    let wave = spawn_wave(stage.client.clone(), plans, profile.ramp());
    tokio::time::sleep(profile.ramp() + Duration::from_secs(2)).await;
    // Turns arriving as the process dies: some are stored and never answered, some never arrive.
    let arriving = turns(&mut planner, profile.concurrency / 4, profile.tokens, profile.delay_ms, &interrupted);
    let late = spawn_wave(stage.client.clone(), arriving, Duration::from_millis(100));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let killed_at = Instant::now();
    stage.server()?.kill();
    let mut violations = Vec::new();
    let mut note = None;
    if replicated {
        let recovered_after =
            wait_until_none_streaming(&stage, &on_killed, RECOVERY_BOUND + Duration::from_secs(10)).await?;
        match recovered_after {
            Some(after) if after <= RECOVERY_BOUND => {}
            Some(after) => violations.push(format!(
                "the surviving replicas took {:.1} s to store the killed one's answers (bound {} s)",
                after.as_secs_f64(),
                RECOVERY_BOUND.as_secs()
            )),
            None => violations.push(format!(
                "answers of the killed replica were still streaming {} s after the kill",
                (RECOVERY_BOUND + Duration::from_secs(10)).as_secs()
            )),
        }
        note = recovered_after.map(|after| {
            format!("survivors stored the killed replica's answers {:.1} s after the kill", after.as_secs_f64())
        });
    }
    let mut records = wave.await?;
    records.extend(late.await?);
    if replicated {
        let resuming = records.iter().filter(|r| r.plan.resume_on_break);
        violations.extend(never_saw_the_end(resuming, "through another replica"));
    }
    stage.restart_server()?;
    if let Ok(mut client) = shared_client.lock() {
        *client = stage.client.clone();
    }
    // Every client sends its message again with the same id, as a client retrying after an error does.
    let client = stage.client.clone();
    let resent = records.into_iter().map(|mut record| {
        let client = client.clone();
        tokio::spawn(async move {
            client.send_again(&mut record).await;
            record
        })
    });
    let mut records = Vec::new();
    for task in resent.collect::<Vec<_>>() {
        records.push(task.await?);
    }
    stage.settle(Duration::from_secs(60)).await?;
    records.extend(run_wave(&stage.client, follow_ups(&mut planner, &records), profile.ramp()).await);
    finish_probe(prober, &mut violations).await;
    let window = Duration::from_millis(context.timeouts().checkpoint_interval_ms * 2) + Duration::from_secs(1);
    let ending = Ending {
        name: "server-sigkill",
        started,
        records,
        rule: TextRule::Crash { at: killed_at, window },
        faults: 1,
        violations,
        note,
    };
    conclude(stage, &context, keep_failed, ending).await
}

/// The chats whose turns start on replica 0 (every chat, with one server).
fn chats_started_on_replica_0(stage: &Stage, plans: &[TurnPlan]) -> HashSet<Uuid> {
    plans
        .iter()
        .filter(|plan| stage.client.replica_for(plan.chat_id, Step::Start).is_none_or(|replica| replica == 0))
        .map(|plan| plan.chat_id)
        .collect()
}

/// Waits until no answer in `chats` is streaming; how long that took (`None`: still streaming at `limit`).
async fn wait_until_none_streaming(
    stage: &Stage,
    chats: &HashSet<Uuid>,
    limit: Duration,
) -> anyhow::Result<Option<Duration>> {
    let since = Instant::now();
    while since.elapsed() < limit {
        if streaming_in(stage, chats).await?.is_empty() {
            return Ok(Some(since.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(None)
}

/// Answers still streaming in `chats`.
async fn streaming_in(stage: &Stage, chats: &HashSet<Uuid>) -> anyhow::Result<Vec<Uuid>> {
    let streaming: Vec<(Uuid, Uuid)> =
        sqlx::query_as("select message_id, chat_id from chat.messages where status = 'streaming'")
            .fetch_all(&stage.db)
            .await?;
    Ok(streaming.into_iter().filter(|(_, chat)| chats.contains(chat)).map(|(id, _)| id).collect())
}

/// SIGTERM while short answers (ending within the drain deadline) and long ones stream, and new turns arrive.
pub async fn sigterm(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let profile = &context.profile;
    let timeouts = context.timeouts();
    let drain = Duration::from_secs(timeouts.shutdown_drain_secs);
    let mut stage = context.stage("server-sigterm", false).await?;
    let mut planner = Planner::new("sigterm", context.seed);
    // Short answers last a third of the drain time: started before SIGTERM, they must finish.
    let short_delay = 50;
    let short_tokens = (drain.as_millis() as usize / 3) / short_delay as usize;
    let mut plans = Vec::with_capacity(profile.concurrency);
    for index in 0..profile.concurrency {
        if index % 2 == 0 {
            let full = numbered_text(short_tokens);
            plans.push(planner.turn(&format!("tokens={short_tokens} delay_ms={short_delay}"), &full, |full| {
                Expect::exactly(MessageStatus::Complete, full)
            }));
        } else {
            // With replicas, only the long answers of the stopped one are cut; the others' run to the end.
            let expect = if stage.replicas() > 1 {
                Expect::one_of(&[MessageStatus::Interrupted, MessageStatus::Complete])
            } else {
                Expect::one_of(&[MessageStatus::Interrupted])
            };
            plans.extend(turns(&mut planner, 1, profile.long_tokens, profile.long_delay_ms, &expect));
        }
    }
    let on_stopped = chats_started_on_replica_0(&stage, &plans);
    let (shared_client, prober) = probe(&stage, &plans, context.seed);
    let wave = spawn_wave(stage.client.clone(), plans, profile.ramp());
    tokio::time::sleep(profile.ramp() + Duration::from_millis(200)).await;
    let mut server = stage.take_server().ok_or_else(|| anyhow::anyhow!("no server to stop"))?;
    let limit = drain + Duration::from_secs(15);
    let signalled = Instant::now();
    let exit = tokio::task::spawn_blocking(move || server.terminate(limit));
    // Turns sent after SIGTERM must be refused, never acknowledged and lost.
    let anything = Expect::terminal();
    let arriving = turns(&mut planner, profile.concurrency / 4, profile.tokens, profile.delay_ms, &anything);
    let late = spawn_wave(stage.client.clone(), arriving, Duration::from_millis(500));
    let exit = exit.await??;
    let exited_after = signalled.elapsed();
    let mut violations = Vec::new();
    match exit {
        Some(status) if status.success() => {}
        Some(status) => violations.push(format!("after SIGTERM the server exited with {status}")),
        None => violations.push(format!("the server was still running {} s after SIGTERM", limit.as_secs())),
    }
    // The engine gives running answers the drain time, then at most 4 s to store them as interrupted.
    let allowed = drain + Duration::from_secs(5);
    if exited_after > allowed {
        violations.push(format!(
            "the server took {:.1} s to exit after SIGTERM (drain {} s, allowed {:.0} s)",
            exited_after.as_secs_f64(),
            drain.as_secs(),
            allowed.as_secs_f64()
        ));
    }
    for id in streaming_in(&stage, &on_stopped).await? {
        violations.push(format!("answer {id} was left `streaming` by the server that exited on SIGTERM"));
    }
    let mut records = wave.await?;
    records.extend(late.await?);
    stage.restart_server()?;
    if let Ok(mut client) = shared_client.lock() {
        *client = stage.client.clone();
    }
    records.extend(run_wave(&stage.client, follow_ups(&mut planner, &records), profile.ramp()).await);
    finish_probe(prober, &mut violations).await;
    let code = exit.and_then(|status| status.code()).map_or("no exit".to_owned(), |code| format!("exit {code}"));
    let note = format!("{code} {:.1} s after SIGTERM", exited_after.as_secs_f64());
    let ending = Ending {
        name: "server-sigterm",
        started,
        records,
        rule: TextRule::Exact,
        faults: 1,
        violations,
        note: Some(note),
    };
    conclude(stage, &context, keep_failed, ending).await
}

/// Every replica in turn gets SIGTERM, must exit within the 15 s Databricks Apps allows, and is started again on its
/// port, while waves of long answers keep arriving through the proxy. Clients whose stream breaks resume by event id
/// through another replica, as the web app does: every acknowledged answer must reach its end on the client, none
/// may be lost, repeated or left `streaming`.
pub async fn rolling_restart(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    const PLATFORM_GRACE: Duration = Duration::from_secs(15);
    let started = Instant::now();
    let profile = &context.profile;
    let mut stage = context.stage("rolling-restart", false).await?;
    let mut planner = Planner::new("rolling", context.seed);
    let expect = Expect::one_of(&[MessageStatus::Complete, MessageStatus::Interrupted]);
    let mut violations = Vec::new();
    let mut waves = Vec::new();
    let mut exits = Vec::new();
    let per_wave = (profile.concurrency / 2).max(1);
    let (_, prober) = {
        let mut first = turns(&mut planner, per_wave, profile.long_tokens, profile.long_delay_ms, &expect);
        first.iter_mut().for_each(|plan| plan.resume_on_break = true);
        let probing = probe(&stage, &first, context.seed);
        waves.push(spawn_wave(stage.client.clone(), first, profile.ramp()));
        probing
    };
    for replica in 0..stage.replicas() {
        if replica > 0 {
            let mut wave = turns(&mut planner, per_wave, profile.long_tokens, profile.long_delay_ms, &expect);
            wave.iter_mut().for_each(|plan| plan.resume_on_break = true);
            waves.push(spawn_wave(stage.client.clone(), wave, profile.ramp()));
        }
        tokio::time::sleep(profile.ramp() + Duration::from_secs(1)).await;
        let mut server =
            stage.take_replica(replica).ok_or_else(|| anyhow::anyhow!("replica {replica} is not running"))?;
        let signalled = Instant::now();
        let exit = tokio::task::spawn_blocking(move || server.terminate(PLATFORM_GRACE)).await??;
        let took = signalled.elapsed();
        match exit {
            Some(status) if status.success() && took < PLATFORM_GRACE => {}
            Some(status) => violations
                .push(format!("replica {replica} exited with {status} {:.1} s after SIGTERM", took.as_secs_f64())),
            None => violations
                .push(format!("replica {replica} was still running {} s after SIGTERM", PLATFORM_GRACE.as_secs())),
        }
        exits.push(took);
        stage.restart_replica(replica)?;
        // The proxy's health check takes it back within a quarter of a second.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut records = Vec::new();
    for wave in waves {
        records.extend(wave.await?);
    }
    violations.extend(never_saw_the_end(&records, "across the restarts"));
    records.extend(run_wave(&stage.client, follow_ups(&mut planner, &records), profile.ramp()).await);
    finish_probe(prober, &mut violations).await;
    let slowest = exits.iter().max().copied().unwrap_or_default();
    let note = format!("{} restarts, slowest exit {:.1} s after SIGTERM", exits.len(), slowest.as_secs_f64());
    let ending = Ending {
        name: "rolling-restart",
        started,
        records,
        rule: TextRule::Exact,
        faults: exits.len(),
        violations,
        note: Some(note),
    };
    conclude(stage, &context, keep_failed, ending).await
}
