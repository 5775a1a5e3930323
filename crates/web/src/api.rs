//! Typed client for the server's JSON API and its streaming turns (fetch + a readable stream of the body,
//! decoded as server-sent events into the shared `UiChunk` type).

use std::pin::Pin;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::{ErrorBody, UiChunk};
use wasm_bindgen::JsCast;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The server could not be reached (or the connection dropped).
    Network(String),
    /// The server answered with an error.
    Api {
        /// HTTP status.
        status: u16,
        /// The error envelope.
        body: ErrorBody,
    },
}

impl ApiError {
    /// A message to show the user.
    pub fn message(&self) -> String {
        match self {
            ApiError::Network(_) => "The server cannot be reached. Check your connection and try again.".to_owned(),
            ApiError::Api { body, .. } => body.error.message.clone(),
        }
    }

    /// The error code, for the API kind.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Api { body, .. } => Some(&body.error.code),
            ApiError::Network(_) => None,
        }
    }
}

async fn check(response: Response) -> Result<Response, ApiError> {
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.json::<ErrorBody>().await.unwrap_or_else(|_| {
        ErrorBody::new("http_error", format!("The server answered {status} {}", response.status_text()))
    });
    Err(ApiError::Api { status, body })
}

async fn send(request: Result<Request, gloo_net::Error>) -> Result<Response, ApiError> {
    let request = request.map_err(|e| ApiError::Network(e.to_string()))?;
    check(request.send().await.map_err(|e| ApiError::Network(e.to_string()))?).await
}

/// `GET path` decoded as JSON.
pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    let response = send(Request::get(path).build()).await?;
    response.json::<T>().await.map_err(|e| ApiError::Network(e.to_string()))
}

/// A JSON request (`POST`, `PATCH`) decoded as JSON.
pub async fn send_json<B: Serialize, T: DeserializeOwned>(builder: RequestBuilder, body: &B) -> Result<T, ApiError> {
    let response = send(builder.json(body)).await?;
    response.json::<T>().await.map_err(|e| ApiError::Network(e.to_string()))
}

/// `DELETE path`.
pub async fn delete(path: &str) -> Result<(), ApiError> {
    send(Request::delete(path).build()).await.map(|_| ())
}

/// `POST path` with a JSON body, ignoring the answer's body.
pub async fn post_ignore<B: Serialize>(path: &str, body: &B) -> Result<(), ApiError> {
    send(Request::post(path).json(body)).await.map(|_| ())
}

/// One decoded stream event: its id (sequence number) and chunk.
pub type StreamItem = (Option<u64>, UiChunk);

/// A turn's events, ending with the stream (or an error if the connection dropped).
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<StreamItem, String>>>>;

/// Sends a streaming request; `Ok(None)` on 204 (nothing to stream).
pub async fn open_stream(request: Result<Request, gloo_net::Error>) -> Result<Option<ChunkStream>, ApiError> {
    let response = send(request).await?;
    if response.status() == 204 {
        return Ok(None);
    }
    let body = response.body().ok_or_else(|| ApiError::Network("the response has no body".to_owned()))?;
    let bytes = wasm_streams::ReadableStream::from_raw(body).into_stream().map(|chunk| {
        chunk
            .map_err(|e| format!("{e:?}"))
            .and_then(|value| value.dyn_into::<js_sys::Uint8Array>().map_err(|_| "unexpected stream chunk".to_owned()))
            .map(|array| Bytes::from(array.to_vec()))
    });
    let events = bytes.eventsource().filter_map(|event| async move {
        match event {
            Err(error) => Some(Err(error.to_string())),
            Ok(event) if event.data == shared::DONE_SENTINEL => None,
            // Chunk types this client does not know are skipped, so a newer server keeps working.
            Ok(event) => {
                serde_json::from_str::<UiChunk>(&event.data).ok().map(|chunk| Ok((event.id.parse().ok(), chunk)))
            }
        }
    });
    Ok(Some(Box::pin(events)))
}
