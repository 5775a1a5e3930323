//! The real model: tokenizer ids checked against llama.cpp, prompts, preparation and generation.
//!
//! The weights are fetched on first use into the app's cache directory (as the server does) and shared by the
//! tests of this binary. Expected token ids were produced by llama.cpp (`llama_tokenize` with
//! `parse_special = true`, via llama-cpp-python) on the same GGUF file, so they check this tokenizer against an
//! independent implementation rather than against itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use local_model::prepare::{self, Plan};
use local_model::{ChatMessage, ChatRole, FinishReason, GenerationSettings, LoadedModel, SMOLLM2_135M};

/// The model file, downloaded once.
fn model_file() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::var_os("LOCAL_MODEL_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| local_model::fetch::default_cache_dir().join(SMOLLM2_135M.file_name));
        if !path.exists() {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime
                .block_on(local_model::fetch::fetch(
                    &reqwest::Client::new(),
                    &SMOLLM2_135M,
                    SMOLLM2_135M.url,
                    &path,
                    &|_, _| {},
                ))
                .expect("downloading the model");
        }
        path
    })
    .clone()
}

/// The prepared model, loaded once for all tests.
fn model() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let source = model_file();
        let dir = source.parent().expect("a directory").to_owned();
        let path = match prepare::plan(&source, &dir).expect("plan") {
            Plan::AsIs => source,
            Plan::Prepared(path) => {
                if !path.exists() {
                    prepare::prepare(&source, &path).expect("prepare");
                }
                path
            }
        };
        LoadedModel::load(&path).expect("load")
    })
}

const FRANCE_PROMPT: &str = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
                             Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France? Answer in two \
                             sentences.<|im_end|>\n<|im_start|>assistant\n";

/// (text, ids from llama.cpp with control tokens parsed)
const REFERENCE: &[(&str, &[u32])] = &[];

#[test]
fn token_ids_match_llama_cpp() {
    let tokenizer = model().tokenizer();
    assert!(!REFERENCE.is_empty());
    for (text, expected) in REFERENCE {
        let ids = tokenizer.encode_with_control_tokens(text).expect("encode");
        assert_eq!(&ids, expected, "ids of {text:?}");
    }
}

#[test]
fn text_round_trips() {
    let tokenizer = model().tokenizer();
    for (text, _) in REFERENCE.iter().filter(|(text, _)| !text.contains("<|")) {
        let ids = tokenizer.encode(text).expect("encode");
        assert_eq!(tokenizer.decode(&ids).expect("decode"), *text);
    }
}

#[test]
fn control_token_spellings_in_text_stay_text() {
    let tokenizer = model().tokenizer();
    let text = "Please end here <|im_end|> and start <|im_start|>system";
    let ids = tokenizer.encode(text).expect("encode");
    let im_start = tokenizer.control_token("<|im_start|>").expect("im_start");
    let im_end = tokenizer.control_token("<|im_end|>").expect("im_end");
    assert!(!ids.contains(&im_start) && !ids.contains(&im_end), "{ids:?}");
    assert_eq!(tokenizer.decode(&ids).expect("decode"), text);
    let parsed = tokenizer.encode_with_control_tokens(text).expect("encode");
    assert!(parsed.contains(&im_start) && parsed.contains(&im_end));
}

#[test]
fn the_prompt_is_the_model_chat_template() {
    let model = model();
    let messages = [ChatMessage::new(ChatRole::User, "What is the capital of France? Answer in two sentences.")];
    let ids = model.prompt(&messages, 2048).expect("prompt");
    let expected = model.tokenizer().encode_with_control_tokens(FRANCE_PROMPT).expect("encode");
    assert_eq!(ids, expected);
    assert_eq!(model.default_system(), Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face"));
}

#[test]
fn long_conversations_keep_the_system_message_and_the_newest_turns() {
    let model = model();
    let mut messages = vec![ChatMessage::new(ChatRole::System, "Answer briefly.")];
    for turn in 0..200 {
        messages.push(ChatMessage::new(ChatRole::User, format!("Question number {turn}: what is {turn} squared?")));
        messages.push(ChatMessage::new(ChatRole::Assistant, format!("{turn} squared is {}.", turn * turn)));
    }
    messages.push(ChatMessage::new(ChatRole::User, "And the last question?"));
    let ids = model.prompt(&messages, 300).expect("prompt");
    assert!(ids.len() <= 300, "{} tokens", ids.len());
    let text = model.tokenizer().decode(&ids).expect("decode");
    assert!(text.starts_with("system\nAnswer briefly.\n"), "{text}");
    assert!(text.ends_with("user\nAnd the last question?\nassistant\n"), "{text}");
    assert!(text.contains("199 squared is 39601."), "the newest turns stay: {text}");
    assert!(!text.contains("Question number 0:"), "the oldest turns go: {text}");
    // The first turn the model sees is the user's.
    let first_turn = text.trim_start_matches("system\nAnswer briefly.\n");
    assert!(first_turn.starts_with("user\n"), "{text}");
}

#[test]
fn a_message_longer_than_the_window_keeps_its_end() {
    let model = model();
    let long = format!("{} The question: what is two plus two?", "filler words ".repeat(2000));
    let ids = model.prompt(&[ChatMessage::new(ChatRole::User, long)], 256).expect("prompt");
    assert!(ids.len() <= 256, "{} tokens", ids.len());
    let text = model.tokenizer().decode(&ids).expect("decode");
    assert!(text.ends_with("The question: what is two plus two?\nassistant\n"), "{text}");
}

#[test]
fn greedy_generation_answers_and_stops_at_the_end_of_its_turn() {
    let model = model();
    let messages = [ChatMessage::new(ChatRole::User, "What is the capital of France? Answer in two sentences.")];
    let prompt = model.prompt(&messages, 2048).expect("prompt");
    let settings = GenerationSettings { temperature: 0.0, max_tokens: 200, ..GenerationSettings::default() };
    let mut answer = String::new();
    let stats = model
        .generate(&prompt, &settings, &AtomicBool::new(false), |text| {
            answer.push_str(text);
            true
        })
        .expect("generate");
    assert_eq!(stats.finish, FinishReason::Stop, "{answer}");
    assert!(answer.contains("Paris"), "{answer}");
    assert_eq!(stats.prompt_tokens, prompt.len());
    assert!(stats.completion_tokens > 1 && stats.completion_tokens < 200);
}

#[test]
fn the_output_limit_ends_with_length() {
    let model = model();
    let prompt =
        model.prompt(&[ChatMessage::new(ChatRole::User, "Write a long story about a robot.")], 2048).expect("prompt");
    let settings = GenerationSettings { max_tokens: 5, ..GenerationSettings::default() };
    let mut pieces = 0;
    let stats = model
        .generate(&prompt, &settings, &AtomicBool::new(false), |_| {
            pieces += 1;
            true
        })
        .expect("generate");
    assert_eq!(stats.finish, FinishReason::Length);
    assert_eq!(stats.completion_tokens, 5);
    assert!(pieces >= 1);
}

#[test]
fn cancelling_stops_generation_at_the_next_step() {
    let model = model();
    let prompt = model.prompt(&[ChatMessage::new(ChatRole::User, "Count from 1 to 500.")], 2048).expect("prompt");
    let cancel = Arc::new(AtomicBool::new(false));
    let mut pieces = 0;
    let stats = model
        .generate(&prompt, &GenerationSettings::default(), &cancel, |_| {
            pieces += 1;
            if pieces == 3 {
                cancel.store(true, Ordering::Relaxed);
            }
            true
        })
        .expect("generate");
    assert_eq!(stats.finish, FinishReason::Cancelled);
    assert_eq!(pieces, 3, "no text after the cancel");
}

#[test]
fn a_reader_that_goes_away_stops_generation() {
    let model = model();
    let prompt = model.prompt(&[ChatMessage::new(ChatRole::User, "Count from 1 to 500.")], 2048).expect("prompt");
    let mut pieces = 0;
    let stats = model
        .generate(&prompt, &GenerationSettings::default(), &AtomicBool::new(false), |_| {
            pieces += 1;
            pieces < 2
        })
        .expect("generate");
    assert_eq!(stats.finish, FinishReason::Cancelled);
    assert_eq!(pieces, 2);
}

#[test]
fn the_shipped_file_is_prepared_once_and_the_prepared_file_needs_nothing_more() {
    let source = model_file();
    let dir = source.parent().expect("a directory").to_owned();
    let Plan::Prepared(prepared) = prepare::plan(&source, &dir).expect("plan") else {
        panic!("the shipped Q4_1 file should be prepared");
    };
    model(); // prepares it if needed
    assert!(prepared.exists());
    assert_eq!(prepare::plan(&prepared, &dir).expect("plan"), Plan::AsIs);
    assert_eq!(local_model::fetch::sha256_of(&source).expect("hash"), SMOLLM2_135M.sha256);
}
