//! The invariant checker: after a scenario settles, compares what the clients were told with what the
//! database holds (schema `chat`). Each broken promise is one violation, described in a line.
//!
//! - Every acknowledged user message exists exactly once, in its owner's chat, followed by its answer.
//! - No message id sent by a client is stored twice, and every stored user message has an answer.
//! - Every answer has a terminal status (never `streaming` once things settle).
//! - The stored text equals what a client that read to the end received (and the status it was told); for a
//!   client that left, it extends what the client received. After a crash, it may miss at most the last
//!   checkpoint interval of what the client saw.
//! - The answer is what the scenario demands (status, exact text) and never text the model did not send.
//! - Every client assembled each token at most once, in order: its text is the start of what the model sent
//!   (titles arrive mid-answer, so this covers text interleaved with other chunks, live and resumed).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shared::{MessagePart, MessageStatus};
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use super::client::TurnRecord;

/// How stored text must relate to the text a client received.
#[derive(Debug, Clone, Copy)]
pub enum TextRule {
    /// Clients that read to the end got exactly the stored text; others a prefix of it.
    Exact,
    /// The server was killed at `at`: the stored text may miss what arrived within `window` before it.
    Crash {
        /// When the server was killed.
        at: Instant,
        /// The longest time a streamed token may go unsaved (checkpoint interval plus slack).
        window: Duration,
    },
}

/// A stored message of interest.
#[derive(Debug, sqlx::FromRow)]
struct StoredAnswer {
    message_id: Uuid,
    role: String,
    status: String,
    parts: Json<Vec<MessagePart>>,
}

/// Checks every record against the database; returns the violations.
pub async fn check(db: &PgPool, records: &[TurnRecord], rule: TextRule) -> anyhow::Result<Vec<String>> {
    let mut violations = global_checks(db).await?;
    for record in records {
        check_record(db, record, rule, &mut violations).await?;
    }
    Ok(violations)
}

async fn global_checks(db: &PgPool) -> anyhow::Result<Vec<String>> {
    let mut violations = Vec::new();
    let streaming: Vec<Uuid> =
        sqlx::query_scalar("select message_id from chat.messages where role = 'assistant' and status = 'streaming'")
            .fetch_all(db)
            .await?;
    for id in streaming {
        violations.push(format!("answer {id} is still `streaming` after the scenario settled"));
    }
    let duplicates: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "select chat_id, client_id, count(*) from chat.messages where client_id is not null
         group by chat_id, client_id having count(*) > 1",
    )
    .fetch_all(db)
    .await?;
    for (chat, client_id, count) in duplicates {
        violations.push(format!("message {client_id} is stored {count} times in chat {chat}"));
    }
    let unanswered: Vec<Uuid> = sqlx::query_scalar(
        "select u.message_id from chat.messages u where u.role = 'user' and not exists
           (select 1 from chat.messages a where a.chat_id = u.chat_id and a.seq = u.seq + 1 and a.role = 'assistant')",
    )
    .fetch_all(db)
    .await?;
    for id in unanswered {
        violations.push(format!("user message {id} has no answer after it"));
    }
    Ok(violations)
}

async fn check_record(
    db: &PgPool,
    record: &TurnRecord,
    rule: TextRule,
    violations: &mut Vec<String>,
) -> anyhow::Result<()> {
    let plan = &record.plan;
    let who = format!("turn {} ({})", plan.client_message_id, plan.chat_id);
    let users: Vec<(Uuid, i64, String)> = sqlx::query_as(
        "select m.message_id, m.seq, c.owner_id from chat.messages m join chat.chats c using (chat_id)
         where m.chat_id = $1 and m.client_id = $2 and m.role = 'user'",
    )
    .bind(plan.chat_id)
    .bind(&plan.client_message_id)
    .fetch_all(db)
    .await?;
    if record.acknowledged && users.len() != 1 {
        violations.push(format!("{who}: acknowledged user message stored {} times", users.len()));
    }
    // An unacknowledged message may or may not have reached the server; if it did, it is held to the same rules.
    let Some((_, user_seq, owner)) = users.first() else { return Ok(()) };
    if owner != &plan.user {
        violations.push(format!("{who}: chat belongs to {owner}, not to its sender {}", plan.user));
    }
    let answer: Option<StoredAnswer> =
        sqlx::query_as("select message_id, role, status, parts from chat.messages where chat_id = $1 and seq = $2")
            .bind(plan.chat_id)
            .bind(user_seq + 1)
            .fetch_optional(db)
            .await?;
    let Some(answer) = answer else {
        violations.push(format!("{who}: no answer follows the user message"));
        return Ok(());
    };
    if let Some(told) = record.answer_id
        && answer.message_id != told
    {
        violations
            .push(format!("{who}: the client was told answer {told}, the stored answer is {}", answer.message_id));
    }
    if answer.role != "assistant" {
        violations.push(format!("{who}: the message after the user message is a {}", answer.role));
        return Ok(());
    }
    let stored_text: String = answer.parts.0.iter().filter(|p| p.is_text()).map(MessagePart::text).collect();
    let status = MessageStatus::parse(&answer.status);
    if status == Some(MessageStatus::Streaming) {
        return Ok(()); // reported by the global check
    }
    if status.is_none_or(|s| !plan.expect.statuses.contains(&s)) {
        violations
            .push(format!("{who}: stored status `{}`, expected one of {:?}", answer.status, plan.expect.statuses));
    }
    if let Some(expected) = &plan.expect.text
        && &stored_text != expected
    {
        violations.push(format!(
            "{who}: stored text {} differs from the expected {}",
            clip(&stored_text),
            clip(expected)
        ));
    }
    if !plan.full_text.starts_with(&stored_text) {
        violations.push(format!("{who}: stored text {} is not what the model sent", clip(&stored_text)));
    }
    check_text_against_client(record, &stored_text, status, rule, &who, violations);
    if let Some((replay_id, replay_status, replay_text)) = &record.resent {
        if record.answer_id.is_some() && replay_id != &record.answer_id {
            violations.push(format!(
                "{who}: sending the message again answered {replay_id:?}, not the original {:?}",
                record.answer_id
            ));
        }
        if !plan.full_text.starts_with(replay_text.as_str()) {
            violations.push(format!(
                "{who}: sending the message again streamed {}, not what the model sent",
                clip(replay_text)
            ));
        }
        if replay_status.is_some() && (replay_status != &status || replay_text != &stored_text) {
            violations.push(format!(
                "{who}: the replay ended {replay_status:?} with {}, stored {status:?} with {}",
                clip(replay_text),
                clip(&stored_text)
            ));
        }
    }
    Ok(())
}

fn check_text_against_client(
    record: &TurnRecord,
    stored: &str,
    status: Option<MessageStatus>,
    rule: TextRule,
    who: &str,
    violations: &mut Vec<String>,
) {
    let received = record.text.as_str();
    // Exactly once: what the client assembled from the deltas is the start of what the model sent, so no token
    // came twice or out of order, whatever else (a title, a status, a resume) arrived in between.
    if !record.plan.full_text.starts_with(received) {
        violations.push(format!(
            "{who}: the client assembled {}, which is not what the model sent {}",
            clip(received),
            clip(&record.plan.full_text)
        ));
    }
    match rule {
        TextRule::Crash { at, window } => {
            let must_keep = record
                .arrivals
                .iter()
                .take_while(|(arrived, _)| *arrived + window <= at)
                .last()
                .map_or(0, |&(_, len)| len);
            let must_keep = received.get(..must_keep).unwrap_or(received);
            if !stored.starts_with(must_keep) {
                violations.push(format!(
                    "{who}: after the crash the stored text {} lost more than {} ms of what the client received {}",
                    clip(stored),
                    window.as_millis(),
                    clip(received)
                ));
            }
            if !(stored.starts_with(received) || received.starts_with(stored)) {
                violations.push(format!(
                    "{who}: stored text {} and received text {} disagree",
                    clip(stored),
                    clip(received)
                ));
            }
        }
        TextRule::Exact if record.saw_end() => {
            if stored != received {
                violations.push(format!(
                    "{who}: the client read to the end and got {}, but {} is stored",
                    clip(received),
                    clip(stored)
                ));
            }
            if record.finish != status {
                violations.push(format!("{who}: the client was told {:?}, but {status:?} is stored", record.finish));
            }
        }
        TextRule::Exact => {
            if !stored.starts_with(received) {
                violations.push(format!(
                    "{who}: the client received {} but the stored text {} does not extend it",
                    clip(received),
                    clip(stored)
                ));
            }
        }
    }
}

/// Turns that ended with a `finish` later than `limit` after `since` (a client left hanging).
pub fn late_finishes(records: &[TurnRecord], since: Instant, limit: Duration) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.acknowledged && !r.left)
        .filter_map(|r| match r.finished_at {
            Some(at) if at.saturating_duration_since(since) > limit => Some(format!(
                "turn {}: the client got its finish {:.1} s after the fault (limit {:.1} s)",
                r.plan.client_message_id,
                at.saturating_duration_since(since).as_secs_f64(),
                limit.as_secs_f64()
            )),
            None if r.failure.is_none() => {
                Some(format!("turn {}: the client never got a finish", r.plan.client_message_id))
            }
            _ => None,
        })
        .collect()
}

/// Counts records by stored-status-independent client outcome, for the report.
pub fn client_outcomes(records: &[TurnRecord]) -> String {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for record in records {
        let key = match (&record.finish, record.acknowledged, record.left) {
            (Some(status), _, _) => status.as_str().to_owned(),
            (None, true, true) => "left".to_owned(),
            (None, true, false) => "cut".to_owned(),
            (None, false, _) => "refused".to_owned(),
        };
        *counts.entry(key).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.into_iter().map(|(k, v)| format!("{k} {v}")).collect();
    parts.sort();
    parts.join(", ")
}

/// The first 60 characters of a text, quoted, with its length.
fn clip(text: &str) -> String {
    let shown: String = text.chars().take(60).collect();
    let ellipsis = if shown.len() < text.len() { "…" } else { "" };
    format!("{shown:?}{ellipsis} ({} bytes)", text.len())
}
