//! Where model credentials come from: a fixed key, or the Databricks credential chain (cached, refreshed).

use futures::future::BoxFuture;
use secrecy::SecretString;

use super::ModelError;
use crate::databricks::DatabricksAuth;

/// Supplies the bearer token for model calls. Implementations cache and refresh as they need.
pub trait TokenSource: Send + Sync {
    /// The current token, or `None` when the endpoint needs no authentication.
    fn bearer(&self) -> BoxFuture<'_, Result<Option<SecretString>, ModelError>>;

    /// Forgets a cached token the endpoint just refused, so the next call gets a fresh one.
    fn invalidate(&self) {}
}

/// A fixed API key (`LLM_API_KEY`), or none.
pub struct StaticToken(pub Option<SecretString>);

impl TokenSource for StaticToken {
    fn bearer(&self) -> BoxFuture<'_, Result<Option<SecretString>, ModelError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// The app's Databricks identity (personal access token, service principal OAuth, or CLI profile).
pub struct DatabricksToken(pub DatabricksAuth);

impl TokenSource for DatabricksToken {
    fn bearer(&self) -> BoxFuture<'_, Result<Option<SecretString>, ModelError>> {
        Box::pin(async move {
            self.0.token().await.map(Some).map_err(|error| {
                tracing::error!(error = %error, "could not obtain a Databricks token for model calls");
                ModelError::Credentials("the app could not sign in to Databricks; see the server log".to_owned())
            })
        })
    }

    fn invalidate(&self) {
        self.0.invalidate();
    }
}
