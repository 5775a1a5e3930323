//! An agent served by a Databricks App: no serving endpoint, a URL of its own (`CHAT_AGENTS`). MLflow's AgentServer
//! answers `GET /agent/info` and takes `POST /responses`; an Agent Bricks app takes `POST /api/invocations`; both
//! speak the Responses API (AGENTS-PROTOCOL.md §A). An AgentServer that keeps runs in a database (MLflow's
//! `LongRunningAgentServer`) is called in background mode ([`super::durable`]). Which one it is, is found out on the
//! first call (so an agent app that is stopped while this server starts does not stop it) and remembered.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::ExposeSecret;

use super::durable::{self, DurableAgent};
use super::responses::{Responses, ResponsesTarget};
use super::token::TokenSource;
use super::transport::{HttpModel, bearer_for};
use super::{ChatModel, ModelError, ModelRequest, ModelStream};
use crate::config::ClientSettings;

/// How long asking an agent app what it speaks may take.
const INFO_TIMEOUT: Duration = Duration::from_secs(10);

/// An agent app, called over the Responses API at the path it serves.
#[derive(Clone)]
pub struct AppAgent {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    settings: ClientSettings,
    client: tokio::sync::OnceCell<Arc<dyn ChatModel>>,
}

impl AppAgent {
    /// The agent app at `url` (no trailing slash).
    pub fn new(url: &str, http: reqwest::Client, tokens: Arc<dyn TokenSource>, settings: ClientSettings) -> Self {
        let inner = Inner {
            url: url.trim_end_matches('/').to_owned(),
            http,
            tokens,
            settings,
            client: tokio::sync::OnceCell::new(),
        };
        Self { inner: Arc::new(inner) }
    }
}

impl ChatModel for AppAgent {
    fn stream(&self, request: ModelRequest) -> ModelStream {
        let inner = self.inner.clone();
        Box::pin(async_stream::stream! {
            let client = match inner.client.get_or_try_init(|| inner.detect(&request)).await {
                Ok(client) => client.clone(),
                Err(error) => {
                    yield Err(error);
                    return;
                }
            };
            let mut stream = client.stream(request);
            while let Some(event) = futures::StreamExt::next(&mut stream).await {
                yield event;
            }
        })
    }
}

impl Inner {
    /// Asks the app whether it is an MLflow AgentServer (`GET /agent/info`); else it is taken for Agent Bricks.
    async fn detect(&self, request: &ModelRequest) -> Result<Arc<dyn ChatModel>, ModelError> {
        let mut info = self.http.get(format!("{}/agent/info", self.url)).timeout(INFO_TIMEOUT);
        let token = bearer_for(self.tokens.as_ref(), request).await?;
        if let Some(token) = &token {
            info = info.bearer_auth(token.expose_secret());
        }
        let response = info.send().await.map_err(|_| ModelError::Connect)?;
        if response.status().is_success() && durable::offers_background(&self.http, &self.url, token.as_ref()).await {
            tracing::info!(url = %self.url, "agent app found; it runs answers in background mode");
            let client = DurableAgent::new(&self.url, self.http.clone(), self.tokens.clone(), self.settings.clone());
            return Ok(Arc::new(client));
        }
        let path = match response.status() {
            status if status.is_success() => "/responses",
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => "/api/invocations",
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(ModelError::Unauthorized(format!("the agent app at {} refused the token", self.url)));
            }
            status => return Err(ModelError::Upstream(format!("the agent app at {} answered {status}", self.url))),
        };
        tracing::info!(url = %self.url, path, "agent app found");
        let target = ResponsesTarget::Fixed { url: format!("{}{path}", self.url) };
        let client =
            HttpModel::new(Responses::new(target), self.http.clone(), self.tokens.clone(), self.settings.clone());
        Ok(Arc::new(client))
    }
}
