#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document (GET /api/openapi.json) with schemathesis: generated valid
# and invalid requests for every operation, against the real server binary on a fresh PostgreSQL database with the
# fake model server behind it. Fails on any 5xx, an error that is not JSON in the error envelope, a response that
# does not match the document (status, content type, headers, body schema) or a server that stops or panics.
#
# Usage: scripts/fuzz-api.sh [--max-examples N] [--seed N]
#   --max-examples N  generated cases per operation in the fuzzing phase (default 300, or $FUZZ_MAX_EXAMPLES);
#                     the examples and coverage phases add their own cases on top
#   --seed N          reproduce an earlier run (schemathesis prints its seed)
# Reports, logs and counts go to target/fuzz/.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

max_examples="${FUZZ_MAX_EXAMPLES:-300}"
seed_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --max-examples) max_examples="${2:?--max-examples needs a number}"; shift 2 ;;
    --seed) seed_args=(--seed "${2:?--seed needs a number}"); shift 2 ;;
    *) die "unknown argument $1 (usage: scripts/fuzz-api.sh [--max-examples N] [--seed N])" ;;
  esac
done
[[ "$max_examples" =~ ^[1-9][0-9]*$ ]] || die "--max-examples must be a positive number, got $max_examples"

ensure_rust
ensure_postgres
ensure_fuzz_tools

admin_url="${TEST_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
work="$ROOT/target/fuzz"
fuzz_user="fuzz@example.com"
limits_user="limits@example.com"
# The limits pass sends more turns than TURNS_PER_MINUTE's default (60) allows in a minute.
rate_examples=100

log "building the server and the fake model server (debug)"
cargo build --locked -q -p server -p fake-databricks

rm -rf "$work" && mkdir -p "$work"
database="chat_fuzz_$(date +%s)_$RANDOM"
database_url="${admin_url%/*}/$database"
fake_pid=""
server_pid=""

stop_process() {
  local pid="$1"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop_process "$server_pid"
  stop_process "$fake_pid"
  psql "$admin_url" -qc "drop database if exists $database with (force)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

psql "$admin_url" -v ON_ERROR_STOP=1 -qc "create database $database" >/dev/null
fake_port="$(free_port)"
"$ROOT/target/debug/fake-databricks" --port "$fake_port" --token-delay-ms 0 --no-record 2>"$work/fake.log" &
fake_pid=$!
fake_url="http://127.0.0.1:$fake_port"
for _ in $(seq 1 100); do curl -fs -o /dev/null "$fake_url/__fake/requests" && break; sleep 0.1; done
curl -fs -o /dev/null "$fake_url/__fake/requests" || die "the fake model server did not start (see $work/fake.log)"

# Starts the server with a clean environment plus the given variables; sets server_url and server_pid.
start_server() {
  local name="$1"; shift
  local server_log="$work/server-$name.log"
  env -i PATH="$PATH" DATABASE_URL="$database_url" HOST=127.0.0.1 PORT=0 LOG_FORMAT=json LOG_LEVEL=info \
    TRUST_FORWARDED_HEADERS=true LOCAL_MODEL=off LLM_BASE_URL="$fake_url/serving-endpoints" \
    DATABRICKS_SERVING_ENDPOINT=fake-model CHAT_MODELS="fake-model,other-model=Other Model" \
    TITLE_GENERATION=false "$@" "$ROOT/target/debug/server" >"$server_log" 2>&1 &
  server_pid=$!
  local address=""
  for _ in $(seq 1 300); do
    address="$(grep -o '"address":"[^"]*"' "$server_log" 2>/dev/null | head -n1 | cut -d'"' -f4 || true)"
    [ -n "$address" ] && break
    kill -0 "$server_pid" 2>/dev/null || die "the server exited at start (see $server_log)"
    sleep 0.1
  done
  [ -n "$address" ] || die "the server did not report its address (see $server_log)"
  server_url="http://$address"
}

# Fails when the server died or panicked during a pass; stops it otherwise.
stop_server() {
  local name="$1" server_log="$work/server-$1.log"
  kill -0 "$server_pid" 2>/dev/null || die "the server crashed during the $name pass (see $server_log)"
  curl -fs -o /dev/null "$server_url/api/health" || die "the server is unhealthy after the $name pass"
  stop_process "$server_pid"
  server_pid=""
  if grep -q 'panicked' "$server_log"; then
    grep 'panicked' "$server_log" | head -n5 >&2
    die "the server panicked during the $name pass (see $server_log)"
  fi
  local errors; errors="$(grep -c '"level":"ERROR"' "$server_log" || true)"
  log "$name pass: the server logged $errors errors"
}

# Runs schemathesis against the running server; extra arguments narrow or tune the run. Every answer here takes
# milliseconds (the fake model answers at once): 10 s to the response headers is a hang, and a stream still open
# after the 20 s request timeout is one that does not end. One worker: with two, Python 3.11's parser races between
# threads (hypothesis describes its lambdas with `ast.parse`) and fails with "AST constructor recursion depth
# mismatch"; the server is the bottleneck on two cores anyway.
run_schemathesis() {
  local name="$1" user="$2"; shift 2
  log "schemathesis: $name pass"
  # From target/fuzz, where schemathesis keeps its cache.
  (cd "$work" && FUZZ_PASS="$name" FUZZ_COUNTS_FILE="$work/counts.jsonl" FUZZ_SEED_FILE="$work/seed.json" \
    SCHEMATHESIS_HOOKS="$ROOT/scripts/fuzz/hooks.py" \
    "$FUZZ_TOOLS/bin/schemathesis" --config-file "$ROOT/scripts/fuzz/schemathesis.toml" \
    run "$server_url/api/openapi.json" \
    --header "x-forwarded-email: $user" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,error_envelope,event_stream_ends \
    --max-response-time 10 --request-timeout 20 --workers 1 --no-color \
    --report junit --report-junit-path "$work/$name.junit.xml" \
    "${seed_args[@]}" "$@")
}

status=0
start=$SECONDS

# Pass 1: every operation, limits far out of reach so that generated turns reach the handlers.
start_server main TURNS_PER_MINUTE=1000000 MAX_CONCURRENT_TURNS_PER_USER=1000
"$FUZZ_TOOLS/bin/python" scripts/fuzz/support.py seed "$server_url" "$fuzz_user" "$work/seed.json"
run_schemathesis main "$fuzz_user" --max-examples "$max_examples" || status=1
stop_server main

# Pass 2: the default per-user limits; turns beyond them must be 429 in the envelope with Retry-After.
start_server limits
run_schemathesis limits "$limits_user" --include-path-regex '^/api/chat$' --mode positive \
  --phases examples,fuzzing --max-examples "$rate_examples" || status=1
stop_server limits
"$FUZZ_TOOLS/bin/python" scripts/fuzz/support.py expect-429 "$work/counts.jsonl" limits || status=1

log "requests per operation (reports in ${work#"$ROOT"/})"
"$FUZZ_TOOLS/bin/python" scripts/fuzz/support.py summary "$work/counts.jsonl" "$work"/*.junit.xml || status=1
log "fuzzing took $((SECONDS - start)) s"
[ "$status" = 0 ] || die "API fuzzing found failures (details above and in ${work#"$ROOT"/})"
log "API fuzzing passed"
