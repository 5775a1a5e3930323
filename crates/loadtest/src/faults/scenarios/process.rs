//! Scenarios about the server process: killed with SIGKILL mid-stream and started again on the same database
//! (its answers become `interrupted`, their text kept, and clients sending their message again get that same
//! answer), and stopped with SIGTERM (short answers finish, long ones are stored `interrupted` at the drain
//! deadline, nothing is left streaming, and the process exits 0 in time).

use std::time::{Duration, Instant};

use fake_databricks::scenario::numbered_text;
use shared::MessageStatus;

use super::{Ending, conclude, finish_probe, probe};
use crate::faults::client::{Expect, TurnPlan, TurnRecord};
use crate::faults::invariants::TextRule;
use crate::faults::plan::Planner;
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

/// SIGKILL while long answers stream and new turns arrive, then a new process on the same database.
pub async fn sigkill(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let profile = &context.profile;
    let mut stage = context.stage("server-sigkill", false).await?;
    let mut planner = Planner::new("sigkill", context.seed);
    let interrupted = Expect::one_of(&[MessageStatus::Interrupted, MessageStatus::Complete]);
    let plans = turns(&mut planner, profile.concurrency, profile.long_tokens, profile.long_delay_ms, &interrupted);
    let (shared_client, prober) = probe(&stage, &plans, context.seed);
    let wave = spawn_wave(stage.client.clone(), plans, profile.ramp());
    tokio::time::sleep(profile.ramp() + Duration::from_secs(2)).await;
    // Turns arriving as the process dies: some are stored and never answered, some never arrive.
    let arriving = turns(&mut planner, profile.concurrency / 4, profile.tokens, profile.delay_ms, &interrupted);
    let late = spawn_wave(stage.client.clone(), arriving, Duration::from_millis(100));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let killed_at = Instant::now();
    stage.server()?.kill();
    let mut records = wave.await?;
    records.extend(late.await?);
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
    let mut violations = Vec::new();
    finish_probe(prober, &mut violations).await;
    let window = Duration::from_millis(context.timeouts().checkpoint_interval_ms * 2) + Duration::from_secs(1);
    let ending = Ending {
        name: "server-sigkill",
        started,
        records,
        rule: TextRule::Crash { at: killed_at, window },
        faults: 1,
        violations,
        note: None,
    };
    conclude(stage, &context, keep_failed, ending).await
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
            let expect = Expect::one_of(&[MessageStatus::Interrupted]);
            plans.extend(turns(&mut planner, 1, profile.long_tokens, profile.long_delay_ms, &expect));
        }
    }
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
    let left_streaming = stage.settle(Duration::ZERO).await?;
    for id in left_streaming {
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
