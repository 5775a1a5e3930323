//! Tokens from the Databricks CLI (`databricks auth token`), for a developer signed in with
//! `databricks auth login` (PROTOCOLS.md C.5).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::AuthError;
use super::token_cache::{Fetched, instant_at};
use super::vars::ENV_CLI_PATH;

/// How long `databricks auth token` may run.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run `databricks auth token`.
pub(super) struct Cli {
    /// `DATABRICKS_CLI_PATH` / `databricks_cli_path`; otherwise `databricks` is searched on `search_path`.
    pub(super) program: Option<PathBuf>,
    pub(super) args: Vec<String>,
    pub(super) search_path: Option<OsString>,
    /// Variables from `Vars` handed to the CLI so it sees the same HOME, PATH and config file as we did.
    pub(super) child_env: Vec<(&'static str, String)>,
}

#[derive(Deserialize)]
struct CliToken {
    access_token: String,
    expiry: String,
}

impl Cli {
    fn program(&self) -> Result<PathBuf, String> {
        if let Some(program) = &self.program {
            return Ok(program.clone());
        }
        let path = self.search_path.clone().or_else(|| std::env::var_os("PATH")).unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("databricks"))
            .find(|candidate| is_executable(candidate))
            .ok_or_else(|| {
                format!("the Databricks CLI `databricks` was not found on PATH (install it or set {ENV_CLI_PATH})")
            })
    }

    pub(super) async fn fetch(&self, host: &str) -> Result<Fetched, AuthError> {
        let cli_err = |reason: String| AuthError::Cli { reason, host: host.to_string() };
        let program = self.program().map_err(cli_err)?;
        let shown = format!("databricks {}", self.args.join(" "));
        let mut command = tokio::process::Command::new(&program);
        command.args(&self.args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        for (name, value) in &self.child_env {
            command.env(name, value);
        }
        let output = match tokio::time::timeout(CLI_TIMEOUT, command.output()).await {
            Err(_) => return Err(cli_err(format!("`{shown}` did not finish within {} s", CLI_TIMEOUT.as_secs()))),
            Ok(Err(e)) => return Err(cli_err(format!("could not run {} ({e})", program.display()))),
            Ok(Ok(output)) => output,
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = stderr.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("(no error output)");
            let first: String = first.chars().take(300).collect();
            return Err(cli_err(format!("`{shown}` failed ({}): {first}", output.status)));
        }
        let token: CliToken = serde_json::from_slice(&output.stdout)
            .map_err(|e| cli_err(format!("could not parse the JSON printed by `{shown}` ({e})")))?;
        // `expiry` is Go's RFC 3339 with nanoseconds (C.5); `expires_in` is not relied upon.
        let expiry = DateTime::parse_from_rfc3339(&token.expiry)
            .map_err(|e| cli_err(format!("`{shown}` printed an unreadable expiry ({e})")))?;
        Ok(Fetched { secret: token.access_token.into(), expires: Some(instant_at(expiry.with_timezone(&Utc))) })
    }
}

#[cfg(unix)]
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &std::path::Path) -> bool {
    path.is_file()
}
