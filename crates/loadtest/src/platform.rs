//! `loadtest platform`: what Databricks Apps asks of the binary it runs, checked on the binary itself (CI runs it on
//! the packaged one, `dist-app/server`). Start-up with the migrations already applied (under two seconds), HTTP/2
//! in cleartext with prior knowledge on every route of the API (streams included; every operation of the OpenAPI
//! document must have been called), exit within the 15 s between SIGTERM and SIGKILL while answers stream, and
//! the memory of an idle process. Prints a table and fails when a check fails.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use fake_databricks::{FakeConfig, FakeWorkspace};
use reqwest::{Method, StatusCode, Version};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::server_process::{BenchDatabase, ServerProcess, Target};

/// The start-up bound (the app's health check must pass soon after the platform starts it).
const START_BOUND: Duration = Duration::from_secs(2);
/// Databricks Apps sends SIGKILL this long after SIGTERM.
const SIGTERM_BOUND: Duration = Duration::from_secs(15);
const USER: &str = "platform@example.com";

/// Options of `platform`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Starts measured after the first (which applies the migrations).
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// Answers streaming when SIGTERM arrives.
    #[arg(long, default_value_t = 40)]
    turns_at_sigterm: usize,
}

/// Runs the checks.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let fake = FakeWorkspace::start_with(FakeConfig { token_delay: Duration::ZERO, record_requests: false }).await;
    let database = BenchDatabase::create(&args.target.admin_url).await?;
    let result = checks(&args, &fake, &database.url).await;
    database.drop_database().await?;
    let rows = result?;
    println!("| check | measured | bound | verdict |");
    println!("|---|---|---|---|");
    let mut failed = Vec::new();
    for row in &rows {
        println!("| {} | {} | {} | {} |", row.name, row.measured, row.bound, if row.passed { "ok" } else { "FAILED" });
        if !row.passed {
            failed.push(row.name.clone());
        }
    }
    ensure!(failed.is_empty(), "platform checks failed: {}", failed.join(", "));
    Ok(())
}

struct Row {
    name: String,
    measured: String,
    bound: String,
    passed: bool,
}

fn server_env(fake: &FakeWorkspace) -> Vec<(&'static str, String)> {
    vec![
        ("LLM_BASE_URL", fake.serving_base_url()),
        ("DATABRICKS_SERVING_ENDPOINT", "bench-model".to_owned()),
        ("TITLE_GENERATION", "false".to_owned()),
    ]
}

async fn checks(args: &Args, fake: &FakeWorkspace, database_url: &str) -> anyhow::Result<Vec<Row>> {
    let env = server_env(fake);
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let mut rows = Vec::new();

    // Start-up: the first start applies the migrations; the later ones find them applied, as every restart does.
    let (first, mut server) = start_until_healthy(&args.target.server_bin, database_url, &env, &plain).await?;
    rows.push(Row {
        name: "first start (applies every migration)".into(),
        measured: format!("{:.0} ms", first.as_secs_f64() * 1e3),
        bound: "reported".into(),
        passed: true,
    });
    drop(server);
    let mut times = Vec::new();
    for _ in 0..args.starts.max(1) {
        let (took, started) = start_until_healthy(&args.target.server_bin, database_url, &env, &plain).await?;
        times.push(took);
        server = started;
        drop(server);
    }
    times.sort();
    let median = times[times.len() / 2];
    let slowest = times[times.len() - 1];
    rows.push(Row {
        name: format!("start-up with the migrations applied, {} starts", times.len()),
        measured: format!("median {:.0} ms, slowest {:.0} ms", median.as_secs_f64() * 1e3, slowest.as_secs_f64() * 1e3),
        bound: format!("slowest < {} s", START_BOUND.as_secs()),
        passed: slowest < START_BOUND,
    });

    // Every route over HTTP/2 in cleartext with prior knowledge.
    let (_, mut server) = start_until_healthy(&args.target.server_bin, database_url, &env, &plain).await?;
    let h2c = reqwest::Client::builder().http2_prior_knowledge().timeout(Duration::from_secs(60)).build()?;
    let (called, documented) = every_route(&h2c, &server.base_url).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kib = server.rss_kib().unwrap_or(0);
    let missing: Vec<_> = documented.difference(&called).cloned().collect();
    rows.push(Row {
        name: "HTTP/2 cleartext (prior knowledge) on every API operation, streams included".into(),
        measured: format!(
            "{} of {} operations answered over HTTP/2",
            called.intersection(&documented).count(),
            documented.len()
        ),
        bound: "all".into(),
        passed: missing.is_empty(),
    });
    if !missing.is_empty() {
        eprintln!("operations not called over HTTP/2: {missing:?}");
    }
    rows.push(Row {
        name: "memory of an idle server (RSS after start and one pass over the API)".into(),
        measured: format!("{:.1} MiB", idle_kib as f64 / 1024.0),
        bound: "reported".into(),
        passed: idle_kib > 0,
    });

    // SIGTERM while answers stream: the process must be gone before the platform's SIGKILL.
    let streams = start_long_turns(&plain, &server.base_url, args.turns_at_sigterm).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy_kib = server.rss_kib().unwrap_or(0);
    let sent = Instant::now();
    let status = tokio::task::block_in_place(|| server.terminate(SIGTERM_BOUND + Duration::from_secs(5)))?;
    let exit = sent.elapsed();
    let ended = futures::future::join_all(streams).await.into_iter().filter(|s| matches!(s, Ok(true))).count();
    rows.push(Row {
        name: format!("exit after SIGTERM with {} answers streaming", args.turns_at_sigterm),
        measured: match status {
            Some(status) => format!("{:.1} s ({status}); {ended} client streams ended cleanly", exit.as_secs_f64()),
            None => format!("still running after {:.0} s", exit.as_secs_f64()),
        },
        bound: format!("< {} s", SIGTERM_BOUND.as_secs()),
        passed: status.is_some_and(|s| s.success()) && exit < SIGTERM_BOUND,
    });
    rows.push(Row {
        name: format!("memory with {} answers streaming", args.turns_at_sigterm),
        measured: format!("{:.1} MiB", busy_kib as f64 / 1024.0),
        bound: "reported".into(),
        passed: true,
    });
    let left: i64 = {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(database_url).await?;
        sqlx::query_scalar("select count(*) from chat.messages where status = 'streaming'").fetch_one(&mut conn).await?
    };
    rows.push(Row {
        name: "answers left `streaming` after that exit".into(),
        measured: left.to_string(),
        bound: "0".into(),
        passed: left == 0,
    });
    Ok(rows)
}

/// Starts the server and waits until `/api/health` answers 200; the time from spawning the process.
async fn start_until_healthy(
    binary: &str,
    database_url: &str,
    env: &[(&str, String)],
    client: &reqwest::Client,
) -> anyhow::Result<(Duration, ServerProcess)> {
    let started = Instant::now();
    let server = tokio::task::block_in_place(|| ServerProcess::start(binary, database_url, env))?;
    loop {
        let health = client.get(format!("{}/api/health", server.base_url)).send().await;
        if health.is_ok_and(|r| r.status() == StatusCode::OK) {
            return Ok((started.elapsed(), server));
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the server was not healthy within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Long answers started together; each task says whether its stream ended with the stream's own end.
async fn start_long_turns(
    client: &reqwest::Client,
    base_url: &str,
    count: usize,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<bool>>> {
    let mut tasks = Vec::new();
    for i in 0..count {
        let (client, url) = (client.clone(), format!("{base_url}/api/chat"));
        let body = json!({"id": Uuid::new_v4(), "message": format!("long {i} [[fake tokens=2000 delay_ms=20]]")});
        tasks.push(tokio::spawn(async move {
            let Ok(response) = client.post(url).header("x-forwarded-email", USER).json(&body).send().await else {
                return false;
            };
            response.text().await.is_ok_and(|text| text.trim_end().ends_with("data: [DONE]"))
        }));
    }
    Ok(tasks)
}

/// One call of every operation, over `client` (HTTP/2 only): the set of operations called (method and documented
/// path) that answered over HTTP/2 as expected, and the set the server's OpenAPI document lists.
async fn every_route(client: &reqwest::Client, base: &str) -> anyhow::Result<(BTreeSet<String>, BTreeSet<String>)> {
    let mut called = BTreeSet::new();
    let mut call = async |method: Method, route: &str, path: String, body: Option<Value>, expect: &[u16]| {
        let mut request = client.request(method.clone(), format!("{base}{path}")).header("x-forwarded-email", USER);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path} over HTTP/2"))?;
        let (version, status) = (response.version(), response.status());
        let text = response.text().await.with_context(|| format!("reading {method} {path}"))?;
        ensure!(version == Version::HTTP_2, "{method} {path} answered over {version:?}");
        ensure!(expect.contains(&status.as_u16()), "{method} {path}: {status} {text}");
        called.insert(format!("{} {route}", method.as_str().to_lowercase()));
        anyhow::Ok(text)
    };
    let json_of = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);

    let document = json_of(&call(Method::GET, "/api/openapi.json", "/api/openapi.json".into(), None, &[200]).await?);
    call(Method::GET, "/api/health", "/api/health".into(), None, &[200]).await?;
    call(Method::GET, "/api/me", "/api/me".into(), None, &[200]).await?;
    call(Method::GET, "/api/config", "/api/config".into(), None, &[200]).await?;
    call(Method::GET, "/api/models", "/api/models".into(), None, &[200]).await?;
    let chat =
        json_of(&call(Method::POST, "/api/chats", "/api/chats".into(), Some(json!({"title": "h2c"})), &[201]).await?);
    let chat_id = chat["id"].as_str().context("created chat id")?.to_owned();
    call(Method::GET, "/api/chats", "/api/chats".into(), None, &[200]).await?;
    call(Method::GET, "/api/chats/{id}", format!("/api/chats/{chat_id}"), None, &[200]).await?;
    call(Method::PATCH, "/api/chats/{id}", format!("/api/chats/{chat_id}"), Some(json!({"title": "over h2c"})), &[200])
        .await?;
    let streamed = call(
        Method::POST,
        "/api/chat",
        "/api/chat".into(),
        Some(json!({"id": chat_id, "message": "hello [[fake tokens=30]]"})),
        &[200],
    )
    .await?;
    ensure!(streamed.trim_end().ends_with("data: [DONE]"), "the streamed answer did not end: {streamed}");
    let page = json_of(
        &call(Method::GET, "/api/chats/{id}/messages", format!("/api/chats/{chat_id}/messages"), None, &[200]).await?,
    );
    let messages = page["messages"].as_array().context("messages")?;
    let question = messages.first().and_then(|m| m["id"].as_str()).context("question id")?.to_owned();
    let answer = messages.last().and_then(|m| m["id"].as_str()).context("answer id")?.to_owned();
    call(Method::GET, "/api/chat/{id}/stream", format!("/api/chat/{chat_id}/stream"), None, &[200, 204]).await?;
    call(Method::POST, "/api/chat/{id}/stop", format!("/api/chat/{chat_id}/stop"), Some(json!({})), &[200]).await?;
    call(Method::GET, "/api/generations/{id}", format!("/api/generations/{answer}"), None, &[200]).await?;
    let feedback = format!("/api/chats/{chat_id}/messages/{answer}/feedback");
    let feedback_route = "/api/chats/{chat_id}/messages/{message_id}/feedback";
    call(Method::PUT, feedback_route, feedback.clone(), Some(json!({"rating": "up"})), &[200]).await?;
    call(Method::DELETE, feedback_route, feedback, None, &[204]).await?;
    call(
        Method::PATCH,
        "/api/chats/{chat_id}/messages/{message_id}",
        format!("/api/chats/{chat_id}/messages/{question}"),
        Some(json!({"pinned": true})),
        &[200],
    )
    .await?;
    call(
        Method::POST,
        "/api/chats/{id}/branch",
        format!("/api/chats/{chat_id}/branch"),
        Some(json!({"message_id": answer})),
        &[200],
    )
    .await?;
    let export =
        call(Method::GET, "/api/chats/{id}/export", format!("/api/chats/{chat_id}/export?format=json"), None, &[200])
            .await?;
    call(Method::POST, "/api/chats/import", "/api/chats/import".into(), Some(json_of(&export)), &[201]).await?;
    let share = json_of(
        &call(Method::POST, "/api/chats/{id}/shares", format!("/api/chats/{chat_id}/shares"), Some(json!({})), &[201])
            .await?,
    );
    let share_id = share["id"].as_str().context("share id")?.to_owned();
    call(Method::GET, "/api/chats/{id}/shares", format!("/api/chats/{chat_id}/shares"), None, &[200]).await?;
    call(Method::GET, "/api/shares/{id}", format!("/api/shares/{share_id}"), None, &[200]).await?;
    call(Method::POST, "/api/shares/{id}/copy", format!("/api/shares/{share_id}/copy"), Some(json!({})), &[201])
        .await?;
    call(Method::DELETE, "/api/shares/{id}", format!("/api/shares/{share_id}"), None, &[204]).await?;
    // No approval is pending: the route answers (over HTTP/2) that there is none.
    call(
        Method::POST,
        "/api/chat/{id}/approvals/{approval_id}",
        format!("/api/chat/{chat_id}/approvals/none"),
        Some(json!({"approve": true})),
        &[404],
    )
    .await?;
    call(Method::DELETE, "/api/chats/{id}", format!("/api/chats/{chat_id}"), None, &[204]).await?;

    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().context("the OpenAPI document has paths")? {
        for method in item.as_object().into_iter().flat_map(|ops| ops.keys()) {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert(format!("{method} {path}"));
            }
        }
    }
    Ok((called, documented))
}
