//! Speed and memory of the local model on this machine: load time (after the one-time preparation), prompt
//! reading, time to first token, tokens per second, peak memory.
//!
//! `cargo run --release -p local-model --example bench [-- --tokens 200 --runs 3 --temperature-permille 200]` (the release profile is the
//! build `scripts/run.sh` serves with). The weights are taken from the cache directory, downloaded and prepared
//! first if needed (that first preparation is reported separately).

#![allow(clippy::print_stdout, reason = "a benchmark: its report goes to stdout")]

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use local_model::prepare::{self, Plan};
use local_model::{ChatMessage, ChatRole, GenerationSettings, LoadedModel, SMOLLM2_135M};

const PROMPTS: [&str; 3] = [
    "Write a short story about a robot who learns to paint.",
    "Explain what a HTTP server does, in three bullet points.",
    "Give me three tips for learning Rust.",
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Peak and current resident memory of this process, in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let tokens = arg("--tokens", 200);
    let runs = arg("--runs", 3);
    // Per mille, so that the integer argument parser serves: --temperature-permille 0 for greedy decoding.
    let temperature = std::env::args()
        .any(|a| a == "--temperature-permille")
        .then(|| arg("--temperature-permille", 200) as f64 / 1000.0);
    let source: PathBuf = std::env::var_os("LOCAL_MODEL_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| local_model::fetch::default_cache_dir().join(SMOLLM2_135M.file_name));
    if !source.exists() {
        println!("downloading {} ...", SMOLLM2_135M.url);
        local_model::fetch::fetch(&reqwest::Client::new(), &SMOLLM2_135M, SMOLLM2_135M.url, &source, &|_, _| {})
            .await?;
    }
    let dir = source.parent().map(PathBuf::from).unwrap_or_default();
    let path = match prepare::plan(&source, &dir)? {
        Plan::AsIs => source.clone(),
        Plan::Prepared(path) => {
            if !path.exists() {
                let started = Instant::now();
                prepare::prepare(&source, &path)?;
                println!("one-time preparation (Q4_1 -> Q8_0): {:.2} s", started.elapsed().as_secs_f64());
            }
            path
        }
    };

    let started = Instant::now();
    let model = LoadedModel::load(&path)?;
    let load_secs = started.elapsed().as_secs_f64();
    let (_, rss_loaded) = memory();
    println!("model: {}", path.display());
    println!("load: {load_secs:.2} s, RSS after load {rss_loaded:.0} MiB");
    println!();
    println!("| run | prompt tokens | prompt tok/s | first token ms | generated | tok/s | finish |");
    println!("|---|---|---|---|---|---|---|");
    let mut rates = Vec::new();
    for run in 0..runs {
        let question = PROMPTS[run % PROMPTS.len()];
        let prompt = model.prompt(&[ChatMessage::new(ChatRole::User, question)], 2048)?;
        // The output limit, not the model's end of turn, ends each run, so every run measures the same length.
        let settings = GenerationSettings {
            max_tokens: tokens,
            seed: run as u64,
            temperature: temperature.unwrap_or(GenerationSettings::default().temperature),
            ..GenerationSettings::default()
        };
        let mut first_text_ms = None;
        let began = Instant::now();
        let stats = model.generate(&prompt, &settings, &AtomicBool::new(false), |_| {
            first_text_ms.get_or_insert_with(|| began.elapsed().as_secs_f64() * 1000.0);
            true
        })?;
        let prompt_rate = stats.prompt_tokens as f64 / stats.prompt_time.as_secs_f64();
        rates.push(stats.tokens_per_second());
        println!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.1} | {} |",
            run + 1,
            stats.prompt_tokens,
            prompt_rate,
            first_text_ms.unwrap_or_default(),
            stats.completion_tokens,
            stats.tokens_per_second(),
            stats.finish.as_str()
        );
    }
    // A conversation's third turn, read from scratch and continued from the previous turn's session.
    let mut conversation = Vec::new();
    let mut session = None;
    for question in ["Give me three tips for learning Rust.", "Explain the second tip in more detail."] {
        conversation.push(ChatMessage::new(ChatRole::User, question));
        let prompt = model.prompt(&conversation, 2048)?;
        let settings = GenerationSettings { max_tokens: 150, seed: 1, ..GenerationSettings::default() };
        let mut answer = String::new();
        let (_, kept) = model.continue_session(session.take(), &prompt, &settings, &AtomicBool::new(false), |t| {
            answer.push_str(t);
            true
        })?;
        session = Some(kept);
        conversation.push(ChatMessage::new(ChatRole::Assistant, answer));
    }
    conversation.push(ChatMessage::new(ChatRole::User, "Thanks! Summarise all of that in one sentence."));
    let prompt = model.prompt(&conversation, 2048)?;
    let settings = GenerationSettings { max_tokens: 1, ..GenerationSettings::default() };
    println!();
    println!("| third turn of a conversation | prompt tokens | read again | first token ms |");
    println!("|---|---|---|---|");
    for (label, from) in [("from scratch", None), ("continued from the last turn", session)] {
        let stats = model.continue_session(from, &prompt, &settings, &AtomicBool::new(false), |_| true)?.0;
        println!(
            "| {label} | {} | {} | {:.0} |",
            stats.prompt_tokens,
            stats.prompt_tokens - stats.reused_tokens,
            stats.prompt_time.as_secs_f64() * 1000.0
        );
    }

    let (peak, rss) = memory();
    rates.sort_by(f64::total_cmp);
    println!();
    println!(
        "median {:.1} tokens/s; RSS {rss:.0} MiB, peak {peak:.0} MiB; {} threads (RAYON_NUM_THREADS)",
        rates[rates.len() / 2],
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}
