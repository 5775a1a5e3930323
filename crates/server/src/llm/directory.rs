//! The models users may pick, as a live list: the configured ones, or (with a Databricks workspace) the
//! workspace's ready serving endpoints whose `task` is offered, intersected with `CHAT_MODELS` when that is set,
//! and cached for a few minutes (PROTOCOLS.md §B.6). Every listed endpoint keeps its `task`, which decides the
//! protocol it is spoken to in (AGENTS-PROTOCOL.md §A). A model that runs in this process is added to whichever list applies,
//! last (or alone), while it is available.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::catalog::{ModelCatalog, ModelEntry, Protocol};
use crate::databricks::DatabricksAuth;

/// After a failed listing, the configured models are offered and the listing is retried after this long.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// Longest wait for the workspace's endpoint list.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// The endpoint tasks offered in the picker: chat models. Agent tasks join this list as their protocols arrive.
const OFFERED_TASKS: &[&str] = &["llm/v1/chat"];

/// The live model list.
pub struct ModelDirectory {
    configured: Arc<ModelCatalog>,
    discovery: Option<Discovery>,
    cache: Mutex<Cached>,
    in_process: Option<Arc<dyn InProcessModel>>,
}

/// A model served by this process, offered only while it can answer or is getting ready to.
pub trait InProcessModel: Send + Sync {
    /// Its picker entry; `None` while it cannot be used.
    fn entry(&self) -> Option<ModelEntry>;
    /// Why it cannot be used and what to do, when it cannot.
    fn unavailable_reason(&self) -> Option<String>;
}

/// What `GET /api/models` says when there is no model at all.
pub const NO_MODEL_HINT: &str = "No chat model is configured. Set DATABRICKS_HOST (with a Databricks CLI profile or \
    token) to use the workspace's serving endpoints, or LLM_BASE_URL and DATABRICKS_SERVING_ENDPOINT for any \
    OpenAI-compatible endpoint.";

/// How to list the workspace's endpoints.
pub struct Discovery {
    /// HTTP client.
    pub http: reqwest::Client,
    /// The app's Databricks identity.
    pub auth: DatabricksAuth,
    /// How long a listing is reused.
    pub ttl: Duration,
    /// `CHAT_MODELS`: when set, only these endpoints are offered (with their display names).
    pub allowed: Option<ModelCatalog>,
    /// `DATABRICKS_SERVING_ENDPOINT`: offered first, even if the listing does not show it ready.
    pub default_model: Option<String>,
}

struct Cached {
    catalog: Option<Arc<ModelCatalog>>,
    fetched_at: Option<Instant>,
    failed_at: Option<Instant>,
}

#[derive(Deserialize)]
struct EndpointList {
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
struct Endpoint {
    name: String,
    #[serde(default)]
    task: Option<String>,
    #[serde(default)]
    state: Option<EndpointState>,
    /// Shown as the model's note in the picker.
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct EndpointState {
    #[serde(default)]
    ready: Option<String>,
}

impl ModelDirectory {
    /// A fixed list (no workspace to ask).
    pub fn fixed(catalog: ModelCatalog) -> Self {
        Self { configured: Arc::new(catalog), discovery: None, cache: Mutex::new(Cached::empty()), in_process: None }
    }

    /// A list discovered from the workspace; `configured` is offered while the workspace cannot be asked.
    pub fn discovering(configured: ModelCatalog, discovery: Discovery) -> Self {
        Self {
            configured: Arc::new(configured),
            discovery: Some(discovery),
            cache: Mutex::new(Cached::empty()),
            in_process: None,
        }
    }

    /// Adds a model served by this process to the list.
    pub fn with_in_process(mut self, model: Arc<dyn InProcessModel>) -> Self {
        self.in_process = Some(model);
        self
    }

    /// The current list. Concurrent callers share one listing request.
    pub async fn catalog(&self) -> Arc<ModelCatalog> {
        let listed = self.listed().await;
        match self.in_process.as_ref().and_then(|model| model.entry()) {
            Some(entry) => {
                let mut entries = listed.entries().to_vec();
                entries.retain(|e| e.id != entry.id);
                entries.push(entry);
                Arc::new(ModelCatalog::from_entries(entries))
            }
            None => listed,
        }
    }

    /// What to tell users when no model is offered.
    pub fn hint(&self) -> String {
        self.in_process
            .as_ref()
            .and_then(|model| model.unavailable_reason())
            .unwrap_or_else(|| NO_MODEL_HINT.to_owned())
    }

    async fn listed(&self) -> Arc<ModelCatalog> {
        let Some(discovery) = &self.discovery else { return self.configured.clone() };
        let mut cache = self.cache.lock().await;
        let fresh = cache.fetched_at.is_some_and(|at| at.elapsed() < discovery.ttl);
        let backing_off = cache.failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE);
        if let Some(catalog) = &cache.catalog
            && (fresh || backing_off)
        {
            return catalog.clone();
        }
        if backing_off {
            return self.configured.clone();
        }
        match discovery.list().await {
            Ok(catalog) => {
                let catalog = Arc::new(catalog);
                cache.catalog = Some(catalog.clone());
                cache.fetched_at = Some(Instant::now());
                cache.failed_at = None;
                catalog
            }
            Err(error) => {
                tracing::warn!(error = %error, "listing the workspace's serving endpoints failed; offering the configured models");
                cache.failed_at = Some(Instant::now());
                cache.catalog.clone().unwrap_or_else(|| self.configured.clone())
            }
        }
    }
}

impl Cached {
    fn empty() -> Self {
        Self { catalog: None, fetched_at: None, failed_at: None }
    }
}

impl Discovery {
    async fn list(&self) -> anyhow::Result<ModelCatalog> {
        let token = self.auth.token().await?;
        let url = format!("{}/api/2.0/serving-endpoints", self.auth.host());
        let response = self.http.get(&url).bearer_auth(token.expose_secret()).timeout(LIST_TIMEOUT).send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            anyhow::bail!("GET {url} answered {status}: {}", super::transport::error_body_message(&body));
        }
        let list: EndpointList = response.json().await?;
        Ok(self.catalog_from(list.endpoints))
    }

    fn catalog_from(&self, endpoints: Vec<Endpoint>) -> ModelCatalog {
        let mut entries: Vec<ModelEntry> = endpoints
            .into_iter()
            .filter_map(|endpoint| {
                let task = endpoint.task.clone()?;
                let protocol = Protocol::for_task(&task)?;
                let ready = endpoint.state.as_ref().and_then(|s| s.ready.as_deref()) == Some("READY");
                if !ready || !OFFERED_TASKS.contains(&task.as_str()) {
                    return None;
                }
                let entry = match &self.allowed {
                    Some(allowed) => allowed.get(&endpoint.name).cloned()?,
                    None => ModelEntry::named(&endpoint.name),
                };
                let description = entry.description.clone().or(endpoint.description.filter(|d| !d.trim().is_empty()));
                Some(ModelEntry { description, protocol, task: Some(task), ..entry })
            })
            .collect();
        entries.sort_by_key(|entry| entry.display_name.to_lowercase());
        if let Some(default) = &self.default_model {
            let entry = entries
                .iter()
                .position(|e| &e.id == default)
                .map(|at| entries.remove(at))
                .or_else(|| self.allowed.as_ref().and_then(|a| a.get(default).cloned()))
                .unwrap_or_else(|| ModelEntry::named(default));
            entries.insert(0, entry);
        }
        ModelCatalog::from_entries(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, task: &str, ready: &str) -> Endpoint {
        Endpoint {
            name: name.into(),
            task: Some(task.into()),
            state: Some(EndpointState { ready: Some(ready.into()) }),
            description: None,
        }
    }

    fn discovery(allowed: Option<&str>, default: Option<&str>) -> Discovery {
        let http = reqwest::Client::new();
        let vars = std::collections::HashMap::from([
            ("DATABRICKS_HOST".to_owned(), "https://example.cloud.databricks.com".to_owned()),
            ("DATABRICKS_TOKEN".to_owned(), "t".to_owned()),
        ]);
        let auth = DatabricksAuth::from_vars(&vars, http.clone()).ok().flatten().expect("auth");
        Discovery {
            http,
            auth,
            ttl: Duration::from_secs(60),
            allowed: allowed.map(|list| ModelCatalog::new(None, Some(list))),
            default_model: default.map(str::to_owned),
        }
    }

    fn ids(catalog: &ModelCatalog) -> Vec<&str> {
        catalog.entries().iter().map(|e| e.id.as_str()).collect()
    }

    fn sample() -> Vec<Endpoint> {
        vec![
            endpoint("databricks-meta-llama-3-3-70b-instruct", "llm/v1/chat", "READY"),
            endpoint("databricks-claude-sonnet-4-5", "llm/v1/chat", "READY"),
            endpoint("databricks-gte-large-en", "llm/v1/embeddings", "READY"),
            endpoint("my-agent", "agent/v2/chat", "READY"),
            endpoint("warming-up", "llm/v1/chat", "NOT_READY"),
        ]
    }

    #[test]
    fn only_ready_chat_endpoints_sorted_with_the_default_first() {
        let catalog = discovery(None, Some("databricks-meta-llama-3-3-70b-instruct")).catalog_from(sample());
        assert_eq!(ids(&catalog), ["databricks-meta-llama-3-3-70b-instruct", "databricks-claude-sonnet-4-5"]);
        assert_eq!(catalog.entries()[1].display_name, "Claude Sonnet 4.5");
        let entry = &catalog.entries()[1];
        assert_eq!((entry.protocol, entry.task.as_deref()), (Protocol::ChatCompletions, Some("llm/v1/chat")));
    }

    #[test]
    fn every_task_maps_to_its_protocol() {
        assert_eq!(Protocol::for_task("agent/v1/chat"), Some(Protocol::ChatCompletions));
        assert_eq!(Protocol::for_task("agent/v2/responses"), Some(Protocol::Responses));
        assert_eq!(Protocol::for_task("agent/v2/chat"), Some(Protocol::ChatAgent));
        assert_eq!(Protocol::for_task("llm/v1/embeddings"), None);
    }

    #[test]
    fn chat_models_restricts_and_names() {
        let catalog = discovery(Some("databricks-claude-sonnet-4-5=Claude,warming-up"), None).catalog_from(sample());
        assert_eq!(ids(&catalog), ["databricks-claude-sonnet-4-5"]);
        assert_eq!(catalog.entries()[0].display_name, "Claude");
    }

    #[test]
    fn the_configured_default_is_offered_even_when_not_listed() {
        let catalog = discovery(None, Some("warming-up")).catalog_from(sample());
        assert_eq!(ids(&catalog)[0], "warming-up");
    }
}
