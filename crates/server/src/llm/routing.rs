//! Sends each request to the client of its model's protocol: chat completions (Databricks serving endpoints, AI
//! Gateway, any OpenAI-compatible server), the Responses API and ChatAgent (agents on Model Serving), the model that
//! runs in this process; a new protocol is one module and one [`ModelRouter::with`] line where the clients are built.
//! A model with a client of its own (an agent served by a Databricks App, at its own URL) is routed by its id.

use std::sync::Arc;

use super::{ChatModel, ModelError, ModelRequest, ModelStream, Protocol};

/// A [`ChatModel`] that dispatches on the request's protocol.
#[derive(Default)]
pub struct ModelRouter {
    clients: Vec<(Protocol, Arc<dyn ChatModel>)>,
    /// Models with a client of their own, by id.
    own: Vec<(String, Arc<dyn ChatModel>)>,
}

impl ModelRouter {
    /// A router with no clients yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the client of a protocol.
    pub fn with(mut self, protocol: Protocol, client: Arc<dyn ChatModel>) -> Self {
        self.clients.retain(|(known, _)| *known != protocol);
        self.clients.push((protocol, client));
        self
    }

    /// Gives one model a client of its own (an agent at its own URL).
    pub fn with_model(mut self, model: &str, client: Arc<dyn ChatModel>) -> Self {
        self.own.retain(|(known, _)| known != model);
        self.own.push((model.to_owned(), client));
        self
    }

    /// Whether no model can be answered.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.own.is_empty()
    }

    /// Whether requests in `protocol` can be answered.
    pub fn speaks(&self, protocol: Protocol) -> bool {
        self.client(protocol).is_some()
    }

    fn client(&self, protocol: Protocol) -> Option<&Arc<dyn ChatModel>> {
        self.clients.iter().find(|(known, _)| *known == protocol).map(|(_, client)| client)
    }
}

impl ChatModel for ModelRouter {
    fn stream(&self, request: ModelRequest) -> ModelStream {
        let own = self.own.iter().find(|(model, _)| *model == request.model).map(|(_, client)| client);
        match own.or_else(|| self.client(request.protocol)) {
            Some(client) => client.stream(request),
            None => {
                let error = ModelError::NotFound(format!(
                    "`{}` is spoken to with the {} protocol, which this server does not speak",
                    request.model,
                    request.protocol.as_str()
                ));
                Box::pin(futures::stream::once(async move { Err(error) }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::llm::{ModelEvent, PromptMessage, PromptRole};

    struct Named(&'static str);

    impl ChatModel for Named {
        fn stream(&self, _request: ModelRequest) -> ModelStream {
            Box::pin(futures::stream::once(futures::future::ready(Ok(ModelEvent::text(self.0)))))
        }
    }

    fn request(protocol: Protocol) -> ModelRequest {
        ModelRequest {
            model: "m".into(),
            protocol,
            messages: vec![PromptMessage::text(PromptRole::User, "hi")],
            tools: Vec::new(),
            temperature: None,
            max_tokens: None,
            user_token: None,
            context: None,
            resume: None,
        }
    }

    #[tokio::test]
    async fn each_protocol_goes_to_its_client_and_an_unknown_one_fails_clearly() {
        let router = ModelRouter::new()
            .with(Protocol::ChatCompletions, Arc::new(Named("remote")))
            .with(Protocol::Local, Arc::new(Named("local")));
        let first = |protocol| router.stream(request(protocol)).into_future();
        assert_eq!(first(Protocol::Local).await.0, Some(Ok(ModelEvent::text("local"))));
        assert_eq!(first(Protocol::ChatCompletions).await.0, Some(Ok(ModelEvent::text("remote"))));
        let Some(Err(error)) = first(Protocol::Responses).await.0 else { panic!("an error") };
        assert!(error.to_string().contains("Responses API"), "{error}");
    }
}
