//! Entry point: read configuration, set up logging, build the application and serve until SIGTERM/SIGINT.

use std::process::ExitCode;

use server::config::Config;
use server::startup::{Application, shutdown_signal};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    server::telemetry::init(&config.log);
    let result = async { Application::build(config).await?.run_until_stopped(shutdown_signal()).await }.await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
