//! The state every handler shares: the pool, the configuration and the turn engine. Routes depend on it; it
//! depends on nothing of theirs.

use std::sync::Arc;

use sqlx::PgPool;

use crate::config::Config;
use crate::databricks::DatabricksAuth;
use crate::db::PasswordRefusals;
use crate::engine::Engine;
use crate::platform;

/// State shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Connection pool.
    pub db: PgPool,
    /// Configuration read at start.
    pub config: Arc<Config>,
    /// Runs turns.
    pub engine: Engine,
    /// Where the pool's users note a refused database password.
    pub refusals: PasswordRefusals,
}

impl AppState {
    /// Builds the state: the model client from the configuration and a started engine.
    pub async fn new(
        db: PgPool,
        refusals: PasswordRefusals,
        config: Config,
        databricks: Option<&DatabricksAuth>,
    ) -> anyhow::Result<Self> {
        let models = platform::models(&config, databricks).await?;
        let closing = tokio_util::sync::CancellationToken::new();
        let tools = platform::tools(&config, &db, databricks, &closing);
        let engine =
            Engine::start(db.clone(), refusals.clone(), &config, models.directory, models.client, tools, closing)
                .await?;
        Ok(Self { db, config: Arc::new(config), engine, refusals })
    }
}
