//! Chat titles: the default of a chat created empty, an immediate one from the first message, then a short one
//! written by the model in the background.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shared::{Content, UiChunk};

use super::Inner;
use super::live::LiveTurn;
use crate::llm::{ChatModel, ModelEvent, ModelRequest, PromptMessage, PromptRole, Protocol};

/// Title of a chat created without one and before its first message.
pub const DEFAULT_TITLE: &str = "New chat";

/// Longest title derived from a message, in characters.
const MAX_DERIVED_CHARS: usize = 60;
/// Longest generated title kept, in characters.
const MAX_GENERATED_CHARS: usize = 80;
/// How long the model may take to write a title.
const TITLE_TIMEOUT: Duration = Duration::from_secs(20);

const TITLE_INSTRUCTIONS: &str = "You write titles for chat conversations. Reply with a title of 2 to 6 words \
    for a conversation that starts with the user's message. Reply with the title only: no quotes, no markdown, \
    no trailing punctuation.";

/// A title from the first user message: whitespace collapsed, cut at a word boundary.
pub fn derive_title(message: &str) -> String {
    let collapsed = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return DEFAULT_TITLE.to_owned();
    }
    if collapsed.chars().count() <= MAX_DERIVED_CHARS {
        return collapsed;
    }
    let cut: String = collapsed.chars().take(MAX_DERIVED_CHARS).collect();
    let at_word = match cut.rfind(' ') {
        Some(space) if space > MAX_DERIVED_CHARS / 2 => &cut[..space],
        _ => cut.as_str(),
    };
    format!("{}…", at_word.trim_end_matches([',', '.', ';', ':', '-']))
}

/// Cleans what a model wrote as a title; `None` if nothing usable remains.
pub fn clean_generated_title(raw: &str) -> Option<String> {
    let first_line = raw.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut title = first_line.trim_start_matches(['#', '*', '-', ' ']).to_owned();
    for prefix in ["Title:", "title:", "TITLE:"] {
        if let Some(rest) = title.strip_prefix(prefix) {
            title = rest.trim().to_owned();
        }
    }
    // Quotes, emphasis and trailing punctuation nest in any order ("**Title**." or "\"Title.\""): peel until stable.
    let decoration = |c: char| matches!(c, '"' | '\'' | '`' | '*' | '_' | '“' | '”') || c.is_whitespace();
    let mut peeled = title.as_str();
    loop {
        let next = peeled.trim_matches(decoration).trim_end_matches(['.', '!', '?', ':', ';']);
        if next == peeled {
            break;
        }
        peeled = next;
    }
    let title = peeled.split_whitespace().collect::<Vec<_>>().join(" ");
    if title.is_empty() || title.chars().any(char::is_control) {
        return None;
    }
    Some(if title.chars().count() > MAX_GENERATED_CHARS {
        title.chars().take(MAX_GENERATED_CHARS).collect()
    } else {
        title
    })
}

/// The model that writes a chat's titles.
pub(super) struct TitleModel {
    /// The client.
    pub client: Arc<dyn ChatModel>,
    /// The model's id.
    pub name: String,
    /// How it is spoken to.
    pub protocol: Protocol,
}

/// Asks the model for a title; `None` on any failure (the derived title then stays).
pub(super) async fn generate_title(
    model: &TitleModel,
    first_message: &str,
    user_token: Option<secrecy::SecretString>,
) -> Option<String> {
    let excerpt: String = first_message.chars().take(2000).collect();
    let request = ModelRequest {
        model: model.name.clone(),
        protocol: model.protocol,
        messages: vec![
            PromptMessage::text(PromptRole::System, TITLE_INSTRUCTIONS),
            PromptMessage::text(PromptRole::User, excerpt),
        ],
        tools: Vec::new(),
        temperature: Some(0.2),
        max_tokens: Some(32),
        user_token,
        context: None,
        resume: None,
    };
    let collect = async {
        let mut stream = model.client.stream(request);
        let mut text = String::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(ModelEvent::Content(Content::Text(t))) => text.push_str(&t),
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(error = %error, "title generation failed");
                    return None;
                }
            }
        }
        Some(text)
    };
    let text = tokio::time::timeout(TITLE_TIMEOUT, collect).await.ok().flatten()?;
    clean_generated_title(&text)
}

/// Replaces a new chat's derived title with one written by the model (unless the user renamed it meanwhile),
/// and tells the turn's subscribers.
pub(super) async fn retitle(
    inner: Arc<Inner>,
    turn: Arc<LiveTurn>,
    model: TitleModel,
    derived: String,
    first_message: String,
    user_token: Option<secrecy::SecretString>,
) {
    let Some(generated) = generate_title(&model, &first_message, user_token).await else {
        return;
    };
    if generated == derived {
        return;
    }
    match crate::db::chats::replace_auto_title(&inner.db, turn.chat_id, &derived, &generated).await {
        Ok(true) => turn.update(|log| {
            // Subscribers stop reading at `finish`; a title found later shows up on the next list refresh.
            if !log.is_sealed() {
                log.push_control(UiChunk::chat(turn.chat_id, generated));
            }
        }),
        Ok(false) => {}
        Err(error) => tracing::warn!(chat.id = %turn.chat_id, error = %error, "storing a generated title failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_titles_are_short_and_clean() {
        assert_eq!(derive_title("  How do I\n\nmigrate to Lakebase?  "), "How do I migrate to Lakebase?");
        let long = derive_title("Please explain in detail how the streaming protocol works, including resume and stop");
        assert!(long.ends_with('…') && long.chars().count() <= MAX_DERIVED_CHARS + 1, "{long}");
        assert_eq!(derive_title("   "), "New chat");
    }

    #[test]
    fn generated_titles_lose_quotes_markdown_and_prefixes() {
        assert_eq!(clean_generated_title("\"Lakebase Migration Plan\"").as_deref(), Some("Lakebase Migration Plan"));
        assert_eq!(clean_generated_title("## Title: **Trip to Lisbon**.\nmore").as_deref(), Some("Trip to Lisbon"));
        assert_eq!(clean_generated_title("   \n  "), None);
    }
}
