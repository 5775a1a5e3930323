//! Runs the fake Databricks workspace:
//! `fake-databricks [--port 9100] [--token-delay-ms 20] [--no-record] [--pat TOKEN] [--client ID:SECRET]
//! [--endpoint NAME] [--agent-endpoint NAME:TASK] [--postgres-endpoint PATH] [--require-model-auth]`.
//!
//! `--pat`, `--client` and the endpoint options may repeat; they register credentials, ready chat serving endpoints,
//! agent serving endpoints (`--agent-endpoint support-agent:agent/v1/responses`; tasks `agent/v1/responses`,
//! `agent/v2/responses`, `agent/v2/chat`, `agent/v1/chat`) and Lakebase Autoscaling endpoints, so the app can run
//! against the fake exactly as in Databricks Apps. Agents served by Apps need no flag: `{url}/apps/<name>` is one,
//! of the kind its name says (`bricks-*`, `durable-*`, else an MLflow AgentServer; see the `agents` module).

use std::time::Duration;

use fake_databricks::{FakeConfig, FakeWorkspace};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())).init();
    let mut port = 9100u16;
    let mut token_delay_ms = 20u64;
    let mut record = true;
    let mut pats = Vec::new();
    let mut clients = Vec::new();
    let mut endpoints = Vec::new();
    let mut agent_endpoints = Vec::new();
    let mut postgres_endpoints = Vec::new();
    let mut require_model_auth = false;
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
            "--pat" => pats.push(args.next().ok_or_else(|| anyhow::anyhow!("--pat needs a token"))?),
            "--client" => {
                let pair = args.next().unwrap_or_default();
                let (id, secret) =
                    pair.split_once(':').ok_or_else(|| anyhow::anyhow!("--client needs ID:SECRET, got `{pair}`"))?;
                clients.push((id.to_owned(), secret.to_owned()));
            }
            "--endpoint" => endpoints.push(args.next().ok_or_else(|| anyhow::anyhow!("--endpoint needs a name"))?),
            "--agent-endpoint" => {
                let pair = args.next().unwrap_or_default();
                let (name, task) = pair
                    .split_once(':')
                    .filter(|(name, task)| !name.is_empty() && task.starts_with("agent/"))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--agent-endpoint needs NAME:TASK (e.g. my-agent:agent/v1/responses), got `{pair}`"
                        )
                    })?;
                agent_endpoints.push(fake_databricks::FakeEndpoint::new(name, task));
            }
            "--postgres-endpoint" => {
                postgres_endpoints.push(args.next().ok_or_else(|| anyhow::anyhow!("--postgres-endpoint needs a path"))?)
            }
            "--require-model-auth" => require_model_auth = true,
            other => anyhow::bail!(
                "unknown argument {other}; usage: fake-databricks [--port N] [--token-delay-ms N] [--no-record] \
                 [--pat TOKEN] [--client ID:SECRET] [--endpoint NAME] [--agent-endpoint NAME:TASK] \
                 [--postgres-endpoint PATH] [--require-model-auth]"
            ),
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let fake = FakeWorkspace::serve(
        listener,
        FakeConfig { token_delay: Duration::from_millis(token_delay_ms), record_requests: record },
    );
    let workspace = fake.workspace();
    pats.iter().for_each(|pat| workspace.add_pat(pat));
    clients.iter().for_each(|(id, secret)| workspace.add_client(id, secret));
    postgres_endpoints.iter().for_each(|path| workspace.add_postgres_endpoint(path));
    workspace.set_serving_endpoints(
        endpoints.iter().map(|name| fake_databricks::FakeEndpoint::chat(name)).chain(agent_endpoints).collect(),
    );
    if require_model_auth {
        fake.require_model_auth();
    }
    eprintln!("fake Databricks workspace on {} (OpenAI base URL {})", fake.url(), fake.serving_base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
