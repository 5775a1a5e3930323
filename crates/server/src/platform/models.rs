//! The models and agents users may pick, and the clients that reach them, decided at start.
//!
//! - Serving endpoints (`LLM_BASE_URL`, else `{DATABRICKS_HOST}/serving-endpoints`): one client per protocol, chat
//!   completions, the Responses API and ChatAgent; each endpoint is spoken to in the protocol of its `task`. The
//!   configured default endpoint's task is looked up at start when the workspace can be asked: an endpoint of a task
//!   this app cannot call stops the start with a message naming the task, never a guess.
//! - Agents served by Databricks Apps (`CHAT_AGENTS`): a client each, at its URL, with a workspace OAuth token.
//! - The small model that runs in this process, when `LOCAL_MODEL` says so.

use std::sync::Arc;

use anyhow::Context;

use super::is_workspace_url;
use crate::config::{Config, LocalModelMode, ModelAuth};
use crate::databricks::{AuthType, DatabricksAuth};
use crate::llm::app_agent::AppAgent;
use crate::llm::catalog::{ModelEntry, display_name};
use crate::llm::chat_agent::ChatAgent;
use crate::llm::chat_completions::ChatCompletions;
use crate::llm::directory::{Discovery, ModelDirectory, describe_endpoint};
use crate::llm::responses::{Responses, ResponsesTarget};
use crate::llm::routing::ModelRouter;
use crate::llm::token::{DatabricksToken, StaticToken, TokenSource};
use crate::llm::transport::{HttpModel, http_client};
use crate::llm::{ChatModel, ModelCatalog, Protocol};

/// The models users may pick and the client that reaches them (none when no model is configured).
pub struct Models {
    /// The live list of offered models.
    pub directory: Arc<ModelDirectory>,
    /// The model client.
    pub client: Option<Arc<dyn ChatModel>>,
}

/// The offered models and the client that reaches them: the configured endpoints (see [`remote_models`]), the
/// agent apps, and, when `LOCAL_MODEL` says so, the small model that runs in this process. By default (`auto`) the
/// local model is offered only when nothing else is configured, so a fresh checkout answers with no configuration.
pub async fn models(config: &Config, databricks: Option<&DatabricksAuth>) -> anyhow::Result<Models> {
    let (directory, router) = remote_models(config, databricks).await?;
    let (directory, router) = app_agents(config, databricks, directory, router)?;
    let wants_local = match config.models.local.mode {
        LocalModelMode::Off => false,
        LocalModelMode::On => true,
        LocalModelMode::Auto => router.is_empty(),
    };
    let (directory, router) =
        if wants_local { with_local_model(config, directory, router)? } else { (directory, router) };
    if router.is_empty() {
        tracing::warn!("no chat model configured: the app runs, but cannot answer (see the README)");
    }
    let client = (!router.is_empty()).then(|| Arc::new(router) as Arc<dyn ChatModel>);
    Ok(Models { directory: Arc::new(directory), client })
}

#[cfg(feature = "local-model")]
fn with_local_model(
    config: &Config,
    directory: ModelDirectory,
    router: ModelRouter,
) -> anyhow::Result<(ModelDirectory, ModelRouter)> {
    use crate::llm::local::LocalModel;

    let http = reqwest::Client::builder()
        .user_agent(concat!("databricks-chat/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(std::time::Duration::from_secs(60))
        .build()
        .context("building the HTTP client for the local model's download")?;
    let local = LocalModel::start(config.models.local.clone(), http);
    tracing::info!(
        model = local.id(),
        alone = router.is_empty(),
        "offering the built-in local model ({}), on this machine's CPU",
        local.display_name()
    );
    let directory = directory.with_in_process(local.clone());
    Ok((directory, router.with(Protocol::Local, local)))
}

#[cfg(not(feature = "local-model"))]
fn with_local_model(
    config: &Config,
    directory: ModelDirectory,
    router: ModelRouter,
) -> anyhow::Result<(ModelDirectory, ModelRouter)> {
    if config.models.local.mode == LocalModelMode::On {
        anyhow::bail!(
            "LOCAL_MODEL=on, but this build has no local model (it was built without the `local-model` feature)"
        );
    }
    Ok((directory, router))
}

/// The serving endpoints, their credentials and the models they offer, with a router holding the client of each
/// protocol they are spoken to in; an empty router when no endpoint is configured.
///
/// - Endpoint: `LLM_BASE_URL`, else `{DATABRICKS_HOST}/serving-endpoints`.
/// - Token: `LLM_API_KEY`, else the workspace credentials when the endpoint is on Databricks (never sent to
///   another host), else none (local servers such as Ollama).
/// - Models: the workspace's ready chat and agent endpoints (`MODEL_DISCOVERY`, on by default for the workspace's
///   own serving endpoints), else `DATABRICKS_SERVING_ENDPOINT` plus `CHAT_MODELS`.
async fn remote_models(
    config: &Config,
    databricks: Option<&DatabricksAuth>,
) -> anyhow::Result<(ModelDirectory, ModelRouter)> {
    let settings = &config.models;
    let mut configured = ModelCatalog::new(settings.default_model.as_deref(), settings.chat_models.as_deref());
    let base_url = match (&settings.base_url, databricks) {
        (Some(url), _) => url.clone(),
        (None, Some(auth)) => format!("{}/serving-endpoints", auth.host()),
        (None, None) => {
            if settings.default_model.is_some() || (settings.chat_models.is_some() && settings.agents.is_empty()) {
                anyhow::bail!(
                    "a model is configured (DATABRICKS_SERVING_ENDPOINT or CHAT_MODELS) but there is no endpoint \
                     to call: set DATABRICKS_HOST with credentials (or DATABRICKS_CONFIG_PROFILE), or LLM_BASE_URL"
                );
            }
            if settings.discovery == Some(true) {
                anyhow::bail!("MODEL_DISCOVERY=true needs a Databricks workspace: set DATABRICKS_HOST");
            }
            return Ok((ModelDirectory::fixed(ModelCatalog::default()), ModelRouter::new()));
        }
    };
    let workspace = databricks.filter(|auth| is_workspace_url(&base_url, auth.host()));
    let tokens: Arc<dyn TokenSource> = match (&settings.api_key, workspace) {
        (Some(key), _) => Arc::new(StaticToken(Some(key.clone()))),
        (None, Some(auth)) => Arc::new(DatabricksToken(auth.clone())),
        (None, None) => Arc::new(StaticToken(None)),
    };
    let serving_endpoints = base_url.ends_with("/serving-endpoints");
    let discover = match settings.discovery {
        Some(true) => match databricks {
            Some(_) => true,
            None => anyhow::bail!("MODEL_DISCOVERY=true needs a Databricks workspace: set DATABRICKS_HOST"),
        },
        Some(false) => false,
        // The workspace's endpoint list describes what its own /serving-endpoints serves, not a gateway elsewhere.
        None => workspace.is_some() && serving_endpoints,
    };
    if !discover && configured.is_empty() {
        anyhow::bail!(
            "LLM_BASE_URL is set but no model is: set DATABRICKS_SERVING_ENDPOINT (the endpoint name) or CHAT_MODELS"
        );
    }
    let http = http_client(&settings.client).context("building the HTTP client for model calls")?;
    if let (Some(auth), Some(default)) = (workspace.filter(|_| serving_endpoints), settings.default_model.as_deref()) {
        configured = with_default_task(configured, &http, auth, default).await?;
    }
    let router = ModelRouter::new()
        .with(
            Protocol::ChatCompletions,
            Arc::new(HttpModel::new(
                ChatCompletions::new(&base_url),
                http.clone(),
                tokens.clone(),
                settings.client.clone(),
            )),
        )
        .with(
            Protocol::Responses,
            Arc::new(HttpModel::new(
                Responses::new(ResponsesTarget::ServingEndpoints { base_url: base_url.clone() }),
                http.clone(),
                tokens.clone(),
                settings.client.clone(),
            )),
        )
        .with(
            Protocol::ChatAgent,
            Arc::new(HttpModel::new(ChatAgent::new(&base_url), http.clone(), tokens, settings.client.clone())),
        );
    let directory = match (discover, databricks) {
        (true, Some(auth)) => {
            let allowed = settings.chat_models.as_deref().map(|list| ModelCatalog::new(None, Some(list)));
            let default_model = settings.default_model.as_deref().and_then(|id| configured.get(id)).cloned();
            let discovery = Discovery { http, auth: auth.clone(), ttl: settings.models_cache, allowed, default_model };
            tracing::info!(base_url = %base_url, "models: the workspace's ready chat and agent endpoints");
            ModelDirectory::discovering(configured, discovery)
        }
        _ => {
            tracing::info!(base_url = %base_url, models = configured.entries().len(), "models: configured list");
            ModelDirectory::fixed(configured)
        }
    };
    Ok((directory, router))
}

/// The configured default endpoint with the protocol of its `task`, asked of the workspace. A task this app cannot
/// call, or an endpoint that does not exist, stops the start: guessing would fail every turn with a confusing error
/// instead. When the workspace cannot say (unreachable, or it refuses the app's credentials, which every turn will
/// then report clearly), the endpoint is called as a chat model, and the workspace's endpoint list corrects that as
/// soon as it can be read (discovery is on by default).
async fn with_default_task(
    configured: ModelCatalog,
    http: &reqwest::Client,
    auth: &DatabricksAuth,
    default: &str,
) -> anyhow::Result<ModelCatalog> {
    let task = match describe_endpoint(http, auth, default).await {
        Ok(Some(task)) => task,
        Ok(None) => anyhow::bail!(
            "DATABRICKS_SERVING_ENDPOINT names `{default}`, which is not a serving endpoint of {}",
            auth.host()
        ),
        Err(error) => {
            tracing::warn!(
                endpoint = default,
                error = %error,
                "could not look up the default serving endpoint's task; calling it as a chat model for now"
            );
            return Ok(configured);
        }
    };
    let Some(protocol) = Protocol::for_task(&task) else {
        anyhow::bail!(
            "the serving endpoint `{default}` (DATABRICKS_SERVING_ENDPOINT) has the task `{task}`, which is neither \
             a chat model nor an agent: this app calls endpoints of the tasks llm/v1/chat, agent/v1/chat, \
             agent/v2/chat, agent/v1/responses and agent/v2/responses"
        );
    };
    let writes_titles = !task.starts_with("agent/");
    let entries = configured
        .entries()
        .iter()
        .cloned()
        .map(|entry| {
            if entry.id == default {
                ModelEntry { protocol, task: Some(task.clone()), writes_titles, ..entry }
            } else {
                entry
            }
        })
        .collect();
    Ok(ModelCatalog::from_entries(entries))
}

/// Agents served by Databricks Apps (`CHAT_AGENTS`), a client each. Apps take OAuth tokens only: a personal access
/// token stops the start with what to configure instead. A plain `http://` URL on this machine (an agent in
/// development) is called without a token.
fn app_agents(
    config: &Config,
    databricks: Option<&DatabricksAuth>,
    mut directory: ModelDirectory,
    mut router: ModelRouter,
) -> anyhow::Result<(ModelDirectory, ModelRouter)> {
    let settings = &config.models;
    if settings.agents.is_empty() {
        return Ok((directory, router));
    }
    let http = http_client(&settings.client).context("building the HTTP client for agent apps")?;
    let names = ModelCatalog::new(None, settings.chat_models.as_deref());
    let mut entries = Vec::with_capacity(settings.agents.len());
    for agent in &settings.agents {
        let local = reqwest::Url::parse(&agent.url).is_ok_and(|url| {
            url.scheme() == "http" && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
        });
        let tokens: Arc<dyn TokenSource> = match databricks {
            _ if local => Arc::new(StaticToken(None)),
            Some(auth) if auth.auth_type() == AuthType::Pat && settings.auth == ModelAuth::App => anyhow::bail!(
                "CHAT_AGENTS: the agent `{}` is a Databricks App, and Apps refuse personal access tokens: sign in with \
                 OAuth (DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET, or a CLI profile with auth_type = \
                 databricks-cli) or call agents as the user (MODEL_AUTH=user)",
                agent.id
            ),
            Some(auth) => Arc::new(DatabricksToken(auth.clone())),
            None => anyhow::bail!(
                "CHAT_AGENTS: the agent `{}` at {} needs Databricks credentials (DATABRICKS_HOST with OAuth)",
                agent.id,
                agent.url
            ),
        };
        let client = AppAgent::new(&agent.url, http.clone(), tokens, settings.client.clone());
        router = router.with_model(&agent.id, Arc::new(client));
        let display = names.get(&agent.id).map_or_else(|| display_name(&agent.id), |entry| entry.display_name.clone());
        entries.push(ModelEntry {
            id: agent.id.clone(),
            display_name: display,
            description: None,
            protocol: Protocol::AgentInvocations,
            task: None,
            writes_titles: false,
        });
        tracing::info!(agent = %agent.id, url = %agent.url, "offering an agent app");
    }
    directory = directory.with_agents(entries);
    Ok((directory, router))
}
