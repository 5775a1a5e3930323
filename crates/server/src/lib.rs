//! The chat server as a library: `main.rs` is a thin shell, and tests build the same application.

pub mod config;
pub mod databricks;
pub mod db;
pub mod engine;
pub mod error;
pub mod export;
pub mod feedback_sync;
pub mod identity;
pub mod llm;
pub mod middleware;
pub mod platform;
pub mod routes;
pub mod security;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tools;
pub mod validate;
pub mod web;

pub use db::MIGRATOR;
pub use startup::Application;
pub use state::AppState;
