//! Scenarios about clients: a baseline with no fault (two turns per chat), and clients that leave at random
//! points of the stream, resume by event id, send the same message again, or press stop.

use std::time::Instant;

use shared::MessageStatus;

use super::{Ending, conclude, finish_probe, probe};
use crate::faults::client::{AfterLeaving, Expect, Leave};
use crate::faults::invariants::TextRule;
use crate::faults::plan::Planner;
use crate::faults::{Context, Outcome, run_wave};

/// No fault: every turn completes with the model's text, twice per chat.
pub async fn baseline(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let profile = &context.profile;
    let stage = context.stage("baseline", false).await?;
    let mut planner = Planner::new("baseline", context.seed);
    let first: Vec<_> = (0..profile.concurrency).map(|_| planner.healthy(profile.tokens, profile.delay_ms)).collect();
    let (_, prober) = probe(&stage, &first, context.seed);
    let mut records = run_wave(&stage.client, first.clone(), profile.ramp()).await;
    let second: Vec<_> = first.iter().map(|plan| planner.follow_up(plan, profile.tokens)).collect();
    records.extend(run_wave(&stage.client, second, profile.ramp()).await);
    let mut violations = Vec::new();
    finish_probe(prober, &mut violations).await;
    let ending =
        Ending { name: "baseline", started, records, rule: TextRule::Exact, faults: 0, violations, note: None };
    conclude(stage, &context, keep_failed, ending).await
}

/// Clients leave at random points (some before any response), then resume, send again or do nothing; others
/// stop their answer. Answers go on without their clients and are stored complete.
pub async fn disconnects(context: Context, keep_failed: bool) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let profile = &context.profile;
    let stage = context.stage("client-disconnects", false).await?;
    let mut planner = Planner::new("disconnects", context.seed);
    let mut plans = Vec::with_capacity(profile.concurrency);
    let mut faults = 0;
    for _ in 0..profile.concurrency {
        let mut plan = planner.healthy(profile.tokens, profile.delay_ms);
        let roll = planner.rng().range(0, 100);
        let then = match planner.rng().range(0, 3) {
            0 => AfterLeaving::Nothing,
            1 => AfterLeaving::Resume,
            _ => AfterLeaving::SendAgain,
        };
        if roll < 25 {
            // Gone within the first 40 ms: while the turn is being stored, or just after the response.
            plan.leave = Leave::AfterMillis(planner.rng().range(0, 40));
            plan.then = if then == AfterLeaving::Resume { AfterLeaving::SendAgain } else { then };
            faults += 1;
        } else if roll < 70 {
            plan.leave = Leave::AfterTokens(planner.rng().range(1, profile.tokens as u64) as usize);
            plan.then = then;
            faults += 1;
        } else if roll < 85 {
            plan.stop_after = Some(planner.rng().range(1, profile.tokens as u64) as usize);
            // Stopped, or complete when the stop raced the last token; the text is whatever the client read.
            plan.expect = Expect::one_of(&[MessageStatus::Stopped, MessageStatus::Complete]);
            faults += 1;
        }
        plans.push(plan);
    }
    let (_, prober) = probe(&stage, &plans, context.seed);
    let records = run_wave(&stage.client, plans, profile.ramp()).await;
    let mut violations = Vec::new();
    finish_probe(prober, &mut violations).await;
    let ending =
        Ending { name: "client-disconnects", started, records, rule: TextRule::Exact, faults, violations, note: None };
    conclude(stage, &context, keep_failed, ending).await
}
