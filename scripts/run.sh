#!/usr/bin/env bash
# Runs the app locally with sensible defaults: a local PostgreSQL (database `databricks_chat`, created on
# first start), the local user dev@localhost, http://127.0.0.1:8000. Builds the web app and the server and
# installs what they need first (the first run compiles Trunk: about 15 minutes).
# Any variable from the README's table can be set in the environment or in a .env file.
# Usage: scripts/run.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
if [ -z "${DATABASE_URL:-}" ] && [ -z "${PGHOST:-}" ]; then ensure_postgres; ensure_postgres_role; fi

"$ROOT/scripts/build-web.sh"
log "building the server (release)"
cargo build --release --locked -p server
log "starting: http://127.0.0.1:${PORT:-8000}"
WEB_DIST_DIR="${WEB_DIST_DIR:-$ROOT/dist}" exec "$ROOT/target/release/server"
