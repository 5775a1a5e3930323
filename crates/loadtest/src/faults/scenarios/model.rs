//! Scenarios about the model: it stalls past `LLM_IDLE_TIMEOUT_SECS`, fails mid-stream, sends chunks that are
//! not JSON, answers 429 with `Retry-After` or 500 before its first token. Half of each wave is healthy, to show
//! a failing answer does not disturb the others.

use std::time::Instant;

use fake_databricks::scenario::numbered_text;
use shared::MessageStatus;

use super::{Ending, conclude, finish_probe, probe};
use crate::faults::client::{Expect, TurnPlan};
use crate::faults::invariants::TextRule;
use crate::faults::plan::Planner;
use crate::faults::{Context, Outcome, run_wave};

/// Runs a wave where every other turn comes from `faulty`, then concludes.
async fn mixed_wave(
    context: Context,
    keep_failed: bool,
    name: &'static str,
    mut faulty: impl FnMut(&mut Planner, &Context) -> TurnPlan,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let stage = context.stage(name, false).await?;
    let mut planner = Planner::new(name, context.seed);
    let profile = &context.profile;
    let plans: Vec<TurnPlan> = (0..profile.concurrency)
        .map(|i| {
            if i % 2 == 0 { faulty(&mut planner, &context) } else { planner.healthy(profile.tokens, profile.delay_ms) }
        })
        .collect();
    let faults = plans.len().div_ceil(2);
    let (_, prober) = probe(&stage, &plans, context.seed);
    let records = run_wave(&stage.client, plans, profile.ramp()).await;
    let mut violations = Vec::new();
    finish_probe(prober, &mut violations).await;
    let ending = Ending { name, started, records, rule: TextRule::Exact, faults, violations, note: None };
    conclude(stage, &context, keep_failed, ending).await
}

/// After `k` tokens the model goes silent for longer than the idle timeout: the answer ends with `error` and
/// keeps the `k` tokens. A few stall before the first token: those are retried, stall again, and end with
/// `error` and no text.
pub async fn stalls(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    mixed_wave(context, keep_failed, "model-stalls", |planner, context| {
        let profile = &context.profile;
        let stall_ms = context.timeouts().llm_idle_secs * 1000 + 1500;
        let at = if planner.rng().chance(10) { 0 } else { planner.rng().range(1, profile.tokens as u64) as usize };
        planner.turn(
            &format!("tokens={} delay_ms={} stall_after={at} stall_ms={stall_ms}", profile.tokens, profile.delay_ms),
            &numbered_text(profile.tokens),
            |_| Expect::exactly(MessageStatus::Error, &numbered_text(at)),
        )
    })
    .await
}

/// After `k` tokens the model sends an error event: `error`, `k` tokens kept. Before the first token the error
/// is retried (every attempt fails the same way here): `error`, no text.
pub async fn errors_mid_stream(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    mixed_wave(context, keep_failed, "model-errors-mid-stream", |planner, context| {
        let profile = &context.profile;
        let at = if planner.rng().chance(10) { 0 } else { planner.rng().range(1, profile.tokens as u64) as usize };
        planner.turn(
            &format!("tokens={} delay_ms={} fail_after={at}", profile.tokens, profile.delay_ms),
            &numbered_text(profile.tokens),
            |_| Expect::exactly(MessageStatus::Error, &numbered_text(at)),
        )
    })
    .await
}

/// After `k` tokens the model sends a chunk that is not JSON: `error`, `k` tokens kept (before the first token:
/// retried, then `error` with no text).
pub async fn malformed_chunks(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    mixed_wave(context, keep_failed, "model-malformed-chunks", |planner, context| {
        let profile = &context.profile;
        let at = if planner.rng().chance(10) { 0 } else { planner.rng().range(1, profile.tokens as u64) as usize };
        planner.turn(
            &format!("tokens={} delay_ms={} malformed_after={at}", profile.tokens, profile.delay_ms),
            &numbered_text(profile.tokens),
            |_| Expect::exactly(MessageStatus::Error, &numbered_text(at)),
        )
    })
    .await
}

/// 429 with `Retry-After: 1` before the first token: twice, then an answer (complete after two waits); or on
/// every attempt (error once the retries are spent); or with a wait longer than `LLM_MAX_RETRY_WAIT_SECS`
/// (error at once).
pub async fn rate_limited(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    mixed_wave(context, keep_failed, "model-429-retry-after", |planner, context| {
        let profile = &context.profile;
        let timeouts = context.timeouts();
        let full = numbered_text(profile.tokens);
        let base = format!("tokens={} delay_ms={} status=429", profile.tokens, profile.delay_ms);
        match planner.rng().range(0, 10) {
            0 => planner.turn(&format!("{base} retry_after=1"), &full, |_| Expect::exactly(MessageStatus::Error, "")),
            1 => planner.turn(&format!("{base} retry_after={}", timeouts.llm_max_retry_wait_secs + 25), &full, |_| {
                Expect::exactly(MessageStatus::Error, "")
            }),
            _ => planner.turn(&format!("{base} retry_after=1 status_times=2"), &full, |full| {
                Expect::exactly(MessageStatus::Complete, full)
            }),
        }
    })
    .await
}

/// 500 before the first token, once or twice (retried, then complete) or on every attempt (error, no text).
pub async fn server_errors(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    mixed_wave(context, keep_failed, "model-500-before-first-token", |planner, context| {
        let profile = &context.profile;
        let full = numbered_text(profile.tokens);
        let base = format!("tokens={} delay_ms={} status=500", profile.tokens, profile.delay_ms);
        match planner.rng().range(0, 10) {
            0 | 1 => planner.turn(&base, &full, |_| Expect::exactly(MessageStatus::Error, "")),
            times => planner.turn(&format!("{base} status_times={}", 1 + times % 2), &full, |full| {
                Expect::exactly(MessageStatus::Complete, full)
            }),
        }
    })
    .await
}
