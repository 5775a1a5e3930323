//! Workspace host names: what a valid one is, and its normal form.

/// A host value that is not a usable workspace URL.
#[derive(Debug, thiserror::Error)]
#[error(
    "{value:?} is not a valid Databricks workspace URL: {reason}; expected e.g. https://adb-1234567890123456.7.azuredatabricks.net"
)]
pub struct HostError {
    /// The offending value (withheld when it embeds credentials).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Normalises a workspace host to `https://<host>[:port]` without path or trailing slash.
///
/// A missing scheme means https; `http://` is kept only when given explicitly (local fakes). Like the SDKs
/// (`_fix_host_if_needed`), only scheme and authority are kept, so a URL pasted from the browser with `?o=<id>` works.
pub fn normalize_host(raw: &str) -> Result<String, HostError> {
    let trimmed = raw.trim();
    // Never echo a value that embeds credentials.
    let shown = if trimmed.contains('@') { "<withheld>".to_string() } else { trimmed.to_string() };
    let err = |reason: &str| HostError { value: shown.clone(), reason: reason.to_string() };
    if trimmed.is_empty() {
        return Err(err("it is empty"));
    }
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "https" => ("https", rest),
            "http" => ("http", rest),
            other => return Err(err(&format!("unsupported scheme {other:?} (use https://)"))),
        },
        None => ("https", trimmed),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(err("it has no host name"));
    }
    if authority.contains('@') {
        return Err(err("it must not contain user info (user:password@)"));
    }
    let url = reqwest::Url::parse(&format!("{scheme}://{authority}")).map_err(|e| err(&e.to_string()))?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| err("it has no host name"))?;
    Ok(match url.port() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}
