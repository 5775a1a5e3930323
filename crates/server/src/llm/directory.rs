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
/// The endpoint tasks offered in the picker: chat models and every kind of agent this app can call.
const OFFERED_TASKS: &[&str] =
    &["llm/v1/chat", "agent/v1/chat", "agent/v2/chat", "agent/v1/responses", "agent/v2/responses"];

/// The live model list.
pub struct ModelDirectory {
    configured: Arc<ModelCatalog>,
    discovery: Option<Discovery>,
    cache: Mutex<Cached>,
    in_process: Option<Arc<dyn InProcessModel>>,
    /// Agents served by Databricks Apps, offered whatever the list.
    agents: Vec<ModelEntry>,
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
    /// `DATABRICKS_SERVING_ENDPOINT` (with its protocol, looked up at start): offered first, even if the listing
    /// does not show it ready.
    pub default_model: Option<ModelEntry>,
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
        Self {
            configured: Arc::new(catalog),
            discovery: None,
            cache: Mutex::new(Cached::empty()),
            in_process: None,
            agents: Vec::new(),
        }
    }

    /// A list discovered from the workspace; `configured` is offered while the workspace cannot be asked.
    pub fn discovering(configured: ModelCatalog, discovery: Discovery) -> Self {
        Self {
            configured: Arc::new(configured),
            discovery: Some(discovery),
            cache: Mutex::new(Cached::empty()),
            in_process: None,
            agents: Vec::new(),
        }
    }

    /// Adds agents served by Databricks Apps to the list.
    pub fn with_agents(mut self, agents: Vec<ModelEntry>) -> Self {
        self.agents = agents;
        self
    }

    /// Adds a model served by this process to the list.
    pub fn with_in_process(mut self, model: Arc<dyn InProcessModel>) -> Self {
        self.in_process = Some(model);
        self
    }

    /// The current list. Concurrent callers share one listing request.
    pub async fn catalog(&self) -> Arc<ModelCatalog> {
        let listed = self.listed().await;
        let local = self.in_process.as_ref().and_then(|model| model.entry());
        if local.is_none() && self.agents.is_empty() {
            return listed;
        }
        let mut entries = listed.entries().to_vec();
        for entry in self.agents.iter().cloned().chain(local) {
            entries.retain(|e| e.id != entry.id);
            entries.push(entry);
        }
        Arc::new(ModelCatalog::from_entries(entries))
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

/// The `task` of the workspace's serving endpoint `name` (`None`: no such endpoint). Asked a few times over a few
/// seconds when the workspace cannot be reached or answers 5xx/429; a refusal (401, 403) is not retried.
pub async fn describe_endpoint(
    http: &reqwest::Client,
    auth: &DatabricksAuth,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let url = format!("{}/api/2.0/serving-endpoints/{name}", auth.host());
    let mut pause = Duration::from_millis(500);
    for attempt in 1..=4 {
        let result: Result<Option<String>, (bool, anyhow::Error)> = async {
            let token = auth.token().await.map_err(|e| (false, e.into()))?;
            let response = http
                .get(&url)
                .bearer_auth(token.expose_secret())
                .timeout(LIST_TIMEOUT)
                .send()
                .await
                .map_err(|e| (true, e.into()))?;
            match response.status() {
                reqwest::StatusCode::NOT_FOUND => Ok(None),
                status if status.is_success() => {
                    let endpoint: Endpoint = response.json().await.map_err(|e| (true, e.into()))?;
                    Ok(Some(endpoint.task.unwrap_or_default()))
                }
                status => {
                    let transient = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                    let body = response.text().await.unwrap_or_default();
                    let message = super::transport::error_body_message(&body);
                    Err((transient, anyhow::anyhow!("GET {url} answered {status}: {message}")))
                }
            }
        }
        .await;
        match result {
            Ok(task) => return Ok(task),
            Err((true, error)) if attempt < 4 => {
                tracing::warn!(error = %error, "looking up a serving endpoint failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err((_, error)) => return Err(error),
        }
    }
    unreachable!("the last attempt returns")
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
                // Agents answer with their own tools and take their time: titles come from a chat model.
                let writes_titles = !task.starts_with("agent/");
                Some(ModelEntry { description, protocol, task: Some(task), writes_titles, ..entry })
            })
            .collect();
        entries.sort_by_key(|entry| entry.display_name.to_lowercase());
        if let Some(default) = &self.default_model {
            let entry = entries
                .iter()
                .position(|e| e.id == default.id)
                .map(|at| entries.remove(at))
                .unwrap_or_else(|| default.clone());
            entries.insert(0, entry);
        }
        ModelCatalog::from_entries(entries)
    }
}

#[cfg(test)]
mod tests {
    use shared::ModelKind;

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
            default_model: default.map(ModelEntry::named),
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
    fn only_ready_chat_and_agent_endpoints_sorted_with_the_default_first() {
        let catalog = discovery(None, Some("databricks-meta-llama-3-3-70b-instruct")).catalog_from(sample());
        assert_eq!(
            ids(&catalog),
            ["databricks-meta-llama-3-3-70b-instruct", "databricks-claude-sonnet-4-5", "my-agent"]
        );
        assert_eq!(catalog.entries()[1].display_name, "Claude Sonnet 4.5");
        let entry = &catalog.entries()[1];
        assert_eq!((entry.protocol, entry.task.as_deref()), (Protocol::ChatCompletions, Some("llm/v1/chat")));
        let agent = &catalog.entries()[2];
        assert_eq!((agent.protocol, agent.kind(), agent.writes_titles), (Protocol::ChatAgent, ModelKind::Agent, false));
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
