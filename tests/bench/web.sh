#!/usr/bin/env bash
# The web UI's pages under load, on 127.0.0.1: one Cairn (release build, fresh
# temp data dir: SQLite + local blobs) with a package of 500 versions seeded by
# `cairn-bench seed` (realistic manifests and a readme in every version), then
# wrk against:
#   - the abbreviated packument (JSON, a cache hit: what the machine's load
#     alone does to a cheap answer, for reference),
#   - the package page of the latest version (readme from the cached packument),
#   - the package page of an old version (its readme read from the database),
#   - the home page, and a search results page,
# in interleaved rounds; a markdown table goes to stdout (progress to stderr).
#   tests/bench/web.sh
# Knobs (environment): BENCH_ROUNDS (default 3), BENCH_DURATION (s per round
# and target, default 5), BENCH_WARMUP (s, default 2), BENCH_CONNECTIONS
# (default 8), BENCH_VERSIONS (default 500), BENCH_PORT (default 17231),
# BENCH_CAIRN / BENCH_TOOL (use these binaries instead of building the release
# `cairn` and `cairn-bench`). The whole run is stopped after 10 minutes.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
duration=${BENCH_DURATION:-5}
rounds=${BENCH_ROUNDS:-3}
warmup=${BENCH_WARMUP:-2}
conns=${BENCH_CONNECTIONS:-8}
versions=${BENCH_VERSIONS:-500}
port=${BENCH_PORT:-17231}
pkg=web-bench
log() { echo "web.sh: $*" >&2; }

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
if [ -z "${BENCH_CAIRN:-}" ]; then (cd "$repo" && cargo build --release -p cairn --bin cairn) >&2; fi
if [ -z "${BENCH_TOOL:-}" ]; then (cd "$repo" && cargo build --release -p cairn-e2e --bin cairn-bench) >&2; fi
cairn=${BENCH_CAIRN:-$target/release/cairn}
bench=${BENCH_TOOL:-$target/release/cairn-bench}
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq >&2 && apt-get install -y wrk >&2
fi

work=$(mktemp -d)
cpid="" watchdog=""
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -s "$work/cairn.log" ]; then tail -n 20 "$work/cairn.log" >&2; fi
  [ -n "$cpid" ] && kill -TERM "$cpid" 2>/dev/null || true
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
main=$$
( trap 'kill $sp 2>/dev/null; exit 0' TERM; sleep 600 & sp=$!; wait $sp
  echo "web.sh: 10 minute limit reached, stopping" >&2; kill -TERM $main ) 2>/dev/null & watchdog=$!

if curl -s -o /dev/null "http://127.0.0.1:$port/"; then echo "port $port is already in use" >&2; exit 1; fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$work/cairn"
cat >"$work/cairn.toml" <<TOML
data_dir = "$work/cairn"
public_url = "http://127.0.0.1:$port"

[auth]
allow_public_registration = true

[log]
level = "warn"
TOML
CAIRN_LISTEN=127.0.0.1:$port "$cairn" serve --config "$work/cairn.toml" 2>"$work/cairn.log" & cpid=$!
for _ in $(seq 1 600); do curl -fs -o /dev/null "http://127.0.0.1:$port/-/ping" && break; sleep 0.1; done
C=http://127.0.0.1:$port
token=$("$bench" adduser --registry "$C" --name bench --password bench-password-1)
log "seeding $pkg ($versions versions)"
timeout 300 "$bench" seed --registry "$C" --token "$token" --name "$pkg" --versions "$versions" >&2

html='Accept: text/html'
page="$C/-/web/package/$pkg"
bytes=$(curl -fsS -H "$html" "$page" | wc -c)
old=$(curl -fsS "$C/$pkg" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sorted(d["time"].items(), key=lambda kv: kv[1])[2][0])')
curl -fsS -o /dev/null -H "$html" "$page?version=$old"
curl -fsS -o /dev/null -H "$html" "$C/-/web/search?q=bench"
log "package page: $bytes B; old version $old"

cat >"$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
LUA
abbrev='Accept: application/vnd.npm.install-v1+json'
targets=(
  "abbreviated packument, for reference (JSON from the cache)|$C/$pkg|$abbrev"
  "package page (latest)|$page"
  "package page (version $old)|$page?version=$old"
  "home page|$C/"
  "search page|$C/-/web/search?q=bench"
)
: >"$work/results"
run() { # seconds target [round]; a target is key|url[|header], the header defaulting to Accept: text/html
  local secs=$1 key url header round=${3:-}
  IFS='|' read -r key url header <<<"$2"
  header=${header:-$html}
  if [ -z "$round" ]; then wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s -H "$header" "$url" >/dev/null; return; fi
  echo "$key|round=$round $(wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s -s "$work/report.lua" -H "$header" "$url" | grep '^WRK ')" >>"$work/results"
}
for t in "${targets[@]}"; do run "$warmup" "$t"; done
for round in $(seq 1 "$rounds"); do
  log "round $round of $rounds"
  for t in "${targets[@]}"; do run "$duration" "$t" "$round"; done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
val() { sed -n "s/.* $2=\([^ ]*\).*/\1/p"; }
echo "Machine: $(nproc) cores, $(uname -sr) $(uname -m); $(date -u '+%Y-%m-%d %H:%M') UTC."
echo "Load average before: $load_before; after: $load_after."
echo "wrk: 1 thread, $conns connections, $rounds interleaved rounds of ${duration}s per target after ${warmup}s warm-up; figures are medians over the rounds."
echo "$pkg: $versions versions; its package page is $bytes bytes."
echo
echo "| page | req/s | p50 ms | p99 ms | errors |"
echo "|---|---:|---:|---:|---:|"
for t in "${targets[@]}"; do
  key=${t%%|*}
  lines=$(grep -F "$key|round=" "$work/results")
  errs=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^(errors|non2xx)=/) { split($i, kv, "="); n += kv[2] } } END { print n + 0 }' <<<"$lines")
  printf '| %s | %s | %s | %s | %s |\n' "$key" "$(val x rps <<<"$lines" | median)" "$(val x p50_ms <<<"$lines" | median)" "$(val x p99_ms <<<"$lines" | median)" "$errs"
done
