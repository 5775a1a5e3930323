//! Rebuilds the server when a migration changes, because `sqlx::migrate!` embeds them at compile time; and writes
//! the checked-in OpenAPI document (`openapi.json`, indented for review) without its layout, as the build without
//! the `openapi` feature serves it (75 KB instead of 130 KB in a binary that must stay under the Apps file limit).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
    println!("cargo:rerun-if-changed=openapi.json");
    let document = std::fs::read_to_string("openapi.json").unwrap_or_default();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("openapi.min.json");
    if let Err(error) = std::fs::write(&out, without_layout(&document)) {
        println!("cargo:warning=could not write {}: {error}", out.display());
    }
}

/// JSON text without the whitespace between its tokens (strings are kept as they are).
fn without_layout(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}
