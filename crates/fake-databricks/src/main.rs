//! Runs the fake Databricks workspace: `fake-databricks [--port 9100] [--token-delay-ms 20]`.

use std::time::Duration;

use fake_databricks::{FakeConfig, FakeWorkspace};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())).init();
    let mut port = 9100u16;
    let mut token_delay_ms = 20u64;
    let mut record = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port =
                    args.next().and_then(|v| v.parse().ok()).ok_or_else(|| anyhow::anyhow!("--port needs a number"))?
            }
            "--token-delay-ms" => {
                token_delay_ms = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("--token-delay-ms needs a number"))?
            }
            "--no-record" => record = false,
            other => anyhow::bail!(
                "unknown argument {other}; usage: fake-databricks [--port N] [--token-delay-ms N] [--no-record]"
            ),
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let fake = FakeWorkspace::serve(
        listener,
        FakeConfig { token_delay: Duration::from_millis(token_delay_ms), record_requests: record },
    );
    eprintln!("fake Databricks workspace on {} (OpenAI base URL {})", fake.url(), fake.serving_base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
