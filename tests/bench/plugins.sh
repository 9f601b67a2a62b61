#!/usr/bin/env bash
# Plugin costs, in one run on 127.0.0.1:
#   - per-call cost of an auth-policy decision (scope_policy.wasm): a fresh
#     instance per call, and a reused instance (what Cairn does);
#   - abbreviated packument GET req/s of a 100-version package with that
#     policy plugin enabled vs no plugin, two Cairns side by side (wrk,
#     1 thread, 64 connections), alternating runs.
# Works from any directory:   tests/bench/plugins.sh
# Knobs: BENCH_DURATION (s per wrk run, default 10), BENCH_ROUNDS (default 3),
# BENCH_PORT (default 17301, uses 2 ports).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
duration=${BENCH_DURATION:-10}
rounds=${BENCH_ROUNDS:-3}
port=${BENCH_PORT:-17301}
abbrev='application/vnd.npm.install-v1+json'
log() { echo "plugins.sh: $*" >&2; }
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
(cd "$repo" && cargo build --release -p cairn --bin cairn && cargo build --release -p cairn-e2e --bin cairn-bench) >&2
CARGO_TARGET_DIR="$target/wasm-plugins" bash "$repo/plugins/build.sh" "$target/plugins-dist" >&2
cairn="$target/release/cairn" bench="$target/release/cairn-bench" wasm="$target/plugins-dist/scope_policy.wasm"
command -v wrk >/dev/null || { apt-get update -qq >&2 && apt-get install -y wrk >&2; }

work=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
config='{"publishers": {"@acme": ["alice"]}, "private_scopes": ["@secret"]}'

log "per-call cost"
percall=$("$cairn" plugin bench "$wasm" --config "$config" --calls 5000)

start() { # name port plugin?
  mkdir -p "$work/$1"
  {
    echo "data_dir = \"$work/$1\""
    echo "[log]"; echo "level = \"warn\""
    if [ "$3" = yes ]; then
      printf '[[plugins]]\nname = "acme-scopes"\nkind = "auth-policy"\npath = "%s"\n[plugins.config]\npublishers = { "@acme" = ["alice"] }\nprivate_scopes = ["@secret"]\n' "$wasm"
    fi
  } >"$work/$1.toml"
  CAIRN_LISTEN=127.0.0.1:$2 "$cairn" serve --config "$work/$1.toml" 2>"$work/$1.log" & pids="$pids $!"
  for _ in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.1:$2/-/ping" && return; sleep 0.1; done
  echo "cairn $1 did not start" >&2; exit 1
}
start none "$port" no
start policy "$((port + 1))" yes
for p in "$port" "$((port + 1))"; do
  tok=$("$bench" adduser --registry "http://127.0.0.1:$p" --name bench --password bench-password-1)
  "$bench" seed --registry "http://127.0.0.1:$p" --token "$tok" --name bench-pkg --versions 100 >/dev/null
done

cat >"$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("WRK %.1f %.2f %.2f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
LUA
: >"$work/results"
for r in $(seq 1 "$rounds"); do
  for which in none policy; do
    p=$port; [ $which = policy ] && p=$((port + 1))
    wrk -t1 -c64 -d2s -H "Accept: $abbrev" "http://127.0.0.1:$p/bench-pkg" >/dev/null
    line=$(wrk -t1 -c64 -d"${duration}s" -s "$work/report.lua" -H "Accept: $abbrev" "http://127.0.0.1:$p/bench-pkg" | grep '^WRK ')
    log "round $r $which: $line"
    echo "$which $line" >>"$work/results"
  done
done
avg() { awk -v k="$1" -v c="$2" '$1 == k { s += $c; n++ } END { printf "%.1f", s / n }' "$work/results"; }
# Admins come only from the CLI (never from registration).
echo bench-password-1 | "$cairn" user create admin --admin --password-stdin --config "$work/policy.toml" >/dev/null
calls=$(curl -fsS -H "Authorization: Bearer $("$bench" adduser --registry "http://127.0.0.1:$((port + 1))" --name admin --password bench-password-1)" "http://127.0.0.1:$((port + 1))/-/admin/plugins" | sed -n 's/.*"calls":\([0-9]*\).*"p50_ms":\([0-9.]*\).*"p99_ms":\([0-9.]*\).*/calls \1, p50 \2 ms, p99 \3 ms/p')

echo "Machine: $(nproc) cores, $(uname -srm); $(date -u '+%Y-%m-%d %H:%M UTC'); load before: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "Per-call cost of an auth-policy decision (scope_policy.wasm, release build):"
echo
echo '```'
echo "$percall"
echo '```'
echo
echo "| Cairn | packument req/s (mean of $rounds × ${duration}s) | p50 (ms) | p99 (ms) |"
echo "|---|---:|---:|---:|"
echo "| no plugin | $(avg none 3) | $(avg none 4) | $(avg none 5) |"
echo "| scope-policy plugin on every read | $(avg policy 3) | $(avg policy 4) | $(avg policy 5) |"
echo
echo "Ratio with / without: $(awk -v a="$(avg policy 3)" -v b="$(avg none 3)" 'BEGIN { printf "%.2f", a / b }') (target ≥ 0.90). Plugin stats after the run: ${calls:-n/a}."
