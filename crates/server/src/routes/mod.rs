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
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod shares;
pub mod sse;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Router};
use tower_http::compression::CompressionLayer;

use crate::error::ApiError;
use crate::middleware::request_timeout;
use crate::state::AppState;

/// The route table, written once for both builds: with the `openapi` feature each group goes through utoipa-axum
/// (which reads paths and methods from the handlers' annotations and documents them); without it, plain axum routes
/// at the paths written here. `ROUTES` lists them, and a test checks that they are exactly the document's operations.
macro_rules! route_table {
    // Handlers are matched as tokens (`module::function`), not as `path` fragments: utoipa-axum's `routes!` takes
    // them apart to find each handler's generated description.
    ($($group:ident: [$($path:literal => $($method:ident $($handler:ident)::+),+;)*])*) => {
        /// Every operation of the API as (method, path), as the router serves it.
        pub const ROUTES: &[(&str, &str)] = &[$($($((stringify!($method), $path),)+)*)*];

        $(
        #[cfg(feature = "openapi")]
        fn $group(router: utoipa_axum::router::OpenApiRouter<AppState>) -> utoipa_axum::router::OpenApiRouter<AppState> {
            router$(.routes(utoipa_axum::routes!($($($handler)::+),+)))*
        }

        #[cfg(not(feature = "openapi"))]
        fn $group(router: Router<AppState>) -> Router<AppState> {
            router$(.route($path, route_table!(@methods $($method $($handler)::+),+)))*
        }
        )*
    };
    (@methods $first:ident $($first_handler:ident)::+ $(, $method:ident $($handler:ident)::+)*) => {
        axum::routing::$first($($first_handler)::+)$(.$method($($handler)::+))*
    };
}

route_table! {
    // Everything but the streams: a request timeout, the default body size, and compression.
    json_routes: [
        "/api/health" => get health::health;
        "/api/me" => get me::me;
        "/api/config" => get app_config::get_config;
        "/api/chats" => get chats::list_chats, post chats::create_chat;
        "/api/chats/{id}" => get chats::get_chat, patch chats::update_chat, delete chats::delete_chat;
        "/api/chats/{id}/messages" => get messages::list_messages;
        "/api/chats/{id}/branch" => post messages::switch_branch;
        "/api/chats/{chat_id}/messages/{message_id}" => patch messages::update_message;
        "/api/chats/{id}/export" => get export::export_chat;
        "/api/chats/{id}/shares" => post shares::create_share, get shares::list_shares;
        "/api/shares/{id}" => get shares::get_share, delete shares::delete_share;
        "/api/shares/{id}/copy" => post shares::copy_share;
        "/api/chats/{chat_id}/messages/{message_id}/feedback" =>
            put feedback::put_feedback, delete feedback::delete_feedback;
        "/api/chat/{id}/stop" => post chat::stop_chat;
        "/api/generations/{id}" => get generations::get_generation;
        "/api/models" => get models::list_models;
    ]
    // Streaming routes: no request timeout (turns outlive it), a larger body (AI SDK sends the conversation), and
    // no compression layer. Event streams are never compressed (a proxy would hold compressed bytes back), yet the
    // layer wraps every body it sees in a body with room for each encoder's state: 5.8 KiB held for as long as a
    // stream lasts, most of a turn's memory after the connection's own buffers.
    stream_routes: [
        "/api/chat" => post chat::post_chat;
        "/api/chat/{id}/stream" => get chat::resume_chat;
        "/api/chat/{id}/approvals/{approval_id}" => post approvals::answer_approval;
        // An import carries a whole chat.
        "/api/chats/import" => post export::import_chat;
    ]
}

/// The OpenAPI document as served by `GET /api/openapi.json`: JSON text, made once.
#[derive(Clone)]
pub struct OpenApiJson(pub Arc<str>);

/// The document assembled from the annotations (`openapi` feature).
#[cfg(feature = "openapi")]
pub fn document() -> utoipa::openapi::OpenApi {
    let router = json_routes(utoipa_axum::router::OpenApiRouter::with_openapi(openapi::base_document()));
    let (_, document) = router.merge(stream_routes(utoipa_axum::router::OpenApiRouter::new())).split_for_parts();
    document
}

/// The document this build serves: assembled at start, or the checked-in copy.
fn document_json() -> OpenApiJson {
    #[cfg(feature = "openapi")]
    let json = document().to_json().unwrap_or_else(|error| {
        tracing::error!(%error, "the OpenAPI document could not be written as JSON");
        String::new()
    });
    #[cfg(not(feature = "openapi"))]
    let json = include_str!(concat!(env!("OUT_DIR"), "/openapi.min.json")).to_owned();
    OpenApiJson(json.into())
}

/// `GET /api/openapi.json`.
async fn serve_document(Extension(document): Extension<OpenApiJson>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document.0.to_string())
}

/// All `/api` routes, and the OpenAPI document they serve.
pub fn api_router(state: &AppState) -> (Router<AppState>, OpenApiJson) {
    #[cfg(feature = "openapi")]
    let (json, streams) = (
        json_routes(utoipa_axum::router::OpenApiRouter::new()).split_for_parts().0,
        stream_routes(utoipa_axum::router::OpenApiRouter::new()).split_for_parts().0,
    );
    #[cfg(not(feature = "openapi"))]
    let (json, streams) = (json_routes(Router::new()), stream_routes(Router::new()));
    let json = json
        .route("/api/openapi.json", axum::routing::get(serve_document))
        .layer(DefaultBodyLimit::max(state.config.http.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.config.http.request_timeout, request_timeout))
        .layer(CompressionLayer::new());
    let streams = streams.layer(DefaultBodyLimit::max(state.config.http.max_chat_body_bytes));
    let router = json
        .merge(streams)
        .route("/api", axum::routing::any(not_found))
        .route("/api/{*rest}", axum::routing::any(not_found))
        .method_not_allowed_fallback(method_not_allowed);
    (router, document_json())
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
