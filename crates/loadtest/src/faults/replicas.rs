//! With replicas: what one process stored is what every process serves. For a sample of a scenario's chats, each
//! replica is asked directly (through the proxy, by `x-replica`) for the chat (its title), its messages and a search
//! for the question's unique word, and must answer exactly as the others; a vote given through one replica must be
//! seen through every other.

use serde_json::{Value, json};

use super::client::{ChatClient, TurnRecord};

/// Violations found on `sample` chats of `records` across `replicas` processes.
pub async fn check(client: &ChatClient, records: &[TurnRecord], sample: usize, replicas: usize) -> Vec<String> {
    let mut violations = Vec::new();
    let chosen = records.iter().filter(|r| r.acknowledged && r.answer_id.is_some()).take(sample);
    for (index, record) in chosen.enumerate() {
        let plan = &record.plan;
        let chat = plan.chat_id;
        let Some(answer) = record.answer_id else { continue };
        if index < 3 {
            let path = format!("/api/chats/{chat}/messages/{answer}/feedback");
            let vote =
                client.on_replica(reqwest::Method::PUT, 0, &plan.user, &path, Some(json!({"rating": "up"}))).await;
            // An answer still being written (or ended by a fault) may refuse a vote; only a stored vote is followed.
            if vote.as_ref().is_ok_and(|(status, _)| !status.is_success()) {
                continue;
            }
        }
        let word = plan.message.split_whitespace().find(|w| w.starts_with('q') && w.len() == 13).unwrap_or_default();
        let mut views: Vec<(Value, Value, bool)> = Vec::new();
        let (chat_path, messages_path) = (format!("/api/chats/{chat}"), format!("/api/chats/{chat}/messages"));
        let search_path = format!("/api/chats?q={word}&limit=100");
        for replica in 0..replicas {
            let get = |path| client.on_replica(reqwest::Method::GET, replica, &plan.user, path, None);
            let (summary, messages, search) = (get(&chat_path), get(&messages_path), get(&search_path));
            match (summary.await, messages.await, search.await) {
                (Ok((_, mut summary)), Ok((_, messages)), Ok((_, found))) => {
                    let listed = found["chats"]
                        .as_array()
                        .is_some_and(|chats| chats.iter().any(|c| c["id"].as_str() == Some(&chat.to_string())));
                    // Search results carry the hit; the chat itself is the same everywhere.
                    summary.as_object_mut().map(|s| s.remove("matched_message_id"));
                    views.push((summary, messages, listed));
                }
                (summary, messages, search) => violations.push(format!(
                    "replica {replica} did not answer for chat {chat}: {:?}",
                    [summary.err(), messages.err(), search.err()]
                )),
            }
        }
        let Some((first_summary, first_messages, _)) = views.first().cloned() else { continue };
        for (replica, (summary, messages, listed)) in views.iter().enumerate() {
            if *summary != first_summary {
                violations
                    .push(format!("replica {replica} shows chat {chat} as {summary}, replica 0 as {first_summary}"));
            }
            if *messages != first_messages {
                violations.push(format!("replica {replica} shows other messages of chat {chat} than replica 0"));
            }
            if !word.is_empty() && !listed {
                violations.push(format!("replica {replica} does not find chat {chat} by the word {word}"));
            }
            if index < 3 {
                let voted = messages["messages"]
                    .as_array()
                    .and_then(|all| all.iter().find(|m| m["id"].as_str() == Some(&answer.to_string())))
                    .is_some_and(|m| m["metadata"]["feedback"]["rating"] == "up");
                if !voted {
                    violations.push(format!("replica {replica} does not show the vote given on answer {answer}"));
                }
            }
        }
    }
    violations
}
