//! Building and running the application: the router with its middleware, the listener and graceful shutdown. `main.rs` and the tests both go through [`Application`].

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::http::{HeaderName, Response, StatusCode};
use axum::serve::ListenerExt;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::{Config, IdentityConfig};
use crate::error::ApiError;
use crate::feedback_sync::MlflowSync;
use crate::security::SecurityHeaders;
use crate::state::AppState;
use crate::{platform, routes};

/// A server that has connected to its database, migrated it and bound its port, ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    mlflow: MlflowSync,
}

impl Application {
    /// Connects to the database, applies migrations and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let databricks = platform::databricks_auth(&config)?;
        let passwords = platform::lakebase_passwords(&config, databricks.as_ref())?;
        let refusals = crate::db::PasswordRefusals::default();
        let db = crate::db::connect_and_migrate(&config.database, passwords, &refusals).await?;
        let listener = TcpListener::bind(config.http.bind)
            .await
            .with_context(|| format!("cannot listen on {}; set PORT (or HOST) to a free address", config.http.bind))?;
        let state = AppState::new(db, refusals, config, databricks.as_ref()).await?;
        let mlflow = MlflowSync::start(state.db.clone(), &state.config, databricks.as_ref())?;
        Ok(Self::assemble(listener, state, mlflow))
    }

    /// Builds the application from an already bound listener and ready state (tests use this too), with votes kept
    /// out of MLflow.
    pub fn with_parts(listener: TcpListener, state: AppState) -> Self {
        Self::assemble(listener, state, MlflowSync::off())
    }

    fn assemble(listener: TcpListener, state: AppState, mlflow: MlflowSync) -> Self {
        let router = router(state.clone(), mlflow.clone());
        Self { listener, router, state, mlflow }
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| self.state.config.http.bind)
    }

    /// Shared state (tests reach the pool through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; then takes no new turns, lets running ones finish (or stores them as
    /// interrupted at the drain deadline) and lets in-flight requests end.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        log_startup(&self.state.config, self.local_addr());
        let engine = self.state.engine.clone();
        let mlflow = self.mlflow.clone();
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            // Streams end as their turns end, which is what lets the HTTP server finish its graceful shutdown.
            tokio::spawn(async move {
                engine.shutdown().await;
                mlflow.stop().await;
                let _ = drained_tx.send(());
            });
        };
        // Streams write many small frames; without TCP_NODELAY, Nagle's algorithm holds a frame back until the
        // previous one is acknowledged, which the client's delayed ACK can stretch to 40 ms.
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        // `into_make_service` hands each connection a clone of the router's `Arc`. Serving the `Router` itself
        // would rebuild its route tables for every connection (axum turns handlers into services eagerly, per
        // connection), about 14 KiB held for as long as the connection lives: a fifth of a streaming turn's memory.
        axum::serve(listener, self.router.into_make_service())
            .with_graceful_shutdown(signal)
            .await
            .context("serving HTTP")?;
        let _ = drained_rx.await;
        self.state.db.close().await;
        tracing::info!("server stopped");
        Ok(())
    }
}

fn log_startup(config: &Config, addr: SocketAddr) {
    match &config.identity {
        IdentityConfig::DatabricksApps => {
            tracing::info!("identity: Databricks Apps proxy headers (x-forwarded-email / x-forwarded-user)")
        }
        IdentityConfig::TrustedHeaders => tracing::warn!(
            "identity: trusting x-forwarded-email / x-forwarded-user from any client (TRUST_FORWARDED_HEADERS=true); \
             never expose this server directly"
        ),
        IdentityConfig::LocalUser { email } => {
            tracing::info!(user = %email, "identity: local development user (forwarded headers ignored)")
        }
    }
    tracing::info!(address = %addr, "listening on http://{addr}");
}

/// The complete router: API routes, fallbacks and middleware. The MLflow side of feedback travels as a request
/// extension rather than in [`AppState`], so that a state built without it (tools, tests) serves with the sync off.
pub fn router(state: AppState, mlflow: MlflowSync) -> Router {
    let (api, document) = routes::api_router(&state);
    let request_id = HeaderName::from_static("x-request-id");
    let dist = crate::web::locate_dist(state.config.http.web_dist.as_deref());
    let index_html = dist.as_ref().and_then(|dir| std::fs::read_to_string(dir.join("index.html")).ok());
    let security_headers = SecurityHeaders::new(index_html.as_deref());
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(crate::telemetry::make_request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(security_headers, crate::security::add_headers))
        .layer(axum::middleware::from_fn(crate::security::same_origin_only))
        .layer(axum::middleware::from_fn_with_state(state.refusals.clone(), crate::middleware::note_refused_password));
    let app = match dist {
        Some(dist) => api.merge(crate::web::router(&dist)),
        None => api.fallback(fallback),
    };
    app.layer(Extension(document)).layer(Extension(mlflow)).with_state(state).layer(middleware)
}

async fn fallback() -> ApiError {
    ApiError::NotFound("page")
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response<axum::body::Body> {
    tracing::error!("handler panicked");
    let body = serde_json::to_vec(&shared::ErrorBody::new("internal", "internal server error")).unwrap_or_default();
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    response
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what Databricks Apps sends before stopping an app).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT, shutting down"),
        () = terminate => tracing::info!("received SIGTERM, shutting down"),
    }
}
