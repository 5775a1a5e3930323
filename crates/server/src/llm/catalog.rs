//! The models users may pick: the default endpoint plus `CHAT_MODELS`, with display names, each with the
//! protocol it is spoken to in.

use shared::{ModelInfo, ModelKind, ModelList};

/// How a model is spoken to; the router holds one client per protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OpenAI-compatible chat completions (Databricks foundation models, AI Gateway, `llm/v1/chat` and
    /// `agent/v1/chat` serving endpoints, any OpenAI-compatible server).
    ChatCompletions,
    /// The OpenAI Responses API (MLflow `ResponsesAgent`, Agent Bricks: `agent/v1/responses`, `agent/v2/responses`).
    Responses,
    /// MLflow `ChatAgent` (`agent/v2/chat`).
    ChatAgent,
    /// Agent Bricks `POST /api/invocations` on an agent served by a Databricks App.
    AgentInvocations,
    /// The small model that runs in this process.
    Local,
}

impl Protocol {
    /// The protocol of a serving endpoint with this `task` (AGENTS-PROTOCOL.md §A); `None` for a task that is not
    /// a chat (embeddings, completions, custom models).
    pub fn for_task(task: &str) -> Option<Self> {
        match task {
            "llm/v1/chat" | "agent/v1/chat" => Some(Protocol::ChatCompletions),
            "agent/v1/responses" | "agent/v2/responses" => Some(Protocol::Responses),
            "agent/v2/chat" => Some(Protocol::ChatAgent),
            _ => None,
        }
    }

    /// Name for logs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::ChatCompletions => "chat completions",
            Protocol::Responses => "Responses API",
            Protocol::ChatAgent => "ChatAgent",
            Protocol::AgentInvocations => "Agent Bricks invocations",
            Protocol::Local => "local model",
        }
    }
}

/// One offered model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// Name sent to the endpoint as `model`.
    pub id: String,
    /// Name shown in the picker.
    pub display_name: String,
    /// Note shown in the picker.
    pub description: Option<String>,
    /// How it is spoken to.
    pub protocol: Protocol,
    /// The serving endpoint's `task`, when the workspace listed it.
    pub task: Option<String>,
    /// Whether new chats may get a title written by this model in the background, alongside the first answer.
    /// A model that answers one turn at a time on this machine's CPU says no: the title would delay the answer.
    pub writes_titles: bool,
}

impl ModelEntry {
    /// Whether this server's tools are offered to it: chat-completion models only. An agent brings its own tools,
    /// and the local model cannot call any.
    pub fn offers_tools(&self) -> bool {
        self.protocol == Protocol::ChatCompletions && self.kind() == ModelKind::Model
    }

    /// A model, or an agent: any serving endpoint of an `agent/*` task, and every agent protocol.
    pub fn kind(&self) -> ModelKind {
        let agent_task = self.task.as_deref().is_some_and(|task| task.starts_with("agent/"));
        match self.protocol {
            Protocol::ChatCompletions | Protocol::Local if !agent_task => ModelKind::Model,
            _ => ModelKind::Agent,
        }
    }

    /// An entry named after a chat-completions endpoint.
    pub fn named(id: &str) -> Self {
        Self::with_name(id, display_name(id))
    }

    /// A chat-completions endpoint with a display name.
    pub fn with_name(id: &str, display_name: impl Into<String>) -> Self {
        Self {
            id: id.to_owned(),
            display_name: display_name.into(),
            description: None,
            protocol: Protocol::ChatCompletions,
            task: None,
            writes_titles: true,
        }
    }
}

/// The offered models; the default first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelCatalog {
    entries: Vec<ModelEntry>,
}

impl ModelCatalog {
    /// Builds the catalog from the default model and a `CHAT_MODELS` list (`id` or `id=Display Name`, comma
    /// separated). The default is offered even when the list omits it.
    pub fn new(default: Option<&str>, list: Option<&str>) -> Self {
        let mut entries: Vec<ModelEntry> = Vec::new();
        let mut add = |entry: ModelEntry| {
            if !entry.id.is_empty() && !entries.iter().any(|e| e.id == entry.id) {
                entries.push(entry);
            }
        };
        if let Some(default) = default {
            add(ModelEntry::named(default.trim()));
        }
        for item in list.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once('=') {
                Some((id, name)) if !name.trim().is_empty() => add(ModelEntry::with_name(id.trim(), name.trim())),
                _ => add(ModelEntry::named(item.trim_end_matches('='))),
            }
        }
        // A display name given in CHAT_MODELS wins over the derived name of the default.
        Self { entries }.with_names_from(list)
    }

    fn with_names_from(mut self, list: Option<&str>) -> Self {
        for item in list.unwrap_or_default().split(',') {
            if let Some((id, name)) = item.split_once('=')
                && let Some(entry) = self.entries.iter_mut().find(|e| e.id == id.trim())
                && !name.trim().is_empty()
            {
                entry.display_name = name.trim().to_owned();
            }
        }
        self
    }

    /// A catalog with exactly these entries (the first is the default).
    pub fn from_entries(entries: Vec<ModelEntry>) -> Self {
        Self { entries }
    }

    /// Whether no model is offered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The default model.
    pub fn default_model(&self) -> Option<&ModelEntry> {
        self.entries.first()
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// All entries, default first.
    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// The `GET /api/models` view; `tools_on` says whether this server offers tools at all (the entries that
    /// cannot use them then say so).
    pub fn to_list(&self, hint: Option<String>, tools_on: bool, window: &dyn Fn(&ModelEntry) -> usize) -> ModelList {
        let default = self.default_model().map(|m| m.id.clone());
        ModelList {
            models: self
                .entries
                .iter()
                .map(|e| ModelInfo {
                    id: e.id.clone(),
                    display_name: e.display_name.clone(),
                    is_default: Some(&e.id) == default.as_ref(),
                    description: match (&e.description, tools_on && e.protocol == Protocol::Local) {
                        (Some(note), true) => Some(format!("{note}; cannot use tools")),
                        (None, true) => Some("Cannot use tools".to_owned()),
                        (note, false) => note.clone(),
                    },
                    kind: e.kind(),
                    tools: tools_on && e.offers_tools(),
                    context_tokens: window(e) as u64,
                })
                .collect(),
            default_model: default,
            hint: if self.is_empty() { hint } else { None },
        }
    }
}

/// A readable name for an endpoint: `databricks-meta-llama-3-3-70b-instruct` → `Meta Llama 3.3 70B Instruct`.
pub fn display_name(id: &str) -> String {
    let base = id.strip_prefix("databricks-").unwrap_or(id);
    let mut words: Vec<String> = Vec::new();
    for token in base.split(['-', '_']).filter(|t| !t.is_empty()) {
        let is_number = token.chars().all(|c| c.is_ascii_digit());
        match words.last_mut() {
            // Version numbers are written 3-3 in endpoint names and 3.3 in prose.
            Some(last) if is_number && last.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                last.push('.');
                last.push_str(token);
            }
            _ => words.push(word(token)),
        }
    }
    if words.is_empty() { id.to_owned() } else { words.join(" ") }
}

fn word(token: &str) -> String {
    const UPPER: [&str; 6] = ["gpt", "oss", "gte", "bge", "llm", "ai"];
    if UPPER.contains(&token.to_ascii_lowercase().as_str()) {
        return token.to_ascii_uppercase();
    }
    // Sizes such as 70b or 8x7b read better in capitals.
    if token.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return token.to_ascii_uppercase();
    }
    let mut chars = token.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_read_well() {
        assert_eq!(display_name("databricks-claude-sonnet-4-5"), "Claude Sonnet 4.5");
        assert_eq!(display_name("databricks-meta-llama-3-3-70b-instruct"), "Meta Llama 3.3 70B Instruct");
        assert_eq!(display_name("databricks-gpt-oss-120b"), "GPT OSS 120B");
        assert_eq!(display_name("my_endpoint"), "My Endpoint");
        assert_eq!(display_name("llama3:8b"), "Llama3:8b");
    }

    #[test]
    fn the_default_comes_first_and_is_offered_once() {
        let catalog = ModelCatalog::new(Some("b"), Some("a, b=Bee ,c="));
        let ids: Vec<&str> = catalog.entries().iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c"]);
        assert_eq!(catalog.get("b").map(|e| e.display_name.as_str()), Some("Bee"));
        assert_eq!(catalog.default_model().map(|e| e.id.as_str()), Some("b"));
    }

    #[test]
    fn an_empty_catalog_explains_itself() {
        let list = ModelCatalog::new(None, None).to_list(Some("configure a model".into()), false, &|_| 4096);
        assert!(list.models.is_empty());
        assert_eq!(list.hint.as_deref(), Some("configure a model"));
    }
}
