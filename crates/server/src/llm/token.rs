//! Where model credentials come from.

use futures::future::BoxFuture;
use secrecy::SecretString;

use super::ModelError;

/// Supplies the bearer token for model calls. Implementations cache and refresh as they need.
pub trait TokenSource: Send + Sync {
    /// The current token, or `None` when the endpoint needs no authentication.
    fn bearer(&self) -> BoxFuture<'_, Result<Option<SecretString>, ModelError>>;
}

/// A fixed API key (`LLM_API_KEY`), or none.
pub struct StaticToken(pub Option<SecretString>);

impl TokenSource for StaticToken {
    fn bearer(&self) -> BoxFuture<'_, Result<Option<SecretString>, ModelError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}
