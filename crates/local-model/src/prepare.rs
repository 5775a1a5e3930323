//! One-time preparation of a GGUF file for fast generation on any x86-64 or ARM CPU.
//!
//! candle multiplies Q4_0, Q8_0 and the K-quants with SIMD code chosen at run time (AVX2, NEON), but Q4_1, Q5_0,
//! Q5_1 and Q8_1 only with scalar code: SmolLM2 as shipped (Q4_1) generates about 14 tokens/s on two cores,
//! against about 50 once its Q4_1 tensors are re-encoded as Q8_0. Q8_0 is finer than those formats, so the
//! re-encoding loses nothing measurable; the file grows from 98 to 145 MB. The result is written once, next to
//! the source (or wherever the caller says), and loads as fast as the original.
//!
//! The prepared file's name carries a fingerprint of the source (its size and first mebibyte), so replacing the
//! source file is noticed without hashing it in full at every start.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use sha2::{Digest, Sha256};

use crate::{LocalModelError, Result};

/// Tensor types that candle runs with scalar code only.
const SLOW_TYPES: [GgmlDType; 4] = [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1, GgmlDType::Q8_1];

/// What to load for `source`: itself when it needs no preparation, else the prepared file in `dir`
/// (which may not exist yet).
pub fn plan(source: &Path, dir: &Path) -> Result<Plan> {
    let mut file =
        File::open(source).map_err(|e| LocalModelError::io(format!("cannot open {}", source.display()), e))?;
    let content = gguf_file::Content::read(&mut file)?;
    if !content.tensor_infos.values().any(|info| SLOW_TYPES.contains(&info.ggml_dtype)) {
        return Ok(Plan::AsIs);
    }
    let stem = source.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let name = format!("{stem}.{}.q8_0.gguf", fingerprint(source)?);
    Ok(Plan::Prepared(dir.join(name)))
}

/// How to load a model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Load the source file itself.
    AsIs,
    /// Load this prepared file (after [`prepare`] if it is missing).
    Prepared(PathBuf),
}

/// Writes `dest`: `source` with its slow tensor types re-encoded as Q8_0. Written to a temporary name first and
/// renamed, so a crash never leaves a half file under the final name.
pub fn prepare(source: &Path, dest: &Path) -> Result<()> {
    let mut file =
        File::open(source).map_err(|e| LocalModelError::io(format!("cannot open {}", source.display()), e))?;
    let content = gguf_file::Content::read(&mut file)?;
    let device = Device::Cpu;
    // Keep the source's tensor order (the map has none): file offsets give it.
    let mut names: Vec<(&String, u64)> = content.tensor_infos.iter().map(|(name, info)| (name, info.offset)).collect();
    names.sort_by_key(|(_, offset)| *offset);
    let mut tensors: Vec<(&str, QTensor)> = Vec::with_capacity(names.len());
    for (name, _) in names {
        let tensor = content.tensor(&mut file, name, &device)?;
        let tensor = if SLOW_TYPES.contains(&tensor.dtype()) {
            QTensor::quantize(&tensor.dequantize(&device)?, GgmlDType::Q8_0)?
        } else {
            tensor
        };
        tensors.push((name.as_str(), tensor));
    }
    let mut metadata: Vec<(&str, &gguf_file::Value)> =
        content.metadata.iter().map(|(key, value)| (key.as_str(), value)).collect();
    metadata.sort_by_key(|(key, _)| *key);
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(name, tensor)| (*name, tensor)).collect();

    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| LocalModelError::io(format!("cannot create {}", dir.display()), e))?;
    let partial = crate::fetch::partial_path(dest);
    let written = (|| -> Result<()> {
        let out = File::create(&partial)
            .map_err(|e| LocalModelError::io(format!("cannot write {}", partial.display()), e))?;
        let mut out = BufWriter::new(out);
        gguf_file::write(&mut out, &metadata, &tensor_refs)?;
        let out =
            out.into_inner().map_err(|e| LocalModelError::io("cannot write the prepared model", e.into_error()))?;
        out.sync_all().map_err(|e| LocalModelError::io("cannot write the prepared model", e))?;
        std::fs::rename(&partial, dest)
            .map_err(|e| LocalModelError::io(format!("cannot move the prepared model to {}", dest.display()), e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// 12 hex digits identifying a file's content cheaply: SHA-256 of its size and first mebibyte.
fn fingerprint(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| LocalModelError::io(format!("cannot open {}", path.display()), e))?;
    let size = file.metadata().map_err(|e| LocalModelError::io("cannot read the model file", e))?.len();
    let mut head = Vec::with_capacity(1 << 20);
    file.take(1 << 20).read_to_end(&mut head).map_err(|e| LocalModelError::io("cannot read the model file", e))?;
    let mut hasher = Sha256::new();
    hasher.update(size.to_le_bytes());
    hasher.update(&head);
    let digest = hasher.finalize();
    Ok(digest.iter().take(6).map(|b| format!("{b:02x}")).collect())
}
