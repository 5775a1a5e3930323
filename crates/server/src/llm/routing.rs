//! Sends each request to the provider of its model: the model that runs in this process, or the configured
//! endpoint (Databricks serving endpoints, AI Gateway, any OpenAI-compatible server).

use std::sync::Arc;

use super::{ChatModel, ModelError, ModelRequest, ModelStream};

/// A [`ChatModel`] that dispatches on the request's model id.
pub struct ModelRouter {
    /// The in-process model and its id.
    local: Option<(String, Arc<dyn ChatModel>)>,
    /// The endpoint for every other model.
    remote: Option<Arc<dyn ChatModel>>,
}

impl ModelRouter {
    /// A router over the local model (if any) and the remote endpoint (if any).
    pub fn new(local: Option<(String, Arc<dyn ChatModel>)>, remote: Option<Arc<dyn ChatModel>>) -> Self {
        Self { local, remote }
    }

    fn provider(&self, model: &str) -> Option<&Arc<dyn ChatModel>> {
        match &self.local {
            Some((id, local)) if id == model => Some(local),
            _ => self.remote.as_ref(),
        }
    }
}

impl ChatModel for ModelRouter {
    fn stream(&self, request: ModelRequest) -> ModelStream {
        match self.provider(&request.model) {
            Some(provider) => provider.stream(request),
            None => {
                let error = ModelError::NotFound(format!("no endpoint serves `{}`", request.model));
                Box::pin(futures::stream::once(async move { Err(error) }))
            }
        }
    }

    fn writes_titles(&self, model: &str) -> bool {
        self.provider(model).is_some_and(|provider| provider.writes_titles(model))
    }
}
