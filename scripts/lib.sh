# Shared helpers for the scripts in this directory. Source it; do not run it.
# Every installer checks for the exact pinned version first, so reruns cost nothing.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/.tools/node_modules/.bin:$PATH"

# Pinned tool versions (see docs/toolchain.md for why these and not the latest).
TRUNK_VERSION="0.21.14"
SQLX_CLI_VERSION="0.8.6"
BINARYEN_NPM_VERSION="132"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root for: $*"; fi
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "please install: $* (no apt-get on this machine)"
  if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# The wasm-bindgen library version in Cargo.lock; the CLI must match it exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock"
}

ensure_rust() {
  command -v cargo >/dev/null || die "Rust is not installed: see https://rustup.rs (rustup, then rerun)"
}

ensure_wasm_target() {
  rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
    || { log "adding the wasm32-unknown-unknown target"; rustup target add wasm32-unknown-unknown; }
}

ensure_trunk() {
  if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
    log "installing trunk $TRUNK_VERSION (a one-time build of about 15 minutes on 2 cores)"
    cargo install trunk --version "$TRUNK_VERSION" --locked
  fi
}

ensure_wasm_bindgen() {
  local want; want="$(wasm_bindgen_version)"
  [ -n "$want" ] || die "cannot read the wasm-bindgen version from Cargo.lock"
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $want" ]; then
    log "installing wasm-bindgen-cli $want"
    # No --locked: its lockfile pins a crate version the registry mirror may not carry.
    cargo install wasm-bindgen-cli --version "$want"
  fi
}

ensure_node() {
  command -v npm >/dev/null || { log "installing Node.js"; apt_install nodejs npm; }
}

ensure_binaryen() {
  if [ "$(wasm-opt --version 2>/dev/null | awk '{print $3}')" != "$BINARYEN_NPM_VERSION" ]; then
    ensure_node
    log "installing wasm-opt (npm binaryen@$BINARYEN_NPM_VERSION)"
    npm install --silent --no-audit --no-fund --prefix "$ROOT/.tools" "binaryen@$BINARYEN_NPM_VERSION" >/dev/null
  fi
}

ensure_sqlx_cli() {
  if [ "$(sqlx --version 2>/dev/null)" != "sqlx-cli $SQLX_CLI_VERSION" ]; then
    log "installing sqlx-cli $SQLX_CLI_VERSION"
    cargo install sqlx-cli --version "$SQLX_CLI_VERSION" --no-default-features --features postgres,rustls --locked
  fi
}

ensure_brotli() {
  command -v brotli >/dev/null || { log "installing brotli"; apt_install brotli; }
}

ensure_chromium() {
  [ -x /usr/bin/chromium ] || { log "installing Chromium (for browser tests)"; apt_install chromium; }
}

# HAProxy, the reverse proxy the replica bed puts in front of several server processes (loadtest faults --replicas).
ensure_haproxy() {
  [ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || { log "installing HAProxy (for the replica suite)"; apt_install haproxy; }
}

# Python packages for scripts/check-deploy.py, in a virtualenv under .tools/ (pinned).
PY_TOOLS="$ROOT/.tools/py"
ensure_python_tools() {
  "$PY_TOOLS/bin/python" -c 'import jsonschema, regex, yaml' 2>/dev/null && return
  log "installing Python packages for the deployment checks (jsonschema, PyYAML, regex)"
  command -v python3 >/dev/null || apt_install python3
  python3 -m venv --clear "$PY_TOOLS" 2>/dev/null || { apt_install python3-venv; python3 -m venv --clear "$PY_TOOLS"; }
  "$PY_TOOLS/bin/pip" install -q --disable-pip-version-check jsonschema==4.25.1 PyYAML==6.0.2 regex==2025.9.18
}

# schemathesis (API fuzzing, scripts/fuzz-api.sh) in a virtualenv of its own under .tools/, every package pinned
# in scripts/fuzz/requirements.txt; reinstalled only when that file changes.
FUZZ_TOOLS="$ROOT/.tools/fuzz"
ensure_fuzz_tools() {
  local requirements="$ROOT/scripts/fuzz/requirements.txt"
  cmp -s "$requirements" "$FUZZ_TOOLS/requirements.txt" && [ -x "$FUZZ_TOOLS/bin/schemathesis" ] && return
  log "installing schemathesis ($(grep -m1 '^schemathesis==' "$requirements")) for API fuzzing"
  command -v python3 >/dev/null || apt_install python3
  python3 -m venv --clear "$FUZZ_TOOLS" 2>/dev/null || { apt_install python3-venv; python3 -m venv --clear "$FUZZ_TOOLS"; }
  "$FUZZ_TOOLS/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$FUZZ_TOOLS/requirements.txt"
}

# A local PostgreSQL on 127.0.0.1:5432: start it if installed but down, install it if missing.
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  if ! command -v pg_ctlcluster >/dev/null; then
    log "installing PostgreSQL"
    apt_install postgresql
  fi
  local version; version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
  [ -n "$version" ] || die "PostgreSQL is installed but has no cluster; create one with pg_createcluster"
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
  die "PostgreSQL does not answer on 127.0.0.1:5432"
}

# The run command connects as the OS user over the local socket (libpq's default); make sure such a role
# exists and may create the app's database.
ensure_postgres_role() {
  local user; user="${PGUSER:-$(id -un)}"
  if psql -d postgres -U "$user" -Atqc 'select 1' >/dev/null 2>&1; then return; fi
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    log "creating the PostgreSQL role \"$user\""
    runuser -u postgres -- psql -d postgres -qc "create role \"$user\" login createdb" \
      || die "could not create the PostgreSQL role \"$user\"; set DATABASE_URL instead"
  else
    die "cannot connect to PostgreSQL as \"$user\"; create that role (createuser --createdb $user) or set DATABASE_URL"
  fi
}
