//! The model's tokenizer, built from the GGUF metadata: a byte-level BPE with SmolLM's pre-tokenization.
//!
//! candle's `TokenizerFromGguf` knows only the `qwen2` and `llama3` pre-tokenizers and falls back to a byte-level
//! split with a prefix space and no digit splitting for anything else, which tokenizes SmolLM prompts unlike the
//! model was trained. SmolLM (`tokenizer.ggml.pre = smollm`, the StarCoder family) splits every digit on its own,
//! then applies the GPT-2 byte-level split without a prefix space: the same as its `tokenizer.json` and llama.cpp.
//!
//! Control tokens (`<|im_start|>`, `<|im_end|>`, ...) are never produced from text by [`ChatTokenizer::encode`]:
//! a user who types `<|im_end|>` gets those characters, not the end of their turn. Prompts insert them by id.

use ahash::AHashMap;
use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::{LocalModelError, Result};

/// GGUF `token_type` of control tokens.
const TOKEN_TYPE_CONTROL: i32 = 3;
/// Pre-tokenizers that use the StarCoder split (one token per digit, then the GPT-2 regex).
const STARCODER_FAMILY: [&str; 3] = ["smollm", "starcoder", "refact"];

/// Text to token ids and back, for one model.
pub struct ChatTokenizer {
    inner: Tokenizer,
    /// Control tokens and their ids, longest first (for [`ChatTokenizer::encode_with_control_tokens`]).
    control: Vec<(String, u32)>,
    /// End of sequence / end of turn (`<|im_end|>` for SmolLM2).
    eos: u32,
    vocab_size: usize,
}

impl ChatTokenizer {
    /// Builds the tokenizer from the `tokenizer.ggml.*` metadata of a GGUF file.
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let metadata = &content.metadata;
        let string = |key: &str| -> Result<&String> {
            let value = metadata.get(key).ok_or_else(|| unsupported(format!("no {key} in the GGUF metadata")))?;
            Ok(value.to_string()?)
        };
        let kind = string("tokenizer.ggml.model")?;
        if kind != "gpt2" {
            return Err(unsupported(format!(
                "tokenizer.ggml.model is `{kind}`; only byte-level BPE (`gpt2`) is supported"
            )));
        }
        let pre = string("tokenizer.ggml.pre")?;
        if !STARCODER_FAMILY.contains(&pre.as_str()) {
            return Err(unsupported(format!(
                "tokenizer.ggml.pre is `{pre}`; supported: {}",
                STARCODER_FAMILY.join(", ")
            )));
        }
        let tokens = string_list(metadata.get("tokenizer.ggml.tokens"), "tokenizer.ggml.tokens")?;
        let merges = string_list(metadata.get("tokenizer.ggml.merges"), "tokenizer.ggml.merges")?;
        let types: Vec<i32> = match metadata.get("tokenizer.ggml.token_type") {
            Some(value) => value.to_vec()?.iter().map(Value::to_i32).collect::<candle_core::Result<_>>()?,
            None => Vec::new(),
        };
        let eos = metadata
            .get("tokenizer.ggml.eos_token_id")
            .ok_or_else(|| unsupported("no tokenizer.ggml.eos_token_id in the GGUF metadata".into()))?
            .to_u32()?;

        let vocab: AHashMap<String, u32> = tokens.iter().enumerate().map(|(id, t)| ((*t).clone(), id as u32)).collect();
        let merges: Vec<(String, String)> = merges
            .iter()
            .map(|merge| {
                merge
                    .split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| unsupported(format!("malformed merge `{merge}`")))
            })
            .collect::<Result<_>>()?;
        let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(tokenizer_error)?;

        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])));
        inner.with_decoder(Some(ByteLevel::default()));
        let mut control: Vec<(String, u32)> = types
            .iter()
            .enumerate()
            .filter(|(_, kind)| **kind == TOKEN_TYPE_CONTROL)
            .filter_map(|(id, _)| tokens.get(id).map(|t| ((*t).clone(), id as u32)))
            .collect();
        // Registered as special so that decoding skips them; `encode_special_tokens` keeps `encode` from
        // matching them in text.
        inner
            .add_special_tokens(control.iter().map(|(t, _)| AddedToken::from(t.clone(), true)).collect::<Vec<_>>())
            .map_err(tokenizer_error)?;
        inner.set_encode_special_tokens(true);
        control.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
        Ok(Self { inner, control, eos, vocab_size: tokens.len() })
    }

    /// Token ids of `text`, taken literally: control-token spellings in it are ordinary characters.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.inner.encode_fast(text, false).map_err(tokenizer_error)?.get_ids().to_vec())
    }

    /// Token ids of `text` where control-token spellings (`<|im_start|>`) become those tokens, as llama.cpp's
    /// `tokenize(.., parse_special = true)` does. For trusted text only (templates, tests).
    pub fn encode_with_control_tokens(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let next = self
                .control
                .iter()
                .filter_map(|(spelling, id)| rest.find(spelling.as_str()).map(|at| (at, spelling.len(), *id)))
                .min_by_key(|(at, _, _)| *at);
            match next {
                Some((at, len, id)) => {
                    ids.extend(self.encode(&rest[..at])?);
                    ids.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    ids.extend(self.encode(rest)?);
                    break;
                }
            }
        }
        Ok(ids)
    }

    /// Text of `ids`; control tokens are left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(tokenizer_error)
    }

    /// The id of a control token (`<|im_start|>`), if the vocabulary has it.
    pub fn control_token(&self, spelling: &str) -> Option<u32> {
        self.control.iter().find(|(text, _)| text == spelling).map(|(_, id)| *id)
    }

    /// The end-of-sequence token.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

fn string_list<'a>(value: Option<&'a Value>, key: &str) -> Result<Vec<&'a String>> {
    let value = value.ok_or_else(|| unsupported(format!("no {key} in the GGUF metadata")))?;
    Ok(value.to_vec()?.iter().map(Value::to_string).collect::<candle_core::Result<_>>()?)
}

fn unsupported(message: String) -> LocalModelError {
    LocalModelError::Unsupported(message)
}

fn tokenizer_error(error: tokenizers::Error) -> LocalModelError {
    LocalModelError::Tokenizer(error.to_string())
}
