//! Browser-facing protections: response headers (a strict Content-Security-Policy the WebAssembly app runs under,
//! no MIME sniffing, no framing, no referrer) and a cross-origin check that refuses state-changing requests sent by
//! another site's page, so a cross-site form or script cannot act as the signed-in user.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The Content-Security-Policy for every response. Scripts: our own files, WebAssembly compilation
/// (`'wasm-unsafe-eval'`, not `'unsafe-eval'`), and by hash the inline loader Trunk writes into `index.html`.
/// Images only from the app itself or `data:`, so a model-written image link cannot send data to another host.
pub fn content_security_policy(index_html: Option<&str>) -> HeaderValue {
    let hashes: String =
        index_html.map(inline_script_hashes).unwrap_or_default().iter().map(|h| format!(" '{h}'")).collect();
    let policy = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// `sha256-<base64>` of each inline `<script>` (one without `src`) in an HTML document.
fn inline_script_hashes(html: &str) -> Vec<String> {
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after_tag = &rest[start..];
        let Some(open_end) = after_tag.find('>') else { break };
        let attributes = &after_tag[..open_end];
        let body_and_rest = &after_tag[open_end + 1..];
        let Some(close) = body_and_rest.find("</script>") else { break };
        if !attributes.contains("src=") {
            let digest = Sha256::digest(&body_and_rest.as_bytes()[..close]);
            hashes.push(format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(digest)));
        }
        rest = &body_and_rest[close..];
    }
    hashes
}

/// Headers added to every response that does not set them itself; cheap to clone.
#[derive(Clone)]
pub struct SecurityHeaders(Arc<Vec<(HeaderName, HeaderValue)>>);

impl SecurityHeaders {
    /// The headers, with a policy allowing the inline loader of `index_html` (the built web app's page).
    pub fn new(index_html: Option<&str>) -> Self {
        let mut headers = static_headers().to_vec();
        headers.push((header::CONTENT_SECURITY_POLICY, content_security_policy(index_html)));
        Self(Arc::new(headers))
    }
}

/// Adds the [`SecurityHeaders`] a response does not set itself.
pub async fn add_headers(State(headers): State<SecurityHeaders>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    for (name, value) in headers.0.iter() {
        response.headers_mut().entry(name).or_insert_with(|| value.clone());
    }
    response
}

fn static_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
        (
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
        ),
    ]
}

/// Refuses state-changing requests (anything but GET, HEAD, OPTIONS) that a browser sent from another origin.
///
/// Browsers say where a request comes from in `Sec-Fetch-Site` (every current browser); older ones in `Origin`,
/// compared with the host the client addressed (`X-Forwarded-Host` behind the Databricks Apps proxy, else `Host`).
/// Requests with neither header do not come from a web page (curl, other services) and pass: they carry no
/// ambient browser credentials to abuse.
pub async fn same_origin_only(request: Request, next: Next) -> Response {
    if is_safe(request.method()) || !is_cross_origin(request.headers()) {
        return next.run(request).await;
    }
    tracing::warn!(method = %request.method(), path = %request.uri().path(), "refused a cross-origin request");
    ApiError::CrossOrigin.into_response()
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_cross_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    match text("sec-fetch-site") {
        // `none`: typed in the address bar or a bookmark; `same-origin`: our own page.
        Some("same-origin" | "none") => return false,
        Some(_) => return true,
        None => {}
    }
    let Some(origin) = text("origin") else { return false };
    let addressed = text("x-forwarded-host").or_else(|| text("host")).unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    // "null" (sandboxed frames, some redirects) has no host and never matches.
    origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(addressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_only_inline_scripts() {
        let html = "<head><script type=\"module\">\nimport init from '/web.js';\n</script>\
                    <script src=\"/x.js\"></script><script>alert(1)</script></head>";
        let hashes = inline_script_hashes(html);
        assert_eq!(hashes.len(), 2);
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"alert(1)"));
        assert_eq!(hashes[1], format!("sha256-{expected}"));
        let policy = content_security_policy(Some(html));
        let policy = policy.to_str().unwrap_or_default();
        assert!(policy.contains(&hashes[0]) && policy.contains("'wasm-unsafe-eval'"), "{policy}");
        assert!(!policy.contains("unsafe-inline") && !policy.contains("'unsafe-eval'"), "{policy}");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn tells_cross_origin_requests_apart() {
        assert!(!is_cross_origin(&headers(&[])), "no browser headers: a tool, not a page");
        assert!(!is_cross_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(is_cross_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(is_cross_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!is_cross_origin(&headers(&[("origin", "https://chat.example.com"), ("host", "chat.example.com")])));
        assert!(is_cross_origin(&headers(&[("origin", "https://evil.example"), ("host", "chat.example.com")])));
        assert!(!is_cross_origin(&headers(&[
            ("origin", "https://chat-123.aws.databricksapps.com"),
            ("host", "localhost:8000"),
            ("x-forwarded-host", "chat-123.aws.databricksapps.com"),
        ])));
        assert!(is_cross_origin(&headers(&[("origin", "null"), ("host", "chat.example.com")])));
    }
}
