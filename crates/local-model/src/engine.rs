//! The loaded model and its generation loop.
//!
//! The weights are read once; every generation works on a clone of [`ModelWeights`], which shares the weight
//! tensors and owns only its attention cache, so generations never see each other's state. The prompt is fed in
//! chunks and the answer one token at a time; between any two steps the loop checks the caller's cancel flag, so
//! a stop takes effect within one step (tens of milliseconds), not at the end of the answer.
//!
//! Reading a prompt costs about 10 ms per token on two cores, and a chat's next prompt is its previous prompt
//! plus the answer and the new message. So a generation hands back its [`Session`] (the model copy with its
//! attention cache and the token ids in it), and a later prompt that starts with those ids feeds only the rest:
//! the second message of a conversation waits for its own tokens, not for the whole history again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};

use crate::stream_text::TextStream;
use crate::template::{ChatMessage, ChatTemplate};
use crate::tokenizer::ChatTokenizer;
use crate::{LocalModelError, Result};

/// Prompt tokens fed per forward pass: large enough to use matrix kernels well, small enough that a stop
/// during a long prompt is noticed quickly.
const PROMPT_CHUNK: usize = 32;

/// How to sample an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationSettings {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling temperature; 0 picks the most likely token every time.
    pub temperature: f64,
    /// Nucleus sampling: the smallest set of tokens whose probabilities add up to this.
    pub top_p: f64,
    /// Only the this many most likely tokens are considered.
    pub top_k: usize,
    /// Penalty on tokens seen in the last `repeat_last_n` tokens (1: none). Small models loop without it.
    pub repeat_penalty: f32,
    /// Window of the repeat penalty.
    pub repeat_last_n: usize,
    /// Random seed (the same seed and settings give the same answer).
    pub seed: u64,
}

impl Default for GenerationSettings {
    /// SmolLM2's recommended sampling (temperature 0.2, top-p 0.9) with llama.cpp's top-k and repeat penalty.
    fn default() -> Self {
        Self {
            max_tokens: 1024,
            temperature: 0.2,
            top_p: 0.9,
            top_k: 40,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// The output limit or the context window was reached.
    Length,
    /// The caller cancelled, or stopped reading.
    Cancelled,
}

impl FinishReason {
    /// OpenAI's spelling (`stop`, `length`).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// What a generation did.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (the end-of-turn token included).
    pub completion_tokens: usize,
    /// Why it ended.
    pub finish: FinishReason,
    /// Time spent reading the prompt (up to the first generated token).
    pub prompt_time: Duration,
    /// Time spent generating after the first token.
    pub generation_time: Duration,
    /// Prompt tokens whose attention cache came from an earlier generation (not read again).
    pub reused_tokens: usize,
}

/// A model copy whose attention cache holds exactly `ids`, to continue a conversation without reading it again.
pub struct Session {
    weights: ModelWeights,
    ids: Vec<u32>,
}

impl Session {
    /// The token ids in the cache.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Whether a generation on `prompt` can continue from this session: the prompt extends its ids.
    pub fn continues(&self, prompt: &[u32]) -> bool {
        !self.ids.is_empty() && prompt.len() > self.ids.len() && prompt.starts_with(&self.ids)
    }
}

impl GenerationStats {
    /// Generated tokens per second after the first one.
    pub fn tokens_per_second(&self) -> f64 {
        let secs = self.generation_time.as_secs_f64();
        if secs > 0.0 { self.completion_tokens.saturating_sub(1) as f64 / secs } else { 0.0 }
    }
}

/// A model in memory, shared by all generations.
pub struct LoadedModel {
    weights: ModelWeights,
    tokenizer: ChatTokenizer,
    template: ChatTemplate,
    /// Token ids that end an answer: every control token (`<|im_end|>`, `<|endoftext|>`, `<|im_start|>`...).
    stop_tokens: Vec<u32>,
    context_length: usize,
    device: Device,
}

impl LoadedModel {
    /// Reads a Llama-architecture GGUF file with a byte-level BPE tokenizer and a ChatML template.
    pub fn load(path: &Path) -> Result<Self> {
        let mut file = std::fs::File::open(path)
            .map_err(|e| LocalModelError::io(format!("cannot open the local model {}", path.display()), e))?;
        let content = gguf_file::Content::read(&mut file)?;
        let metadata = &content.metadata;
        let architecture = metadata.get("general.architecture").and_then(|v| v.to_string().ok());
        if architecture.map(String::as_str) != Some("llama") {
            return Err(LocalModelError::Unsupported(format!(
                "general.architecture is {architecture:?}; only `llama` models are supported"
            )));
        }
        let tokenizer = ChatTokenizer::from_gguf(&content)?;
        let template = ChatTemplate::new(
            &tokenizer,
            metadata.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).map(String::as_str),
        )?;
        let trained_context =
            metadata.get("llama.context_length").and_then(|v| v.to_u32().ok()).map_or(MAX_SEQ_LEN, |n| n as usize);
        let stop_tokens = ["<|im_end|>", "<|endoftext|>", "<|im_start|>"]
            .iter()
            .filter_map(|spelling| tokenizer.control_token(spelling))
            .chain([tokenizer.eos()])
            .collect();
        let device = Device::Cpu;
        let weights = ModelWeights::from_gguf(content, &mut file, &device)?;
        Ok(Self {
            weights,
            tokenizer,
            template,
            stop_tokens,
            // candle's rotary tables stop at MAX_SEQ_LEN positions, whatever the model was trained on.
            context_length: trained_context.min(MAX_SEQ_LEN),
            device,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &ChatTokenizer {
        &self.tokenizer
    }

    /// Most tokens (prompt and answer) one generation can hold.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The system message used when a conversation has none.
    pub fn default_system(&self) -> Option<&str> {
        self.template.default_system()
    }

    /// The prompt for a conversation (oldest first), fitted to `budget` tokens; see [`ChatTemplate::prompt`].
    pub fn prompt(&self, messages: &[ChatMessage], budget: usize) -> Result<Vec<u32>> {
        self.template.prompt(&self.tokenizer, messages, budget.min(self.context_length))
    }

    /// Generates an answer to `prompt`, handing each piece of text to `on_text` as soon as it is complete.
    ///
    /// Returns when the model ends its turn, at `settings.max_tokens` or the context window, when `cancel` is
    /// set, or when `on_text` returns `false` (its reader went away).
    pub fn generate(
        &self,
        prompt: &[u32],
        settings: &GenerationSettings,
        cancel: &AtomicBool,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<GenerationStats> {
        self.continue_session(None, prompt, settings, cancel, on_text).map(|(stats, _)| stats)
    }

    /// [`LoadedModel::generate`], continuing from `session` when `prompt` extends its ids (else from scratch),
    /// and returning the session that holds this generation's prompt and answer.
    pub fn continue_session(
        &self,
        session: Option<Session>,
        prompt: &[u32],
        settings: &GenerationSettings,
        cancel: &AtomicBool,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<(GenerationStats, Session)> {
        let started = Instant::now();
        let (mut model, mut fed) = match session.filter(|s| s.continues(prompt)) {
            Some(session) => (session.weights, session.ids),
            None => (self.weights.clone(), Vec::new()),
        };
        let mut stats = GenerationStats {
            prompt_tokens: prompt.len(),
            completion_tokens: 0,
            finish: FinishReason::Cancelled,
            prompt_time: Duration::ZERO,
            generation_time: Duration::ZERO,
            reused_tokens: fed.len(),
        };
        if prompt.is_empty() || prompt.len() >= self.context_length {
            return Err(LocalModelError::Unsupported(format!(
                "a prompt of {} tokens does not fit the context window of {}",
                prompt.len(),
                self.context_length
            )));
        }
        let mut sampler = LogitsProcessor::from_sampling(settings.seed, sampling(settings));
        let mut position = fed.len();
        let mut logits = None;
        for chunk in prompt[position..].chunks(PROMPT_CHUNK) {
            if cancel.load(Ordering::Relaxed) {
                stats.prompt_time = started.elapsed();
                return Ok((stats, Session { weights: model, ids: fed }));
            }
            logits = Some(model.forward(&Tensor::new(chunk, &self.device)?.unsqueeze(0)?, position)?);
            position += chunk.len();
            fed.extend_from_slice(chunk);
        }
        let mut logits = logits.ok_or_else(|| LocalModelError::Unsupported("empty prompt".into()))?;

        let mut context: Vec<u32> = prompt.to_vec();
        let mut text = TextStream::default();
        let mut first_token_at = None;
        stats.finish = loop {
            let scores = logits.squeeze(0)?.to_dtype(candle_core::DType::F32)?;
            let scores = if settings.repeat_penalty == 1.0 {
                scores
            } else {
                let recent = &context[context.len().saturating_sub(settings.repeat_last_n)..];
                candle_transformers::utils::apply_repeat_penalty(&scores, settings.repeat_penalty, recent)?
            };
            let token = sampler.sample(&scores)?;
            stats.completion_tokens += 1;
            first_token_at.get_or_insert_with(Instant::now);
            if self.stop_tokens.contains(&token) {
                break FinishReason::Stop;
            }
            context.push(token);
            if let Some(piece) = text.push(&self.tokenizer, token)?
                && !on_text(&piece)
            {
                break FinishReason::Cancelled;
            }
            if stats.completion_tokens >= settings.max_tokens || position + 1 >= self.context_length {
                break FinishReason::Length;
            }
            if cancel.load(Ordering::Relaxed) {
                break FinishReason::Cancelled;
            }
            logits = model.forward(&Tensor::new(&[token], &self.device)?.unsqueeze(0)?, position)?;
            position += 1;
            fed.push(token);
        };
        if stats.finish != FinishReason::Cancelled
            && let Some(rest) = text.finish(&self.tokenizer)?
        {
            on_text(&rest);
        }
        let first_token_at = first_token_at.unwrap_or_else(Instant::now);
        stats.prompt_time = first_token_at - started;
        stats.generation_time = first_token_at.elapsed();
        Ok((stats, Session { weights: model, ids: fed }))
    }
}

fn sampling(settings: &GenerationSettings) -> Sampling {
    if settings.temperature <= 0.0 {
        Sampling::ArgMax
    } else {
        Sampling::TopKThenTopP { k: settings.top_k.max(1), p: settings.top_p, temperature: settings.temperature }
    }
}
