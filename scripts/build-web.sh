#!/usr/bin/env bash
# Builds the web app into dist/ with Trunk (release: opt-level z, wasm-opt -Oz) and precompresses it (brotli,
# gzip), installing the pinned tools first if needed. Usage: scripts/build-web.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
ensure_wasm_target
ensure_trunk
ensure_wasm_bindgen
ensure_binaryen
ensure_brotli

log "building the web app (trunk build --release)"
cargo fetch --locked --target wasm32-unknown-unknown >/dev/null
TRUNK_SKIP_VERSION_CHECK=true trunk build --release

# Precompress once at the highest levels; the server sends these copies as they are.
find dist -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' -o -name '*.html' \) | while read -r file; do
  brotli -f -q 11 -k "$file"
  gzip -f -9 -k "$file"
done
