//! The chat prompt in the model's format (ChatML), written directly as token ids and fitted to the context.
//!
//! SmolLM2's template (`tokenizer.chat_template` in its GGUF) is
//! `<|im_start|>{role}\n{content}<|im_end|>\n` per message, a default system message when the conversation has
//! none, and `<|im_start|>assistant\n` to ask for the answer. Building ids rather than a string that is then
//! tokenized with control tokens enabled means message text can never close a turn or open a new one.

use crate::tokenizer::ChatTokenizer;
use crate::{LocalModelError, Result};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRole {
    /// Instructions.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
}

impl ChatRole {
    fn as_str(self) -> &'static str {
        match self {
            ChatRole::System => "system",
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Author.
    pub role: ChatRole,
    /// Text.
    pub content: String,
}

impl ChatMessage {
    /// A message.
    pub fn new(role: ChatRole, content: impl Into<String>) -> Self {
        Self { role, content: content.into() }
    }
}

/// ChatML for one tokenizer.
pub struct ChatTemplate {
    im_start: u32,
    im_end: u32,
    newline: Vec<u32>,
    default_system: Option<String>,
}

impl ChatTemplate {
    /// The template of a model whose `tokenizer.chat_template` is `template` (ChatML is required).
    pub fn new(tokenizer: &ChatTokenizer, template: Option<&str>) -> Result<Self> {
        let (Some(im_start), Some(im_end)) =
            (tokenizer.control_token("<|im_start|>"), tokenizer.control_token("<|im_end|>"))
        else {
            return Err(LocalModelError::Unsupported("the vocabulary has no ChatML tokens (<|im_start|>)".into()));
        };
        if template.is_some_and(|t| !t.contains("<|im_start|>")) {
            return Err(LocalModelError::Unsupported("the chat template is not ChatML".into()));
        }
        Ok(Self {
            im_start,
            im_end,
            newline: tokenizer.encode("\n")?,
            default_system: template.and_then(default_system),
        })
    }

    /// The system message the template adds when a conversation has none.
    pub fn default_system(&self) -> Option<&str> {
        self.default_system.as_deref()
    }

    /// The prompt for `messages` (oldest first; a leading system message replaces the default one), ending with
    /// the opening of the assistant's turn, in at most `budget` tokens.
    ///
    /// The system message and the newest message always stay; older messages are dropped oldest first, whole.
    /// When the newest message alone is too long, its beginning is cut (questions usually come last).
    pub fn prompt(&self, tokenizer: &ChatTokenizer, messages: &[ChatMessage], budget: usize) -> Result<Vec<u32>> {
        let (system, conversation) = match messages.split_first() {
            Some((first, rest)) if first.role == ChatRole::System => (Some(first.content.as_str()), rest),
            _ => (self.default_system(), messages),
        };
        let head = match system {
            Some(system) => self.message(tokenizer, ChatRole::System, system)?,
            None => Vec::new(),
        };
        let mut answer_opening = vec![self.im_start];
        answer_opening.extend(tokenizer.encode("assistant\n")?);

        // Newest first while fitting.
        let mut kept: Vec<(ChatRole, Vec<u32>)> = Vec::new();
        let mut used = head.len() + answer_opening.len();
        for (index, message) in conversation.iter().enumerate().rev() {
            let ids = self.message(tokenizer, message.role, &message.content)?;
            if used + ids.len() > budget {
                if index + 1 == conversation.len() {
                    kept.push((message.role, self.cut_to_fit(tokenizer, message, budget.saturating_sub(used))?));
                }
                break;
            }
            used += ids.len();
            kept.push((message.role, ids));
        }
        // The conversation the model sees starts with the user.
        while kept.len() > 1 && kept.last().is_some_and(|(role, _)| *role == ChatRole::Assistant) {
            kept.pop();
        }
        let mut ids = head;
        for (_, message) in kept.into_iter().rev() {
            ids.extend(message);
        }
        ids.extend(answer_opening);
        Ok(ids)
    }

    /// `<|im_start|>{role}\n{content}<|im_end|>\n`.
    fn message(&self, tokenizer: &ChatTokenizer, role: ChatRole, content: &str) -> Result<Vec<u32>> {
        let mut ids = vec![self.im_start];
        ids.extend(tokenizer.encode(&format!("{}\n{content}", role.as_str()))?);
        ids.push(self.im_end);
        ids.extend(&self.newline);
        Ok(ids)
    }

    /// The message with the beginning of its content dropped so that it takes at most `room` tokens.
    fn cut_to_fit(&self, tokenizer: &ChatTokenizer, message: &ChatMessage, room: usize) -> Result<Vec<u32>> {
        let mut opening = vec![self.im_start];
        opening.extend(tokenizer.encode(&format!("{}\n", message.role.as_str()))?);
        let closing_len = 1 + self.newline.len();
        let content = tokenizer.encode(&message.content)?;
        let keep = room.saturating_sub(opening.len() + closing_len).min(content.len());
        let mut ids = opening;
        ids.extend(&content[content.len() - keep..]);
        ids.push(self.im_end);
        ids.extend(&self.newline);
        Ok(ids)
    }
}

/// The default system message written into a ChatML template:
/// `... '<|im_start|>system\nYou are a helpful AI assistant ...<|im_end|>\n' ...`.
fn default_system(template: &str) -> Option<String> {
    const OPENING: &str = "<|im_start|>system\n";
    let start = template.find(OPENING)? + OPENING.len();
    let end = start + template[start..].find("<|im_end|>")?;
    let text = &template[start..end];
    (!text.is_empty() && !text.contains(['{', '}', '\''])).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::default_system;

    #[test]
    fn the_default_system_message_comes_from_the_template() {
        let template = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ \
                        '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
                        Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + \
                        message['content'] + '<|im_end|>' + '\n'}}{% endfor %}";
        assert_eq!(
            default_system(template).as_deref(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        assert_eq!(default_system("{{'<|im_start|>' + message['role'] + '\n'}}"), None);
    }
}
