//! What the app takes from the Databricks platform, decided once at start: the workspace credentials (unified
//! authentication), the models and agents and how each is called ([`models`]), and whether the database password is
//! a minted Lakebase credential.
//!
//! Every combination that cannot work fails at start with a message naming the variables to set, rather than
//! at the first chat.

mod models;
mod tools;

use anyhow::Context;

use crate::config::{Config, DatabaseSource};
use crate::databricks::{DatabricksAuth, LakebasePasswords, lakebase};

pub use models::{Models, models};
pub use tools::tools;

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

/// Whether `url` is served by the Databricks workspace `host` (or its AI Gateway), so the workspace token may be
/// sent there.
pub(crate) fn is_workspace_url(url: &str, host: &str) -> bool {
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
