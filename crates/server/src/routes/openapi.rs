//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the shared types.

use axum::Extension;
use axum::Json;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Databricks Chat API",
        description = "Chats and messages of the signed-in user (identity from the Databricks Apps proxy). \
                       Errors always have the body `{\"error\":{\"code\":\"...\",\"message\":\"...\"}}`."
    ),
    tags(
        (name = "chats", description = "Create, list, search, rename and delete chats"),
        (name = "messages", description = "Chat history"),
        (name = "chat", description = "Turns: stream an answer (AI SDK UI message stream), resume, stop, poll"),
        (name = "system", description = "Health and identity")
    )
)]
struct ApiDoc;

/// Title, description and tags; the paths are added by the router.
pub fn base_document() -> Document {
    ApiDoc::openapi()
}

/// `GET /api/openapi.json`.
pub async fn serve_document(Extension(document): Extension<Arc<Document>>) -> Json<Arc<Document>> {
    Json(document)
}
