//! The tools models may call, as the configuration asks: the built-in tools over the user's records and each
//! MCP server of `MCP_SERVERS`, minus what `CHAT_TOOLS` leaves out. MCP servers on the workspace's host are called
//! with Databricks credentials (the user's own when `MODEL_AUTH=user`); any other server gets none.

use std::sync::Arc;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ModelAuth};
use crate::databricks::DatabricksAuth;
use crate::llm::token::DatabricksToken;
use crate::tools::mcp::{McpServer, Workspace};
use crate::tools::records::{RecordsTools, SOURCE_NAME};
use crate::tools::{ToolRunner, ToolSettings, ToolSource, Toolbox};

/// The enabled tools; MCP servers list their tools in the background until `closing` is cancelled.
pub fn tools(
    config: &Config,
    db: &PgPool,
    databricks: Option<&DatabricksAuth>,
    closing: &CancellationToken,
) -> Arc<dyn ToolRunner> {
    let tools = &config.tools;
    let mut sources: Vec<Arc<dyn ToolSource>> = Vec::new();
    if tools.is_enabled(SOURCE_NAME) {
        sources.push(Arc::new(RecordsTools::new(db.clone())));
    }
    let workspace = databricks.map(|auth| Workspace {
        host: auth.host().trim_end_matches('/').to_owned(),
        tokens: Arc::new(DatabricksToken(auth.clone())),
    });
    for server in tools.mcp_servers.iter().filter(|server| tools.is_enabled(&server.name)) {
        let server =
            McpServer::new(server.clone(), workspace.clone(), config.models.auth == ModelAuth::User, tools.mcp_refresh);
        server.start(closing.clone());
        sources.push(server);
    }
    let names: Vec<&str> = sources.iter().map(|source| source.name()).collect();
    tracing::info!(sources = ?names, read_only = tools.read_only, approval = ?tools.approval, "tools");
    Arc::new(Toolbox::new(
        sources,
        ToolSettings { read_only: tools.read_only, approval: tools.approval, timeout: tools.timeout },
    ))
}
