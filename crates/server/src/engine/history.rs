//! The prompt: the system prompt plus the chat's stored history (never the client's copy), trimmed to a token
//! budget by dropping the oldest messages first. When the branch's older part was summarised ([`super::context`]),
//! the summary follows the system prompt and the pinned messages it left out come first, as they are.

use shared::{MessagePart, Role, ToolState};

use crate::llm::{APPROVAL_PART, PromptMessage, PromptRole};

/// Rough tokens of a text: about four characters per token for English, plus a few for the message framing.
/// Only used to decide what to drop; the model's own count is never exceeded by much because budgets are far
/// below context windows.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4) + 4
}

/// What stands for a branch's older part in a prompt.
#[derive(Debug, Clone, Copy, Default)]
pub struct Earlier<'a> {
    /// The summary of the older messages.
    pub summary: Option<&'a str>,
    /// Messages the user pinned among them, sent as they are, oldest first.
    pub pinned: &'a [(Role, Vec<MessagePart>)],
}

/// How the summary is introduced after the system prompt.
const SUMMARY_HEADING: &str = "Summary of the earlier part of this conversation:";

/// Builds the prompt from stored messages given newest first.
///
/// What goes back to the model is the text, and of the model's own answers their tool calls with results, their
/// step boundaries and the approval requests the user answered; reasoning (the model's scratchpad) and tool calls without a result stay out. Empty
/// messages (e.g. an answer that failed before any text) are dropped, consecutive messages of one role are merged
/// and the history starts with a user message, because several endpoints require alternating roles. The newest
/// user message is always kept, even alone over budget.
pub fn build_prompt(
    system_prompt: Option<&str>,
    newest_first: &[(Role, Vec<MessagePart>)],
    budget: usize,
) -> Vec<PromptMessage> {
    build_prompt_with(system_prompt, Earlier::default(), newest_first, budget)
}

/// [`build_prompt`] for a branch whose older part is summarised: the summary joins the system message (several
/// endpoints take one system message only, first), the pinned messages follow it and are never dropped.
pub fn build_prompt_with(
    system_prompt: Option<&str>,
    earlier: Earlier<'_>,
    newest_first: &[(Role, Vec<MessagePart>)],
    budget: usize,
) -> Vec<PromptMessage> {
    let system = system_prompt.filter(|s| !s.trim().is_empty());
    let system = match (system, earlier.summary) {
        (system, Some(summary)) => {
            Some(format!("{}{SUMMARY_HEADING}\n{summary}", system.map(|s| format!("{s}\n\n")).unwrap_or_default()))
        }
        (Some(system), None) => Some(system.to_owned()),
        (None, None) => None,
    };
    let mut remaining = budget.saturating_sub(system.as_deref().map_or(0, estimate_tokens));
    let pinned: Vec<PromptMessage> =
        earlier.pinned.iter().rev().filter_map(|(role, parts)| sendable(*role, parts)).collect();
    for message in &pinned {
        remaining = remaining.saturating_sub(message.parts.iter().map(part_tokens).sum::<usize>());
    }
    let mut kept: Vec<PromptMessage> = Vec::new();
    for (role, parts) in newest_first {
        let Some(message) = sendable(*role, parts) else { continue };
        let cost = message.parts.iter().map(part_tokens).sum::<usize>();
        if cost > remaining && !kept.is_empty() {
            break;
        }
        remaining = remaining.saturating_sub(cost);
        kept.push(message);
    }
    kept.extend(pinned);
    kept.reverse();
    // Merge runs of one role (oldest first now), a blank line between their texts.
    let mut merged: Vec<PromptMessage> = Vec::with_capacity(kept.len() + 1);
    for message in kept {
        match merged.last_mut() {
            Some(last) if last.role == message.role => {
                last.parts.push(MessagePart::Text { text: "\n\n".to_owned() });
                last.parts.extend(message.parts);
            }
            _ => merged.push(message),
        }
    }
    if earlier.summary.is_some() && merged.first().is_some_and(|m| m.role != PromptRole::User) {
        // The conversation goes on from its summary: the model's first kept answer follows a user turn.
        merged.insert(0, PromptMessage::text(PromptRole::User, "(The earlier messages are summarised above.)"));
    }
    while merged.first().is_some_and(|m| m.role != PromptRole::User) {
        merged.remove(0);
    }
    if let Some(system) = system {
        merged.insert(0, PromptMessage::text(PromptRole::System, system));
    }
    merged
}

/// A stored message as it goes back to the model; `None` when nothing of it does.
fn sendable(role: Role, parts: &[MessagePart]) -> Option<PromptMessage> {
    let role = match role {
        Role::User => PromptRole::User,
        Role::Assistant => PromptRole::Assistant,
        Role::System | Role::Tool => return None,
    };
    let parts: Vec<MessagePart> = parts.iter().filter(|part| goes_back(role, part)).cloned().collect();
    let has_text = parts.iter().any(|p| p.is_text() && !p.text().trim().is_empty());
    if !has_text && !parts.iter().any(|p| matches!(p, MessagePart::Tool(_))) {
        return None;
    }
    Some(PromptMessage { role, parts })
}

/// Whether a stored part is sent back to the model.
fn goes_back(role: PromptRole, part: &MessagePart) -> bool {
    match part {
        MessagePart::Text { .. } => true,
        MessagePart::Tool(tool) => {
            role == PromptRole::Assistant && matches!(tool.state, ToolState::OutputAvailable | ToolState::OutputError)
        }
        MessagePart::StepStart => role == PromptRole::Assistant,
        // An agent's approval request the user answered goes back with the answer (the agent needs both).
        MessagePart::Data(data) => {
            role == PromptRole::Assistant && data.kind == APPROVAL_PART && data.data["state"] != "requested"
        }
        _ => false,
    }
}

/// Rough tokens of a stored message's parts that go back to the model.
pub fn message_tokens(role: Role, parts: &[MessagePart]) -> usize {
    sendable(role, parts).map_or(0, |message| message.parts.iter().map(part_tokens).sum::<usize>() + 4)
}

/// Rough tokens of a part (see [`estimate_tokens`]).
fn part_tokens(part: &MessagePart) -> usize {
    match part {
        MessagePart::Tool(tool) => {
            let json = |value: &Option<serde_json::Value>| value.as_ref().map_or(0, |v| v.to_string().len());
            estimate_tokens(&tool.tool_name) + (json(&tool.input) + json(&tool.output)).div_ceil(4)
        }
        MessagePart::StepStart => 0,
        MessagePart::Data(data) => data.data.to_string().len().div_ceil(4),
        other => estimate_tokens(other.text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Vec<MessagePart> {
        vec![MessagePart::Text { text: t.into() }]
    }

    fn roles(prompt: &[PromptMessage]) -> Vec<(PromptRole, String)> {
        prompt.iter().map(|m| (m.role, m.text_content())).collect()
    }

    fn owned(expected: &[(PromptRole, &str)]) -> Vec<(PromptRole, String)> {
        expected.iter().map(|(role, text)| (*role, (*text).to_owned())).collect()
    }

    #[test]
    fn keeps_order_system_prompt_first_and_drops_reasoning() {
        let history = vec![
            (Role::User, text("second question")),
            (
                Role::Assistant,
                vec![
                    MessagePart::Reasoning { text: "secret".into() },
                    MessagePart::Text { text: "first answer".into() },
                ],
            ),
            (Role::User, text("first question")),
        ];
        let prompt = build_prompt(Some("Be brief."), &history, 10_000);
        assert_eq!(
            roles(&prompt),
            owned(&[
                (PromptRole::System, "Be brief."),
                (PromptRole::User, "first question"),
                (PromptRole::Assistant, "first answer"),
                (PromptRole::User, "second question"),
            ])
        );
    }

    #[test]
    fn trims_the_oldest_messages_to_the_budget_and_keeps_the_system_prompt() {
        let long = "x".repeat(400); // ~104 tokens each
        let history = vec![
            (Role::User, text(&long)),
            (Role::Assistant, text(&long)),
            (Role::User, text(&long)),
            (Role::Assistant, text(&long)),
            (Role::User, text(&long)),
        ];
        let prompt = build_prompt(Some("sys"), &history, 330);
        assert_eq!(prompt[0].role, PromptRole::System);
        assert_eq!(prompt.len(), 4, "system + the newest three messages fit");
        assert_eq!(prompt[1].role, PromptRole::User);
    }

    #[test]
    fn a_summary_joins_the_system_message_and_pinned_messages_stay_first_and_whole() {
        let long = "x".repeat(400);
        let pinned = vec![(Role::User, text("remember: budget is 42"))];
        let history = vec![(Role::User, text("newest")), (Role::Assistant, text(&long)), (Role::User, text(&long))];
        let earlier = Earlier { summary: Some("They talked about budgets."), pinned: &pinned };

        let prompt = build_prompt_with(Some("Be brief."), earlier, &history, 150);

        assert_eq!(
            roles(&prompt),
            owned(&[
                (
                    PromptRole::System,
                    "Be brief.\n\nSummary of the earlier part of this conversation:\nThey talked about budgets."
                ),
                (PromptRole::User, "remember: budget is 42"),
                (PromptRole::Assistant, &long),
                (PromptRole::User, "newest"),
            ]),
            "over budget, the oldest recent message goes; the pinned one stays"
        );
    }

    #[test]
    fn the_newest_message_is_kept_even_over_budget() {
        let prompt = build_prompt(None, &[(Role::User, text(&"y".repeat(10_000)))], 10);
        assert_eq!(prompt.len(), 1);
    }

    #[test]
    fn merges_runs_skips_empty_answers_and_starts_with_a_user_message() {
        let history = vec![
            (Role::User, text("again")),
            (Role::Assistant, text("")),
            (Role::User, text("hello")),
            (Role::Assistant, text("orphan answer")),
        ];
        let prompt = build_prompt(None, &history, 10_000);
        assert_eq!(roles(&prompt), owned(&[(PromptRole::User, "hello\n\nagain")]));
    }

    #[test]
    fn an_answers_finished_tool_calls_go_back_and_unfinished_ones_do_not() {
        let tool = |id: &str, state: ToolState| {
            MessagePart::Tool(shared::ToolPart {
                tool_call_id: id.into(),
                tool_name: "lookup".into(),
                state,
                input: Some(serde_json::json!({})),
                output: (state == ToolState::OutputAvailable).then(|| serde_json::json!(1)),
                error_text: None,
                provider_executed: None,
                call_provider_metadata: None,
            })
        };
        let answer = vec![
            tool("done", ToolState::OutputAvailable),
            tool("cut", ToolState::InputAvailable),
            MessagePart::StepStart,
            MessagePart::Text { text: "It is 1.".into() },
        ];
        let history = vec![(Role::User, text("more?")), (Role::Assistant, answer), (Role::User, text("what?"))];
        let prompt = build_prompt(None, &history, 10_000);
        let ids: Vec<&str> = prompt[1]
            .parts
            .iter()
            .filter_map(|p| match p {
                MessagePart::Tool(tool) => Some(tool.tool_call_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(ids, ["done"]);
        assert!(prompt[1].parts.contains(&MessagePart::StepStart));
    }
}
