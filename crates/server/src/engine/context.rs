//! Long chats that never overflow the model's context window.
//!
//! Each model has a window (`MODEL_CONTEXT_TOKENS`, the local model's own, else a default). Before a turn's first
//! model call, the branch it continues is measured against the window's budget (the window less the answer's room and
//! a margin), with the rough per-message estimate calibrated by the model's real usage figures of the branch's last
//! answer. When it would not fit, its older part (everything but the newest messages, which keep half the budget)
//! is summarised once by a model, folding in the summary it already had; the summary is stored at the last message
//! it covers and reused by every later turn on any branch through that message, until the recent part outgrows the
//! budget again. The system prompt and the recent turns are always sent as they are, and so are the messages the
//! user pinned (a summary leaves them out). The answer says so in a `data-summary` part: `summarising`, then `done`
//! with the summary's text and how many messages it stands for (or `failed`: the oldest messages are then dropped
//! instead, as before summaries existed).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use shared::{Content, DataPart, MessagePart, Role};
use sqlx::PgConnection;
use uuid::Uuid;

use super::history::{Earlier, build_prompt_with, estimate_tokens, message_tokens};
use super::live::LiveTurn;
use crate::db::summaries::{self, NewSummary};
use crate::db::thread;
use crate::llm::{ChatModel, ModelEvent, ModelRequest, PromptMessage, PromptRole, Protocol};

/// The part an answer says its context was summarised in.
pub const SUMMARY_PART: &str = "data-summary";

/// How a summary is asked for. The fake workspace recognises a summary request by its first words.
pub const SUMMARY_INSTRUCTIONS: &str = "You summarise conversations between a user and an assistant, so that the \
    assistant can go on with the conversation without its older messages. Write a concise summary in plain prose: \
    the user's goals and preferences, the facts, names, numbers and decisions established, code or data referred \
    to, and questions still open. Fold the earlier summary, when one is given, into yours. Do not invent anything, \
    do not address the user, and reply with the summary only (no headings, no JSON).";

/// Most characters of one message a summary request quotes (the head of a long message says what it is about).
const QUOTED_CHARS: usize = 2_000;
/// Longest a summary may take to write: the local model writes about ten tokens a second on this kind of machine.
const SUMMARY_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest summary kept, in characters (the table's limit).
const MAX_SUMMARY_CHARS: usize = 20_000;

/// A model's context window and how much of it the prompt may take.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// The window, in tokens.
    pub tokens: usize,
    /// Room kept for the answer (`LLM_MAX_TOKENS`, else a quarter of the window up to 4,096).
    pub reserve: usize,
    /// The operator's cap on history (`HISTORY_TOKEN_BUDGET`).
    pub cap: usize,
}

impl Window {
    /// A window, with room for an answer of `max_tokens` (when set).
    pub fn new(tokens: usize, max_tokens: Option<u32>, cap: usize) -> Self {
        let reserve = max_tokens.map_or((tokens / 4).min(4_096), |n| n as usize).min(tokens / 2);
        Self { tokens, reserve, cap }
    }

    /// Tokens the prompt may take: the window less the answer's room and a twentieth for estimates that run short.
    pub fn budget(&self) -> usize {
        self.tokens.saturating_sub(self.reserve).saturating_sub(self.tokens / 20).min(self.cap).max(256)
    }
}

/// A message of the branch a turn continues.
#[derive(Debug, Clone)]
pub struct BranchMessage {
    /// Message id.
    pub id: Uuid,
    /// Role.
    pub role: Role,
    /// Content.
    pub parts: Vec<MessagePart>,
    /// Position on the path.
    pub depth: i32,
    /// Pinned by the user.
    pub pinned: bool,
    /// For an answer: the model's prompt and answer tokens.
    pub usage: Option<(i64, i64)>,
}

/// The stored summary a branch starts from.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The last message it covers.
    pub through_id: Uuid,
    /// How many messages it stands for.
    pub covered: i32,
    /// Pinned messages it leaves out, oldest first, with their content.
    pub pinned: Vec<(Uuid, Role, Vec<MessagePart>)>,
    /// The summary.
    pub text: String,
}

/// What a turn's prompt is made of.
#[derive(Debug, Clone, Default)]
pub struct Branch {
    /// The messages after the summary (all of them without one), newest first.
    pub recent: Vec<BranchMessage>,
    /// The summary of the older messages.
    pub summary: Option<Summary>,
}

impl Branch {
    /// The recent messages as (role, parts), newest first.
    pub fn history(&self) -> Vec<(Role, Vec<MessagePart>)> {
        self.recent.iter().map(|m| (m.role, m.parts.clone())).collect()
    }

    /// The prompt: the system prompt with the summary, the pinned messages it left out, the recent messages.
    pub fn prompt(&self, system: Option<&str>, budget: usize) -> Vec<PromptMessage> {
        let pinned: Vec<(Role, Vec<MessagePart>)> =
            self.summary.iter().flat_map(|s| &s.pinned).map(|(_, role, parts)| (*role, parts.clone())).collect();
        let earlier = Earlier { summary: self.summary.as_ref().map(|s| s.text.as_str()), pinned: &pinned };
        build_prompt_with(system, earlier, &self.history(), budget)
    }
}

/// Reads the branch ending at `last` (a question, or the answer a continuation goes on with), up to `limit` messages,
/// from the newest summary stored for it.
pub async fn load(conn: &mut PgConnection, last: Uuid, limit: i64) -> sqlx::Result<Branch> {
    let mut rows = thread::branch_for_prompt(&mut *conn, last, limit).await?;
    let summary = match rows.last() {
        Some(row) if row.summarised => summaries::find(&mut *conn, row.message_id).await?,
        _ => None,
    };
    let summary = match summary {
        Some(stored) => {
            rows.pop();
            let contents = thread::messages_by_id(&mut *conn, &stored.pinned_ids).await?;
            let pinned = stored.pinned_ids.iter().copied().zip(contents).map(|(id, (role, parts))| (id, role, parts));
            Some(Summary {
                through_id: stored.through_id,
                covered: stored.covered,
                pinned: pinned.collect(),
                text: stored.text,
            })
        }
        None => None,
    };
    let recent = rows
        .into_iter()
        .filter_map(|row| {
            let role = Role::parse(&row.role)?;
            let usage = row.input_tokens.zip(row.output_tokens);
            Some(BranchMessage {
                id: row.message_id,
                role,
                parts: row.parts.0,
                depth: row.depth,
                pinned: row.pinned,
                usage,
            })
        })
        .collect();
    Ok(Branch { recent, summary })
}

/// Tokens of what goes before the recent messages: the system prompt, the summary, the pinned messages.
fn fixed_tokens(system: Option<&str>, branch: &Branch) -> usize {
    let summary = branch.summary.as_ref().map_or(0, |s| {
        estimate_tokens(&s.text) + s.pinned.iter().map(|(_, role, parts)| message_tokens(*role, parts)).sum::<usize>()
    });
    system.map_or(0, estimate_tokens) + summary
}

/// How many real tokens one estimated token is for this branch's model: the branch's last answer with usage
/// figures reports what its prompt and answer really took; compared with the estimate of the same messages (from
/// the summary down to that answer), the ratio corrects the estimate for the model's tokenizer. 1 without figures.
pub fn calibration(system: Option<&str>, branch: &Branch) -> f64 {
    let Some(at) = branch.recent.iter().position(|m| m.usage.is_some()) else { return 1.0 };
    let Some((input, output)) = branch.recent[at].usage else { return 1.0 };
    let estimated = fixed_tokens(system, branch)
        + branch.recent[at..].iter().map(|m| message_tokens(m.role, &m.parts)).sum::<usize>();
    if estimated == 0 || input <= 0 {
        return 1.0;
    }
    ((input + output.max(0)) as f64 / estimated as f64).clamp(0.5, 4.0)
}

/// Where to fold the branch, if it must be: the number of newest recent messages kept as they are (the rest,
/// but pinned ones, gets summarised). `None` when the branch fits the budget, or nothing could be folded.
pub fn fold_point(system: Option<&str>, branch: &Branch, budget: usize) -> Option<usize> {
    let scale = calibration(system, branch);
    let cost = |m: &BranchMessage| (message_tokens(m.role, &m.parts) as f64 * scale).ceil() as usize;
    let fixed = (fixed_tokens(system, branch) as f64 * scale).ceil() as usize;
    let total = fixed + branch.recent.iter().map(cost).sum::<usize>();
    if total <= budget {
        return None;
    }
    // The newest messages keep half the budget (at least the new question); the oldest of them is a question, so a
    // turn is never cut between its question and its answer.
    let mut keep = 0;
    let mut kept = 0;
    for message in &branch.recent {
        let next = kept + cost(message);
        if keep > 0 && next > budget / 2 {
            break;
        }
        kept = next;
        keep += 1;
    }
    while keep > 1 && branch.recent[keep - 1].role != Role::User {
        keep -= 1;
    }
    let folded = branch.recent[keep..].iter().filter(|m| !m.pinned && message_tokens(m.role, &m.parts) > 0).count();
    (folded > 0).then_some(keep)
}

/// The model that writes summaries, and whose token the call carries.
pub struct Summariser {
    /// The client.
    pub client: Arc<dyn ChatModel>,
    /// The model's id.
    pub name: String,
    /// How it is spoken to.
    pub protocol: Protocol,
    /// Its context window.
    pub window: Window,
    /// The user's token, under `MODEL_AUTH=user`.
    pub user_token: Option<secrecy::SecretString>,
}

/// Builds a turn's prompt from its branch, summarising the older part first when the branch no longer fits (and a
/// model can summarise), and says in the answer when a summary stands for older messages.
pub(super) async fn prepare(
    db: &sqlx::PgPool,
    turn: &LiveTurn,
    system: Option<&str>,
    mut branch: Branch,
    budget: usize,
    summariser: Option<Summariser>,
) -> Vec<PromptMessage> {
    if let (Some(keep), Some(summariser)) = (fold_point(system, &branch, budget), summariser) {
        let covered = branch.summary.as_ref().map_or(0, |s| s.covered)
            + branch.recent[keep..].iter().filter(|m| !m.pinned).count() as i32;
        announce(turn, json!({"state": "summarising", "messages": covered}));
        let written = tokio::select! {
            written = tokio::time::timeout(SUMMARY_TIMEOUT, summarise(&summariser, &branch, keep)) => {
                written.unwrap_or_else(|_| Err("the summary took too long".to_owned()))
            }
            () = turn.cancelled() => Err("stopped".to_owned()),
        };
        match written {
            Ok(text) => match store(db, turn.chat_id, &summariser.name, &branch, keep, covered, &text).await {
                Ok(summary) => {
                    branch.recent.truncate(keep);
                    branch.summary = Some(summary);
                }
                Err(error) => {
                    tracing::warn!(chat.id = %turn.chat_id, error = %error, "storing a summary failed");
                    announce(turn, json!({"state": "failed", "messages": covered}));
                }
            },
            Err(reason) => {
                tracing::warn!(chat.id = %turn.chat_id, reason = %reason, "summarising the older messages failed");
                announce(turn, json!({"state": "failed", "messages": covered}));
            }
        }
    }
    if let Some(summary) = &branch.summary {
        announce(turn, json!({"state": "done", "messages": summary.covered, "text": summary.text}));
    }
    branch.prompt(system, budget)
}

/// Puts the summary part into the answer (replacing the previous state of it).
fn announce(turn: &LiveTurn, data: serde_json::Value) {
    let part = DataPart { kind: SUMMARY_PART.into(), id: Some("summary".into()), data };
    turn.update(|log| log.push(Content::Data(Box::new(part))));
}

/// Asks the model for a summary of the branch's older part (`recent[keep..]`, pinned messages left out) and the
/// summary it had.
async fn summarise(summariser: &Summariser, branch: &Branch, keep: usize) -> Result<String, String> {
    let request = summary_request(summariser, branch, keep);
    let mut stream = summariser.client.stream(request);
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(ModelEvent::Content(Content::Text(t))) => text.push_str(&t),
            Ok(_) => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    clean_summary(&text).ok_or_else(|| "the model's summary was empty or not prose".to_owned())
}

/// The request for a summary: the instructions, then the earlier summary and the transcript of the messages to
/// fold, oldest first, each quoted up to [`QUOTED_CHARS`]; when they are more than the summarising model's budget
/// takes, the oldest are left out.
fn summary_request(summariser: &Summariser, branch: &Branch, keep: usize) -> ModelRequest {
    let budget = summariser.window.budget().saturating_sub(estimate_tokens(SUMMARY_INSTRUCTIONS));
    let mut used = branch.summary.as_ref().map_or(0, |s| estimate_tokens(&s.text));
    let mut quoted: Vec<String> = Vec::new();
    for message in branch.recent[keep..].iter().filter(|m| !m.pinned) {
        let Some(line) = transcript_line(message) else { continue };
        let cost = estimate_tokens(&line);
        if used + cost > budget && !quoted.is_empty() {
            break;
        }
        used += cost;
        quoted.push(line);
    }
    quoted.reverse();
    let mut input = String::new();
    if let Some(summary) = &branch.summary {
        input.push_str("Earlier summary:\n");
        input.push_str(&summary.text);
        input.push_str("\n\n");
    }
    input.push_str("Conversation:\n\n");
    input.push_str(&quoted.join("\n\n"));
    ModelRequest {
        model: summariser.name.clone(),
        protocol: summariser.protocol,
        messages: vec![
            PromptMessage::text(PromptRole::System, SUMMARY_INSTRUCTIONS),
            PromptMessage::text(PromptRole::User, input),
        ],
        tools: Vec::new(),
        temperature: Some(0.2),
        max_tokens: Some((summariser.window.reserve as u32).clamp(128, 1_024)),
        user_token: summariser.user_token.clone(),
        context: None,
        resume: None,
    }
}

/// A message as a line of the transcript: who said it, and its text (tool calls as a note); `None` when empty.
fn transcript_line(message: &BranchMessage) -> Option<String> {
    let mut text = String::new();
    for part in &message.parts {
        match part {
            MessagePart::Text { text: t } => text.push_str(t),
            MessagePart::Tool(tool) => text.push_str(&format!(" [used the tool {}] ", tool.tool_name)),
            _ => {}
        }
    }
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let quoted: String = text.chars().take(QUOTED_CHARS).collect();
    let cut = if quoted.len() < text.len() { " […]" } else { "" };
    let who = if message.role == Role::User { "User" } else { "Assistant" };
    Some(format!("{who}: {quoted}{cut}"))
}

/// What a model wrote as a summary, cleaned: the text outside `<think>` blocks, trimmed; `None` when nothing is left
/// or it reads as JSON rather than prose (a model that answered with a tool call or an object).
pub fn clean_summary(raw: &str) -> Option<String> {
    let mut text = raw.to_owned();
    while let (Some(open), Some(close)) = (text.find("<think>"), text.find("</think>")) {
        if close < open {
            break;
        }
        text.replace_range(open..close + "</think>".len(), "");
    }
    let text = text.trim();
    if text.is_empty() || text.starts_with('{') || text.starts_with('[') {
        return None;
    }
    Some(text.chars().take(MAX_SUMMARY_CHARS).collect())
}

/// Stores a new summary through the newest folded message and returns it as the branch's.
async fn store(
    db: &sqlx::PgPool,
    chat_id: Uuid,
    model: &str,
    branch: &Branch,
    keep: usize,
    covered: i32,
    text: &str,
) -> sqlx::Result<Summary> {
    let through = &branch.recent[keep];
    let mut pinned: Vec<(Uuid, Role, Vec<MessagePart>)> =
        branch.summary.as_ref().map(|s| s.pinned.clone()).unwrap_or_default();
    pinned.extend(branch.recent[keep..].iter().rev().filter(|m| m.pinned).map(|m| (m.id, m.role, m.parts.clone())));
    let pinned_ids: Vec<Uuid> = pinned.iter().map(|(id, _, _)| *id).collect();
    summaries::upsert(
        db,
        NewSummary { chat_id, through: (through.id, through.depth), covered, pinned_ids: &pinned_ids, text, model },
    )
    .await?;
    Ok(Summary { through_id: through.id, covered, pinned, text: text.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u128, role: Role, chars: usize) -> BranchMessage {
        BranchMessage {
            id: Uuid::from_u128(n),
            role,
            parts: vec![MessagePart::Text { text: "x".repeat(chars) }],
            depth: n as i32,
            pinned: false,
            usage: None,
        }
    }

    /// A branch of `count` messages of `chars` characters each, newest first, questions and answers in turn.
    fn branch(count: u128, chars: usize) -> Branch {
        let recent = (1..=count)
            .rev()
            .map(|n| message(n, if n % 2 == 1 { Role::User } else { Role::Assistant }, chars))
            .collect();
        Branch { recent, summary: None }
    }

    #[test]
    fn the_budget_leaves_room_for_the_answer_and_a_margin() {
        assert_eq!(Window::new(2_048, None, 32_000).budget(), 2_048 - 512 - 102);
        assert_eq!(Window::new(128_000, None, 32_000).budget(), 32_000, "the operator's cap");
        assert_eq!(Window::new(8_192, Some(1_000), 32_000).budget(), 8_192 - 1_000 - 409);
    }

    #[test]
    fn a_branch_that_fits_is_not_folded() {
        assert_eq!(fold_point(Some("sys"), &branch(6, 400), 10_000), None);
    }

    #[test]
    fn a_long_branch_keeps_its_newest_turns_within_half_the_budget_from_a_question() {
        // 40 messages of ~104 tokens: 4,160 tokens against 1,000.
        let long = branch(40, 400);
        let keep = fold_point(None, &long, 1_000).expect("folded");
        assert!((1..=5).contains(&keep), "{keep}");
        assert_eq!(long.recent[keep - 1].role, Role::User, "the oldest kept message starts a turn");
    }

    #[test]
    fn real_usage_figures_correct_the_estimate() {
        // The estimate says the branch fits; the model reported twice as many tokens for its last answer.
        let mut fits = branch(8, 400);
        assert_eq!(fold_point(None, &fits, 1_000), None);
        fits.recent[0].usage = Some((1_600, 100));
        assert!(calibration(None, &fits) > 1.5);
        assert!(fold_point(None, &fits, 1_000).is_some(), "it does not fit as the model counts");
    }

    #[test]
    fn pinned_messages_are_not_what_a_fold_is_for() {
        let mut pinned = branch(12, 400);
        for message in &mut pinned.recent[1..] {
            message.pinned = true;
        }
        assert_eq!(fold_point(None, &pinned, 300), None, "nothing but pinned messages would be folded");
    }

    #[test]
    fn summaries_are_prose_without_the_scratchpad() {
        assert_eq!(clean_summary("<think>hmm</think>  They chose Lakebase. ").as_deref(), Some("They chose Lakebase."));
        assert_eq!(clean_summary("{\"tool\": 1}"), None);
        assert_eq!(clean_summary("   "), None);
    }
}
