//! The in-process local model through the real server, as a user meets it: the server binary started with no
//! model configured, the time until the model is ready, then turns over HTTP, timed by the client: time to the
//! first word, words per second as they arrive, and the server's memory. The weights must already be in the
//! cache directory (the run command, or `cargo run --release -p local-model --example bench`, fetches them).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::json;
use shared::{ModelList, UiChunk};
use uuid::Uuid;

use crate::server_process::{BenchDatabase, ServerProcess, Target, rss_kib};

const USER: &str = "bench@example.com";
const QUESTIONS: [&str; 3] = [
    "Write a short story about a robot who learns to paint.",
    "Explain what a HTTP server does, in three bullet points.",
    "Give me three tips for learning Rust.",
];

/// Options of `local-model`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Turns, each in a new chat.
    #[arg(long, default_value_t = 6)]
    turns: usize,
}

/// What one turn looked like from the client.
struct Timing {
    first_text: Duration,
    tokens: i64,
    tokens_per_second: f64,
}

/// Runs the benchmark and prints its tables.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let database = BenchDatabase::create(&args.target.admin_url).await?;
    let started = Instant::now();
    let server = ServerProcess::start(&args.target.server_bin, &database.url, &[("LOCAL_MODEL", "auto".to_owned())])?;
    let http = reqwest::Client::new();
    let ready = wait_until_ready(&http, &server.base_url).await?;
    let ready_at = started.elapsed();
    let idle_kib = server.rss_kib().unwrap_or_default();

    println!("server start to local model ready: {:.2} s (listening after {:.2} s)", ready_at.as_secs_f64(), ready);
    println!("server RSS with the model loaded, idle: {} MiB", idle_kib / 1024);
    println!();
    println!("| turn | prompt | first words ms | tokens | tokens/s |");
    println!("|---|---|---|---|---|");
    let mut peak_kib = idle_kib;
    let mut rates = Vec::new();
    for turn in 0..args.turns {
        let question = QUESTIONS[turn % QUESTIONS.len()];
        let timing = one_turn(&http, &server.base_url, Uuid::new_v4(), question).await?;
        peak_kib = peak_kib.max(rss_kib(server.pid()).unwrap_or_default());
        println!(
            "| {} | {question} | {:.0} | {} | {:.1} |",
            turn + 1,
            timing.first_text.as_secs_f64() * 1000.0,
            timing.tokens,
            timing.tokens_per_second
        );
        rates.push(timing.tokens_per_second);
    }
    // A conversation: the follow-up continues from the cached first turn.
    let chat = Uuid::new_v4();
    let opening = one_turn(&http, &server.base_url, chat, "Give me three tips for learning Rust.").await?;
    let follow_up = one_turn(&http, &server.base_url, chat, "Explain the second tip in more detail.").await?;
    peak_kib = peak_kib.max(rss_kib(server.pid()).unwrap_or_default());
    println!();
    println!("| conversation | first words ms | tokens/s |");
    println!("|---|---|---|");
    for (label, timing) in [("first message", &opening), ("follow-up in the same chat", &follow_up)] {
        println!("| {label} | {:.0} | {:.1} |", timing.first_text.as_secs_f64() * 1000.0, timing.tokens_per_second);
    }
    // Stop: how long `POST /api/chat/{id}/stop` takes (it answers once the stopped answer is stored) and how soon
    // the model is free for the next turn. The API tests only check that a stop takes effect; this is its figure.
    println!();
    println!("| stop | stop answered ms | next turn's first words ms |");
    println!("|---|---|---|");
    for trial in 1..=3 {
        let (stop, next) = stop_then_next(&http, &server.base_url).await?;
        println!("| {trial} | {:.0} | {:.0} |", stop.as_secs_f64() * 1000.0, next.as_secs_f64() * 1000.0);
    }
    rates.sort_by(f64::total_cmp);
    println!();
    println!(
        "median {:.1} tokens/s through the server; server RSS peak {} MiB (sampled after each turn)",
        rates.get(rates.len() / 2).copied().unwrap_or_default(),
        peak_kib / 1024
    );
    drop(server);
    database.drop_database().await
}

/// Polls `GET /api/models` until the local model is listed without a loading note; returns when the server
/// first answered, in seconds.
async fn wait_until_ready(http: &reqwest::Client, base_url: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut listening = None;
    while started.elapsed() < Duration::from_secs(600) {
        if let Ok(response) = http.get(format!("{base_url}/api/models")).header("x-forwarded-email", USER).send().await
        {
            listening.get_or_insert(started.elapsed().as_secs_f64());
            let list: ModelList = response.json().await?;
            if list.models.is_empty() {
                bail!("the local model is not available: {}", list.hint.unwrap_or_default());
            }
            let loading = list.models.iter().any(|m| m.description.as_deref().is_some_and(|d| d.ends_with("…)")));
            if !loading {
                return Ok(listening.unwrap_or_default());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the local model was not ready within 10 minutes")
}

async fn one_turn(http: &reqwest::Client, base_url: &str, chat: Uuid, question: &str) -> anyhow::Result<Timing> {
    let sent = Instant::now();
    let response = http
        .post(format!("{base_url}/api/chat"))
        .header("x-forwarded-email", USER)
        .json(&json!({"id": chat, "message": question}))
        .send()
        .await?
        .error_for_status()?;
    let mut events = response.bytes_stream().eventsource();
    let (mut first, mut last, mut tokens, mut deltas) = (None, None, None, 0usize);
    while let Some(event) = events.next().await {
        let event = event.context("reading the stream")?;
        match serde_json::from_str::<UiChunk>(&event.data) {
            Ok(UiChunk::TextDelta { .. }) => {
                deltas += 1;
                first.get_or_insert_with(|| sent.elapsed());
                last = Some(sent.elapsed());
            }
            Ok(UiChunk::Finish { message_metadata }) => {
                tokens = message_metadata.and_then(|m| m.usage).and_then(|u| u.output_tokens);
            }
            _ => {}
        }
    }
    let (Some(first), Some(last), Some(tokens)) = (first, last, tokens) else {
        bail!("the turn ended without text or usage");
    };
    let streaming = (last - first).as_secs_f64();
    // Each text delta is one token's text (a few hold back part of a character for the next): after the first,
    // they arrived over `streaming`.
    let tokens_per_second = if streaming > 0.0 { deltas.saturating_sub(1) as f64 / streaming } else { 0.0 };
    Ok(Timing { first_text: first, tokens, tokens_per_second })
}

/// Starts a long answer, stops it at its first words, then sends a new turn: (stop request → its answer, new
/// turn sent → its first words).
async fn stop_then_next(http: &reqwest::Client, base_url: &str) -> anyhow::Result<(Duration, Duration)> {
    let chat = Uuid::new_v4();
    let response = http
        .post(format!("{base_url}/api/chat"))
        .header("x-forwarded-email", USER)
        .json(&json!({"id": chat, "message": "Count from 1 to 1000, one number per line."}))
        .send()
        .await?
        .error_for_status()?;
    let mut events = response.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        if matches!(
            serde_json::from_str::<UiChunk>(&event.context("reading the stream")?.data),
            Ok(UiChunk::TextDelta { .. })
        ) {
            break;
        }
    }
    let asked = Instant::now();
    let stopped: serde_json::Value = http
        .post(format!("{base_url}/api/chat/{chat}/stop"))
        .header("x-forwarded-email", USER)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let stop = asked.elapsed();
    if stopped["status"] != "stopped" {
        bail!("the stop answered {stopped}");
    }
    drop(events);
    let next = one_turn(http, base_url, Uuid::new_v4(), "Say hello.").await?;
    Ok((stop, next.first_text))
}
