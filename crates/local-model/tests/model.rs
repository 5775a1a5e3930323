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

/// (text, ids from llama.cpp 0.3.36's tokenizer via llama-cpp-python, `special = true`) on the shipped GGUF.
const REFERENCE: &[(&str, &[u32])] = &[
    (
        "Compute 12345 + 67.8 = ? café naïve 日本語 🚀  double  spaces\tTab\n\nfn main() {\n    println!(\"hi {x}\");\n}\nDon't you'll I'M",
        &[
            45319, 216, 33, 34, 35, 36, 37, 1232, 216, 38, 39, 30, 40, 446, 9148, 37366, 15486, 46494, 17097, 241, 115,
            40993, 179, 120, 248, 15107, 244, 218, 216, 5561, 216, 5600, 197, 30064, 198, 198, 7853, 1085, 1000, 1662,
            472, 1628, 34115, 17, 1470, 6004, 1662, 104, 15201, 43, 198, 109, 198, 8084, 982, 346, 3060, 339, 23, 61,
        ],
    ),
    (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France? Answer in two sentences.<|im_end|>\n<|im_start|>assistant\n",
        &[
            1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182,
            2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 19842, 281, 827, 8545, 30, 2, 198, 1, 520, 9531,
            198,
        ],
    ),
    (
        "3.14159 and 1,000,000 and 2026-12-03T08:36:14Z, 0x1F",
        &[
            35, 30, 33, 36, 33, 37, 41, 284, 216, 33, 28, 32, 32, 32, 28, 32, 32, 32, 284, 216, 34, 32, 34, 38, 29, 33,
            34, 29, 32, 35, 68, 32, 40, 42, 35, 38, 42, 33, 36, 74, 28, 216, 32, 104, 33, 54,
        ],
    ),
    (
        "👩‍👩‍👧‍👦 family, 🇫🇷 flag, ✨ sparkles, ½ ¾ ², Ω ω, Ünïcödé, Ελληνικά, русский, עברית, العربية",
        &[
            10813, 235, 119, 321, 231, 10813, 235, 119, 321, 231, 10813, 235, 117, 321, 231, 10813, 235, 116, 1564, 28,
            15107, 225, 121, 10813, 225, 132, 7048, 28, 4636, 246, 118, 8740, 735, 28, 216, 16738, 216, 43124, 216,
            19133, 28, 5664, 119, 11446, 227, 28, 5549, 246, 94, 25972, 83, 7466, 84, 2756, 28, 5664, 239, 17162,
            17162, 25723, 11517, 12001, 21118, 26112, 28, 216, 9175, 14714, 9382, 39511, 7872, 24958, 28, 12960, 112,
            37657, 30825, 28532, 120, 28, 27819, 34966, 20602, 31462, 23339, 43463,
        ],
    ),
    (
        "SELECT id, COUNT(*) FROM chat.messages WHERE seq >= 10 GROUP BY id;\n\t-- comment\r\n",
        &[
            23428, 4492, 28, 3214, 23330, 12905, 25, 18451, 11743, 30, 21441, 28531, 19416, 10888, 216, 33, 32, 44516,
            11957, 18172, 4492, 43, 198, 197, 423, 5189, 2738,
        ],
    ),
    ("   leading spaces, trailing spaces   \n\n\n   ", &[256, 2899, 5600, 28, 35079, 5600, 333, 13272]),
    (
        "<|im_start|>user\nliteral <b>html</b> & 'quotes' \"double\"<|im_end|>\n<|endoftext|>",
        &[
            1, 4093, 198, 17094, 1555, 2067, 82, 46, 5699, 9617, 82, 46, 1456, 637, 385, 2346, 23, 476, 21414, 18, 2,
            198, 0,
        ],
    ),
];

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

#[test]
fn a_conversation_continues_from_its_session_with_the_same_answer_as_from_scratch() {
    let model = model();
    let greedy = GenerationSettings { temperature: 0.0, max_tokens: 60, ..GenerationSettings::default() };
    let question = ChatMessage::new(ChatRole::User, "What is the capital of France?");
    let first = model.prompt(std::slice::from_ref(&question), 2048).expect("prompt");
    let mut answer = String::new();
    let (_, session) = model
        .continue_session(None, &first, &greedy, &AtomicBool::new(false), |text| {
            answer.push_str(text);
            true
        })
        .expect("first turn");
    assert!(session.ids().starts_with(&first), "the session holds the prompt, then the answer");

    let conversation =
        [question, ChatMessage::new(ChatRole::Assistant, answer), ChatMessage::new(ChatRole::User, "And of Italy?")];
    let second = model.prompt(&conversation, 2048).expect("prompt");
    let mut continued = String::new();
    let (stats, _) = model
        .continue_session(Some(session), &second, &greedy, &AtomicBool::new(false), |text| {
            continued.push_str(text);
            true
        })
        .expect("second turn, continued");
    let mut from_scratch = String::new();
    let (fresh, _) = model
        .continue_session(None, &second, &greedy, &AtomicBool::new(false), |text| {
            from_scratch.push_str(text);
            true
        })
        .expect("second turn, from scratch");

    assert!(stats.reused_tokens > first.len(), "the first prompt and answer were not read again: {stats:?}");
    assert_eq!(fresh.reused_tokens, 0);
    // The cache's keys and values were computed a token at a time, the fresh prompt's in one batch: the same sums in
    // another order, so on some CPUs the two greedy answers part at a near-tie of the logits after a few words (seen:
    // 28 equal characters, then "Dante" against "Lionardo"). A cache that was wrong would not even start alike.
    let alike = continued.chars().zip(from_scratch.chars()).take_while(|(a, b)| a == b).count();
    assert!(alike >= 12, "the continued answer starts as the fresh one: {continued:?} / {from_scratch:?}");
}

#[test]
fn a_session_the_prompt_does_not_continue_is_not_used() {
    let model = model();
    let settings = GenerationSettings { temperature: 0.0, max_tokens: 5, ..GenerationSettings::default() };
    let first = model.prompt(&[ChatMessage::new(ChatRole::User, "Name a colour.")], 2048).expect("prompt");
    let (_, session) =
        model.continue_session(None, &first, &settings, &AtomicBool::new(false), |_| true).expect("first");
    let other = model.prompt(&[ChatMessage::new(ChatRole::User, "Name an animal.")], 2048).expect("prompt");
    let (stats, _) =
        model.continue_session(Some(session), &other, &settings, &AtomicBool::new(false), |_| true).expect("other");
    assert_eq!(stats.reused_tokens, 0);
}
