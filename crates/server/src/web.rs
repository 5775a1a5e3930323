//! Serving the web app: the files Trunk built (`dist/`), with the SPA fallback for deep links such as
//! `/chat/{id}`, long-lived caching for content-hashed files, and no caching for `index.html`.
//!
//! The files are read from a directory next to the binary (or `WEB_DIST_DIR`), so a deployment is the binary
//! plus that directory, with no build step at start.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::services::{ServeDir, ServeFile};

use crate::state::AppState;

/// Finds the built web app: `WEB_DIST_DIR`, else `dist` next to the executable, else `dist` in the working
/// directory. `None` when there is no `index.html` in any of them (the API still works).
pub fn locate_dist(configured: Option<&Path>) -> Option<PathBuf> {
    let beside_binary = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("dist")));
    configured
        .map(Path::to_path_buf)
        .into_iter()
        .chain(beside_binary)
        .chain(std::iter::once(PathBuf::from("dist")))
        .find(|dir| dir.join("index.html").is_file())
}

/// Routes for the web app's files; everything that is not `/api` falls through to here.
pub fn router(dist: &Path) -> Router<AppState> {
    let index = dist.join("index.html");
    // Paths without a file extension are app routes (deep links): answer with index.html. A missing file with an
    // extension is a real 404, not the app.
    // The build stores brotli and gzip copies of each file (maximum compression, done once): served as they
    // are when the browser accepts them, instead of compressing on every request at a lower level.
    let files = ServeDir::new(dist)
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(true)
        .fallback(ServeFile::new(&index).precompressed_br().precompressed_gzip());
    Router::new().fallback_service(files).layer(axum::middleware::from_fn(cache_and_not_found))
}

async fn cache_and_not_found(request: Request<Body>, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let last = path.rsplit('/').next().unwrap_or_default();
    let is_file = last.contains('.');
    let mut response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if is_file && is_html && !last.ends_with(".html") {
        // The fallback answered a missing asset with index.html.
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    let cache = if is_content_hashed(last) { "public, max-age=31536000, immutable" } else { "no-cache" };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// Trunk names built files `<name>-<16 hex digits>[_bg].<ext>`; their content never changes under that name.
fn is_content_hashed(file: &str) -> bool {
    let stem = file.split('.').next().unwrap_or_default().trim_end_matches("_bg");
    stem.rsplit_once('-').is_some_and(|(_, hash)| hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_trunk_hashed_names() {
        assert!(is_content_hashed("web-3f2a9c1b7d4e5f60_bg.wasm"));
        assert!(is_content_hashed("web-3f2a9c1b7d4e5f60.js"));
        assert!(is_content_hashed("app-0123456789abcdef.css"));
        assert!(!is_content_hashed("index.html"));
        assert!(!is_content_hashed("favicon.svg"));
        assert!(!is_content_hashed("web-xyz.js"));
    }
}
