#!/usr/bin/env bash
# Runs every check and test: formatting, lints, sqlx offline data, unit and integration tests (against the
# local PostgreSQL), API fuzzing, the fault suite and end-to-end tests. Installs what it needs first.
# Usage: scripts/test.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
ensure_postgres
ensure_wasm_target
ensure_sqlx_cli

# Tests create one database per test through this role (trust auth on the local server).
export TEST_ADMIN_URL="${TEST_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export SQLX_OFFLINE=true

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (server, shared, tools)"
cargo clippy --all-targets --locked -- -D warnings
log "cargo clippy (the server as shipped: without the local model and the assembled OpenAPI document)"
cargo clippy -p server --no-default-features --locked -- -D warnings
log "cargo clippy (web, wasm32)"
cargo clippy -p web --target wasm32-unknown-unknown --locked -- -D warnings

log "no import circles among the server's or the web client's modules (docs/architecture.md)"
python3 scripts/check-imports.py crates/server/src crates/web/src

log "sqlx offline data is up to date (.sqlx/)"
check_db="chat_sqlx_check"
check_url="${TEST_ADMIN_URL%/*}/$check_db"
DATABASE_URL="$check_url" cargo sqlx database reset -y --source migrations >/dev/null
DATABASE_URL="$check_url" SQLX_OFFLINE=false cargo sqlx prepare --workspace --check -- --all-targets

log "deployment files: databricks.yml against the bundle schema, app.yaml"
ensure_python_tools
"$PY_TOOLS/bin/python" scripts/check-deploy.py

log "cargo test (unit and API tests on PostgreSQL)"
DATABASE_URL="$TEST_ADMIN_URL" cargo test --workspace --exclude web --locked

log "API fuzzing: generated valid and invalid requests from the OpenAPI document (schemathesis, CI-sized)"
FUZZ_MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-60}" scripts/fuzz-api.sh

log "fault suite: the server binary under concurrent turns with injected faults (loadtest faults --profile ci)"
# By default the dev binaries: their dependencies are optimised (Cargo.toml) and already built by the tests above,
# so this step costs about two minutes. A release build from scratch (whole-program LTO) adds 5 to 10 minutes on
# two cores; FAULT_SUITE_RELEASE=1 runs the suite on the release binaries instead.
if [ "${FAULT_SUITE_RELEASE:-0}" = 1 ]; then
  fault_bins=target/release
  cargo build --release --locked -p server -p loadtest
else
  fault_bins=target/debug
  cargo build --locked -p server -p loadtest
fi
"$fault_bins/loadtest" faults --profile ci --server-bin "$fault_bins/server" --admin-url "$TEST_ADMIN_URL"

log "replica suite: the same scenarios on three server processes behind HAProxy, and a rolling restart (--replicas 3)"
ensure_haproxy
"$fault_bins/loadtest" faults --profile ci --replicas 3 --server-bin "$fault_bins/server" --admin-url "$TEST_ADMIN_URL"

log "web app: unit tests of its logic (native) and the release build"
cargo test --locked -p web
"$ROOT/scripts/build-web.sh"

log "the Databricks Apps artifact: every file under 9 MiB (scripts/package-app.sh)"
"$ROOT/scripts/package-app.sh"

log "platform checks on that binary: start-up, HTTP/2 cleartext on every operation, SIGTERM under load (loadtest platform)"
"$fault_bins/loadtest" platform --server-bin "$ROOT/dist-app/server" --admin-url "$TEST_ADMIN_URL"

log "end-to-end: the Vercel AI SDK's transports and a real browser against the real server"
ensure_node
ensure_chromium
cargo build --locked -p server -p fake-databricks
# The run command's own build, which the out-of-the-box browser test starts through scripts/run.sh.
cargo build --release --locked -p server
(cd e2e && npm ci --silent --no-audit --no-fund && npm test)

log "all checks passed"
