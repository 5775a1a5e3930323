#!/usr/bin/env bash
# Builds what Databricks Apps runs into dist-app/: the server binary, the web app (dist/) and app.yaml. The
# bundle (databricks.yml) uploads that directory as is, so nothing is installed or compiled when the app starts.
# Usage: scripts/package-app.sh     then: databricks bundle deploy -t dev && databricks bundle run chat -t dev
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# Databricks Apps refuses uploaded files over 10 MiB. This script refuses any over 9 MiB, and CI runs it, so a change
# that brings the server near the limit fails its tests rather than a deployment (docs/benchmarks.md).
APPS_MAX_FILE_BYTES=10485760
MAX_FILE_BYTES=9437184
# The Apps runtime is Ubuntu 22.04: the binary may not need a newer glibc than its 2.35.
MAX_GLIBC="2.35"

ensure_rust
"$ROOT/scripts/build-web.sh"
log "building the server (profile dist: release, symbols stripped, without the local model)"
# The in-process local model is for machines with no endpoint; in Apps the serving-endpoint resource is always
# there, and leaving the model runtime out keeps the binary under the Apps file limit.
# Linked without position independence (no dynamic relocations: 0.55 MB less; the executable's own code is not
# placed at a random address, the rest of the process still is) and by gold with identical code folding (0.1 MB
# less); docs/benchmarks.md weighs these. `--target` keeps the flags off build scripts and procedural macros.
host="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="-C relocation-model=static -C link-arg=-fuse-ld=gold -C link-arg=-Wl,--icf=all" \
  cargo build --profile dist --locked -p server --no-default-features --target "$host"

out="$ROOT/dist-app"
rm -rf "$out"
mkdir -p "$out"
cp "target/$host/dist/server" "$out/server"
cp -r dist "$out/dist"
cp app.yaml "$out/app.yaml"

too_big="$(find "$out" -type f -size +"${MAX_FILE_BYTES}"c -printf '%p (%s bytes)\n')"
[ -z "$too_big" ] || die "over 9 MiB, too close to the $APPS_MAX_FILE_BYTES-byte limit of Databricks Apps: $too_big"
if command -v objdump >/dev/null; then
  needed="$(objdump -T "$out/server" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1)"
  [ "$(printf '%s\n%s\n' "$needed" "$MAX_GLIBC" | sort -V | tail -n1)" = "$MAX_GLIBC" ] \
    || die "the server needs glibc $needed, newer than the Apps runtime's $MAX_GLIBC; build on an older distribution"
  log "the server needs glibc $needed (the Apps runtime has $MAX_GLIBC)"
fi
log "dist-app/ is ready ($(du -sh "$out" | cut -f1)): server $(stat -c %s "$out/server") bytes, $(find "$out/dist" -type f | wc -l) web files"
log "deploy: databricks bundle deploy -t dev && databricks bundle run chat -t dev"
