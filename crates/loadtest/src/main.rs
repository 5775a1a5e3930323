//! Benchmarks for the chat server. Each subcommand starts the real server binary on a fresh database, loads
//! it from this process, and prints a table of results (see docs/benchmarks.md for recorded runs).

#![allow(clippy::print_stdout, reason = "a benchmark CLI: its report goes to stdout")]

mod api_latency;
mod faults;
mod local_model;
mod platform;
mod proxy;
mod report;
mod scaling;
mod server_process;
mod soak;
mod tool_round;
mod turns;

use clap::{Parser, Subcommand};

/// Command-line interface.
#[derive(Parser)]
#[command(about = "Benchmarks for the chat server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// p50/p99 latency of `GET /api/chats` (a user with 10,000 chats) and `GET /api/chats/{id}/messages`
    /// (a chat with 100,000 messages).
    ApiLatency(api_latency::Args),
    /// Many concurrent long turns: latency the server adds to each token, time to first token, memory per turn.
    StreamLatency(turns::StreamArgs),
    /// Completed short turns per second (20 tokens, no model delay, persistence on).
    ShortTurns(turns::ShortArgs),
    /// The fault suite: faults injected one scenario at a time under concurrent turns, then the database and
    /// the API checked against what the clients were told. Fails when an invariant is broken.
    Faults(faults::Args),
    /// Minutes of a steady closed loop of concurrent turns, sampled per minute (memory, descriptors,
    /// connections, completed turns, latency), with a verdict on whether they stay flat.
    Soak(soak::Args),
    /// The in-process local model through the server: time until ready, time to first words, tokens per
    /// second and memory, with no model endpoint configured.
    LocalModel(local_model::Args),
    /// The server's own time in a tool round (model → tool → model): the gap between the model's tool calls and
    /// its next request, turn time and server CPU per turn and per event, against plain turns on the same server.
    ToolRound(tool_round::Args),
    /// What Databricks Apps asks of the binary: start-up with the migrations applied, HTTP/2 in cleartext on every
    /// API operation, exit within 15 s of SIGTERM while answers stream, idle memory. Fails when a check fails.
    Platform(platform::Args),
    /// The same load against 1, 2 and 3 server processes on one PostgreSQL behind HAProxy: turns and tokens per
    /// second, added latency per token, database transactions and connections per turn, CPU per relayed token.
    Replicas(scaling::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::ApiLatency(args) => api_latency::run(args).await,
        Command::StreamLatency(args) => turns::stream_latency(args).await,
        Command::ShortTurns(args) => turns::short_turns(args).await,
        Command::Faults(args) => faults::run(args).await,
        Command::Soak(args) => soak::run(args).await,
        Command::LocalModel(args) => local_model::run(args).await,
        Command::ToolRound(args) => tool_round::run(args).await,
        Command::Platform(args) => platform::run(args).await,
        Command::Replicas(args) => scaling::run(args).await,
    }
}
