//! What the app takes from the Databricks platform, decided once at start: the workspace credentials (unified
//! authentication), where model calls go and with which token, whether the model list is discovered from the
//! workspace, and whether the database password is a minted Lakebase credential.
//!
//! Every combination that cannot work fails at start with a message naming the variables to set, rather than
//! at the first chat.

use std::sync::Arc;

use anyhow::Context;

use crate::config::{Config, DatabaseSource, LocalModelMode};
use crate::databricks::{DatabricksAuth, LakebasePasswords, lakebase};
use crate::llm::chat_completions::ChatCompletions;
use crate::llm::directory::{Discovery, ModelDirectory};
use crate::llm::routing::ModelRouter;
use crate::llm::token::{DatabricksToken, StaticToken, TokenSource};
use crate::llm::transport::{HttpModel, http_client};
use crate::llm::{ChatModel, ModelCatalog, Protocol};

/// The models users may pick and the client that reaches them (none when no model endpoint is configured).
pub struct Models {
    /// The live list of offered models.
    pub directory: Arc<ModelDirectory>,
    /// The model client.
    pub client: Option<Arc<dyn ChatModel>>,
}

/// The workspace credentials, when a Databricks host is configured (variables or `~/.databrickscfg`).
///
/// Broken Databricks settings stop the start only when something needs them: a model endpoint without
/// `LLM_BASE_URL`, or a Lakebase database without a password. Otherwise they are reported and ignored.
pub fn databricks_auth(config: &Config) -> anyhow::Result<Option<DatabricksAuth>> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("databricks-chat/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client for Databricks APIs")?;
    match DatabricksAuth::from_vars(&config.env, http) {
        Ok(Some(auth)) => {
            let profile = auth.profile().map(|p| format!(" (profile {p})")).unwrap_or_default();
            tracing::info!(host = %auth.host(), auth_type = %auth.auth_type(), "Databricks workspace{profile}");
            Ok(Some(auth))
        }
        Ok(None) => Ok(None),
        Err(error) if needs_workspace(config) => Err(anyhow::anyhow!("Databricks authentication: {error}")),
        Err(error) => {
            tracing::warn!(error = %error, "Databricks settings found but unusable; continuing without the workspace");
            Ok(None)
        }
    }
}

fn needs_workspace(config: &Config) -> bool {
    (config.models.base_url.is_none() && config.models.default_model.is_some()) || wants_lakebase_password(config)
}

/// Whether the database password must be minted: Lakebase settings without a password.
fn wants_lakebase_password(config: &Config) -> bool {
    let lakebase_named = [lakebase::ENV_LAKEBASE_ENDPOINT, lakebase::ENV_LAKEBASE_INSTANCE]
        .iter()
        .any(|name| config.env.get(name).is_some());
    !config.database.has_password && (config.database.source == DatabaseSource::LibpqEnv || lakebase_named)
}

/// Lakebase passwords for the pool, when the database settings carry no password and a workspace is configured.
pub fn lakebase_passwords(
    config: &Config,
    databricks: Option<&DatabricksAuth>,
) -> anyhow::Result<Option<LakebasePasswords>> {
    if !wants_lakebase_password(config) {
        return Ok(None);
    }
    let source = LakebasePasswords::source_from_vars(&config.env);
    match databricks {
        Some(auth) => {
            tracing::info!(source = ?source, "database password: minted Lakebase credentials, rotated before expiry");
            Ok(Some(LakebasePasswords::new(auth.clone(), source)))
        }
        None if source == crate::databricks::LakebaseSource::WorkspaceToken => {
            // A PGHOST without password can be a local server with trust authentication.
            tracing::warn!(
                "PGHOST is set without PGPASSWORD and there are no Databricks credentials to mint a Lakebase \
                 password; connecting without one"
            );
            Ok(None)
        }
        None => anyhow::bail!(
            "{} or {} names a Lakebase database, but there are no Databricks credentials to mint its password: \
             set DATABRICKS_HOST with DATABRICKS_TOKEN or DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET, or a \
             profile (DATABRICKS_CONFIG_PROFILE)",
            lakebase::ENV_LAKEBASE_ENDPOINT,
            lakebase::ENV_LAKEBASE_INSTANCE
        ),
    }
}

/// The offered models and the client that reaches them: the configured endpoint (see [`remote_models`]) and,
/// when `LOCAL_MODEL` says so, the small model that runs in this process. By default (`auto`) the local model is
/// offered only when no endpoint is configured, so a fresh checkout answers with no configuration at all.
pub fn models(config: &Config, databricks: Option<&DatabricksAuth>) -> anyhow::Result<Models> {
    let (directory, router) = remote_models(config, databricks)?;
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

/// The model endpoint, its credentials and the models it offers, with a router holding the client of each
/// protocol it is spoken to in; an empty router when no endpoint is configured.
///
/// - Endpoint: `LLM_BASE_URL`, else `{DATABRICKS_HOST}/serving-endpoints`.
/// - Token: `LLM_API_KEY`, else the workspace credentials when the endpoint is on Databricks (never sent to
///   another host), else none (local servers such as Ollama).
/// - Models: the workspace's ready chat endpoints (`MODEL_DISCOVERY`, on by default for the workspace's own
///   serving endpoints), else `DATABRICKS_SERVING_ENDPOINT` plus `CHAT_MODELS`.
fn remote_models(
    config: &Config,
    databricks: Option<&DatabricksAuth>,
) -> anyhow::Result<(ModelDirectory, ModelRouter)> {
    let settings = &config.models;
    let configured = ModelCatalog::new(settings.default_model.as_deref(), settings.chat_models.as_deref());
    let base_url = match (&settings.base_url, databricks) {
        (Some(url), _) => url.clone(),
        (None, Some(auth)) => format!("{}/serving-endpoints", auth.host()),
        (None, None) => {
            if settings.default_model.is_some() || settings.chat_models.is_some() {
                anyhow::bail!(
                    "a model is configured (DATABRICKS_SERVING_ENDPOINT or CHAT_MODELS) but there is no endpoint \
                     to call: set DATABRICKS_HOST with credentials (or DATABRICKS_CONFIG_PROFILE), or LLM_BASE_URL"
                );
            }
            if settings.discovery == Some(true) {
                anyhow::bail!("MODEL_DISCOVERY=true needs a Databricks workspace: set DATABRICKS_HOST");
            }
            return Ok((ModelDirectory::fixed(configured), ModelRouter::new()));
        }
    };
    let workspace = databricks.filter(|auth| is_workspace_url(&base_url, auth.host()));
    let tokens: Arc<dyn TokenSource> = match (&settings.api_key, workspace) {
        (Some(key), _) => Arc::new(StaticToken(Some(key.clone()))),
        (None, Some(auth)) => Arc::new(DatabricksToken(auth.clone())),
        (None, None) => Arc::new(StaticToken(None)),
    };
    let discover = match settings.discovery {
        Some(true) => match databricks {
            Some(_) => true,
            None => anyhow::bail!("MODEL_DISCOVERY=true needs a Databricks workspace: set DATABRICKS_HOST"),
        },
        Some(false) => false,
        // The workspace's endpoint list describes what its own /serving-endpoints serves, not a gateway elsewhere.
        None => workspace.is_some() && base_url.ends_with("/serving-endpoints"),
    };
    if !discover && configured.is_empty() {
        anyhow::bail!(
            "LLM_BASE_URL is set but no model is: set DATABRICKS_SERVING_ENDPOINT (the endpoint name) or CHAT_MODELS"
        );
    }
    let http = http_client(&settings.client).context("building the HTTP client for model calls")?;
    let chat_completions =
        HttpModel::new(ChatCompletions::new(&base_url), http.clone(), tokens, settings.client.clone());
    let router = ModelRouter::new().with(Protocol::ChatCompletions, Arc::new(chat_completions));
    let directory = match (discover, databricks) {
        (true, Some(auth)) => {
            let allowed = settings.chat_models.as_deref().map(|list| ModelCatalog::new(None, Some(list)));
            let discovery = Discovery {
                http,
                auth: auth.clone(),
                ttl: settings.models_cache,
                allowed,
                default_model: settings.default_model.clone(),
            };
            tracing::info!(base_url = %base_url, "models: the workspace's ready chat endpoints");
            ModelDirectory::discovering(configured, discovery)
        }
        _ => {
            tracing::info!(base_url = %base_url, models = configured.entries().len(), "models: configured list");
            ModelDirectory::fixed(configured)
        }
    };
    Ok((directory, router))
}

/// Whether `url` is served by the Databricks workspace `host` (or its AI Gateway), so the workspace token may be
/// sent there.
fn is_workspace_url(url: &str, host: &str) -> bool {
    let (Ok(url), Ok(host)) = (reqwest::Url::parse(url), reqwest::Url::parse(host)) else { return false };
    let (Some(url_host), Some(workspace_host)) = (url.host_str(), host.host_str()) else { return false };
    let same_origin = url_host == workspace_host && url.port_or_known_default() == host.port_or_known_default();
    let databricks_domain = url.scheme() == "https"
        && [".databricks.com", ".azuredatabricks.net", ".databricks.azure.cn"]
            .iter()
            .any(|domain| url_host.ends_with(domain));
    same_origin || databricks_domain
}

#[cfg(test)]
mod tests {
    use super::is_workspace_url;

    #[test]
    fn the_workspace_token_goes_only_to_databricks_hosts() {
        let host = "https://adb-1.2.azuredatabricks.net";
        assert!(is_workspace_url("https://adb-1.2.azuredatabricks.net/serving-endpoints", host));
        assert!(is_workspace_url("https://123.ai-gateway.cloud.databricks.com/mlflow/v1", host));
        assert!(is_workspace_url("http://127.0.0.1:9100/serving-endpoints", "http://127.0.0.1:9100"));
        assert!(!is_workspace_url("http://127.0.0.1:9200/v1", "http://127.0.0.1:9100"));
        assert!(!is_workspace_url("http://localhost:11434/v1", host));
        assert!(!is_workspace_url("https://api.openai.com/v1", host));
        assert!(!is_workspace_url("https://evil.example.com/x.databricks.com", host));
        assert!(!is_workspace_url("http://x.cloud.databricks.com/v1", host));
    }
}
