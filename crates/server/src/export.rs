//! Chats taken out and brought back in: a chat as Markdown for people, and the plan that stores exported (or
//! shared) messages as a new chat with fresh ids and the same tree. Pure functions; the routes read and write.

use std::collections::HashMap;
use std::fmt::Write;

use shared::{MAX_IMPORT_MESSAGES, MAX_MESSAGE_CHARS, MessagePart, MessageStatus, Role, UiMessage};
use uuid::Uuid;

use crate::db::thread::CopiedMessage;

/// Messages to store as a new chat, with the branch it shows.
#[derive(Debug)]
pub struct CopyPlan {
    /// In the order given, parents first, with new ids.
    pub messages: Vec<CopiedMessage>,
    /// The new id of the branch's last message.
    pub leaf: Option<Uuid>,
}

/// Checks messages brought in from outside and gives them new ids, keeping their tree. A message's parent must come
/// before it; an answer that was still being written is stored as interrupted.
pub fn plan_copy(messages: &[UiMessage], leaf: Option<Uuid>) -> Result<CopyPlan, String> {
    if messages.len() > MAX_IMPORT_MESSAGES {
        return Err(format!("a chat can bring at most {MAX_IMPORT_MESSAGES} messages"));
    }
    let mut placed: HashMap<Uuid, (Uuid, i32)> = HashMap::with_capacity(messages.len());
    let mut copied = Vec::with_capacity(messages.len());
    for (at, message) in messages.iter().enumerate() {
        let which = || format!("message {} ({})", at + 1, message.id);
        if !matches!(message.role, Role::User | Role::Assistant) {
            return Err(format!("{}: only `user` and `assistant` messages can be brought in", which()));
        }
        let (parent_id, depth) = match message.metadata.parent_id {
            None => (None, 1),
            Some(parent) => match placed.get(&parent) {
                Some((new_parent, parent_depth)) => (Some(*new_parent), parent_depth + 1),
                None => return Err(format!("{}: its parent_id must be a message listed before it", which())),
            },
        };
        let parts_json = serde_json::to_string(&message.parts).map_err(|_| format!("{}: unreadable parts", which()))?;
        // PostgreSQL stores no NUL in JSON text.
        if parts_json.contains("\\u0000") {
            return Err(format!("{}: text must not contain NUL characters (\\u0000)", which()));
        }
        if message.role == Role::User && message.text().chars().count() > MAX_MESSAGE_CHARS {
            return Err(format!("{}: longer than {MAX_MESSAGE_CHARS} characters", which()));
        }
        let new_id = Uuid::now_v7();
        if placed.insert(message.id, (new_id, depth)).is_some() {
            return Err(format!("{}: the id is listed twice", which()));
        }
        let status = match message.metadata.status {
            MessageStatus::Streaming => MessageStatus::Interrupted,
            other => other,
        };
        copied.push(CopiedMessage {
            message_id: new_id,
            parent_id,
            depth,
            role: message.role.as_str().to_owned(),
            parts_json,
            status: status.as_str().to_owned(),
            // Text columns hold no NUL; what cannot be kept as it is, is left out.
            model: message
                .metadata
                .model
                .clone()
                .filter(|m| !m.is_empty() && m.chars().count() <= 200 && !m.chars().any(char::is_control)),
            input_tokens: message.metadata.usage.and_then(|u| u.input_tokens),
            output_tokens: message.metadata.usage.and_then(|u| u.output_tokens),
            error: message.metadata.error.as_deref().map(|e| e.chars().filter(|c| *c != '\0').take(2000).collect()),
            created_at: message.metadata.created_at,
        });
    }
    let leaf = match leaf {
        Some(old) => Some(placed.get(&old).ok_or("`leaf_id` must be one of the messages")?.0),
        None => copied.last().map(|m| m.message_id),
    };
    Ok(CopyPlan { messages: copied, leaf })
}

/// A chat as Markdown: the title, then each message under a heading saying who wrote it. With every branch, each
/// message is numbered and one that does not follow the message above it says which it follows.
pub fn markdown(title: &str, messages: &[UiMessage], every_branch: bool) -> String {
    let mut out = format!("# {}\n", title.trim());
    let numbers: HashMap<Uuid, usize> = messages.iter().enumerate().map(|(i, m)| (m.id, i + 1)).collect();
    let mut previous: Option<Uuid> = None;
    for (i, message) in messages.iter().enumerate() {
        let author = match message.role {
            Role::User => "You".to_owned(),
            _ => match &message.metadata.model {
                Some(model) => format!("Assistant ({model})"),
                None => "Assistant".to_owned(),
            },
        };
        out.push('\n');
        if every_branch {
            let _ = write!(out, "## {}. {author}", i + 1);
            if message.metadata.parent_id != previous {
                match message.metadata.parent_id.and_then(|p| numbers.get(&p)) {
                    Some(parent) => {
                        let _ = write!(out, " (another version, after {parent})");
                    }
                    None => out.push_str(" (another version of the first message)"),
                }
            }
            out.push('\n');
        } else {
            let _ = writeln!(out, "## {author}");
        }
        out.push('\n');
        let body = body_of(&message.parts);
        out.push_str(body.trim_end());
        out.push('\n');
        if let Some(note) = status_note(message) {
            let _ = writeln!(out, "\n*{note}*");
        }
        previous = Some(message.id);
    }
    out
}

/// The readable content of a message: its text, and a line for each tool it used.
fn body_of(parts: &[MessagePart]) -> String {
    let mut body = String::new();
    for part in parts {
        match part {
            MessagePart::Text { text } => body.push_str(text),
            MessagePart::Tool(tool) => {
                let _ = write!(body, "\n\n> Used the tool `{}`\n\n", tool.tool_name);
            }
            MessagePart::SourceUrl(source) => {
                let _ = write!(body, "\n\nSource: <{}>\n", source.url);
            }
            _ => {}
        }
    }
    body
}

fn status_note(message: &UiMessage) -> Option<String> {
    match message.metadata.status {
        MessageStatus::Stopped => Some("Stopped".into()),
        MessageStatus::Error | MessageStatus::Interrupted => {
            Some(message.metadata.error.clone().unwrap_or_else(|| "The answer failed.".into()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use shared::MessageMetadata;

    use super::*;

    fn message(id: u128, parent: Option<u128>, role: Role, text: &str) -> UiMessage {
        UiMessage {
            id: Uuid::from_u128(id),
            role,
            parts: vec![MessagePart::Text { text: text.into() }],
            metadata: MessageMetadata {
                status: MessageStatus::Complete,
                model: (role == Role::Assistant).then(|| "m".to_owned()),
                created_at: Utc::now(),
                usage: None,
                error: None,
                seq: id as i64,
                resume_cursor: None,
                trace_id: None,
                feedback: None,
                parent_id: parent.map(Uuid::from_u128),
                branch: None,
                pinned: false,
            },
        }
    }

    #[test]
    fn a_copy_keeps_the_tree_with_new_ids() {
        let messages = [
            message(1, None, Role::User, "q"),
            message(2, Some(1), Role::Assistant, "a"),
            message(3, Some(1), Role::Assistant, "a2"),
        ];
        let plan = plan_copy(&messages, Some(Uuid::from_u128(2))).expect("valid");
        let [q, a, a2] = &plan.messages[..] else { panic!("three messages") };
        assert!(messages.iter().all(|m| m.id != q.message_id), "new ids");
        assert_eq!((q.parent_id, q.depth), (None, 1));
        assert_eq!((a.parent_id, a.depth), (Some(q.message_id), 2));
        assert_eq!(a2.parent_id, Some(q.message_id));
        assert_eq!(plan.leaf, Some(a.message_id));
    }

    #[test]
    fn a_copy_refuses_what_it_cannot_store_faithfully() {
        let orphan = [message(2, Some(1), Role::Assistant, "a")];
        let twice = [message(1, None, Role::User, "q"), message(1, None, Role::User, "q")];
        let system = [message(1, None, Role::System, "s")];
        let nul = [message(1, None, Role::User, "a\0b")];
        assert!(plan_copy(&orphan, None).unwrap_err().contains("parent_id"));
        assert!(plan_copy(&twice, None).unwrap_err().contains("twice"));
        assert!(plan_copy(&system, None).is_err());
        assert!(plan_copy(&nul, None).unwrap_err().contains("NUL"));
        assert!(plan_copy(&[message(1, None, Role::User, "q")], Some(Uuid::from_u128(9))).is_err());
    }

    #[test]
    fn markdown_says_who_wrote_what_and_where_versions_branch() {
        let messages = [
            message(1, None, Role::User, "q"),
            message(2, Some(1), Role::Assistant, "a"),
            message(3, Some(1), Role::Assistant, "a2"),
        ];
        assert_eq!(markdown("T", &messages[..2], false), "# T\n\n## You\n\nq\n\n## Assistant (m)\n\na\n");
        let all = markdown("T", &messages, true);
        assert!(all.contains("## 3. Assistant (m) (another version, after 1)"), "{all}");
        assert!(all.contains("## 2. Assistant (m)\n"), "{all}");
    }
}
