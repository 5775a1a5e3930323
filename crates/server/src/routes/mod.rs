//! HTTP routes: one module per resource, merged under `/api`, plus the generated OpenAPI document.

pub mod app_config;
pub mod approvals;
pub mod chat;
pub mod chats;
pub mod export;
pub mod feedback;
pub mod generations;
pub mod health;
pub mod me;
pub mod messages;
pub mod models;
pub mod openapi;
pub mod shares;
pub mod sse;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::compression::CompressionLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::middleware::request_timeout;
use crate::state::AppState;

/// All `/api` routes with their OpenAPI description.
pub fn api_router(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    // Everything but the streams: a request timeout, the default body size, and compression.
    let json_routes = OpenApiRouter::with_openapi(openapi::base_document())
        .routes(routes!(health::health))
        .routes(routes!(me::me))
        .routes(routes!(app_config::get_config))
        .routes(routes!(chats::list_chats, chats::create_chat))
        .routes(routes!(chats::get_chat, chats::update_chat, chats::delete_chat))
        .routes(routes!(messages::list_messages))
        .routes(routes!(messages::switch_branch))
        .routes(routes!(messages::update_message))
        .routes(routes!(export::export_chat))
        .routes(routes!(shares::create_share, shares::list_shares))
        .routes(routes!(shares::get_share, shares::delete_share))
        .routes(routes!(shares::copy_share))
        .routes(routes!(feedback::put_feedback, feedback::delete_feedback))
        .routes(routes!(chat::stop_chat))
        .routes(routes!(generations::get_generation))
        .routes(routes!(models::list_models))
        .route("/api/openapi.json", axum::routing::get(openapi::serve_document))
        .layer(DefaultBodyLimit::max(state.config.http.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.config.http.request_timeout, request_timeout))
        .layer(CompressionLayer::new());
    // Streaming routes: no request timeout (turns outlive it), a larger body (AI SDK sends the conversation), and
    // no compression layer. Event streams are never compressed (a proxy would hold compressed bytes back), yet the
    // layer wraps every body it sees in a body with room for each encoder's state: 5.8 KiB held for as long as a
    // stream lasts, most of a turn's memory after the connection's own buffers.
    let stream_routes = OpenApiRouter::new()
        .routes(routes!(chat::post_chat))
        .routes(routes!(chat::resume_chat))
        .routes(routes!(approvals::answer_approval))
        // An import carries a whole chat.
        .routes(routes!(export::import_chat))
        .layer(DefaultBodyLimit::max(state.config.http.max_chat_body_bytes));
    let (router, document) = json_routes.merge(stream_routes).split_for_parts();
    let router = router
        .route("/api", axum::routing::any(not_found))
        .route("/api/{*rest}", axum::routing::any(not_found))
        .method_not_allowed_fallback(method_not_allowed);
    (router, document)
}

/// A pagination cursor the server did not make: 400 with what to send instead.
fn bad_cursor(error: crate::db::cursor::CursorError) -> ApiError {
    ApiError::bad_request(error.to_string())
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
