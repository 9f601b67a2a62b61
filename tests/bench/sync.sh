#!/usr/bin/env bash
# Sync and proxy benchmarks, in one run on 127.0.0.1, against a Cairn upstream:
#   1. sync throughput: `cairn sync` of 5 packages × 100 versions from the
#      upstream into a fresh Cairn; versions per second and the syncing
#      process's peak RSS;
#   2. a cold `npm install` of a 100-package dependency tree that exists only
#      upstream, through Cairn in proxy mode and through Verdaccio 6.8 with the
#      same upstream as its uplink (fresh caches each run; 3 runs each).
# Works from any directory:   tests/bench/sync.sh
# Knobs: BENCH_PORT (default 17401, uses 4 ports), BENCH_RUNS (default 3).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
port=${BENCH_PORT:-17401}
runs=${BENCH_RUNS:-3}
peer="$repo/../shared/bench/verdaccio.sh"
log() { echo "sync.sh: $*" >&2; }
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
(cd "$repo" && cargo build --release -p cairn --bin cairn && cargo build --release -p cairn-e2e --bin cairn-bench) >&2
cairn="$target/release/cairn" bench="$target/release/cairn-bench"

work=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done; "$peer" stop "$work/v" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
wait_ping() { for _ in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.1:$1/-/ping" && return; sleep 0.1; done; echo "nothing on $1" >&2; exit 1; }
serve() { # dir port [toml]
  mkdir -p "$work/$1"
  printf 'data_dir = "%s"\n%s\n[log]\nlevel = "warn"\n' "$work/$1" "${3:-}" >"$work/$1.toml"
  CAIRN_LISTEN=127.0.0.1:$2 "$cairn" serve --config "$work/$1.toml" 2>"$work/$1.log" & pids="$pids $!"
  wait_ping "$2"
}
U=http://127.0.0.1:$port
serve up "$port"
utok=$("$bench" adduser --registry "$U" --name bench --password bench-password-1)
log "seeding the upstream: 5 packages x 100 versions, and a 100-package tree"
for i in 1 2 3 4 5; do "$bench" seed --registry "$U" --token "$utok" --name "sync-bench-$i" --versions 100 >/dev/null; done
python3 "$repo/tests/bench/seed_tree.py" "$U" "$utok" tree 100
bytes=$(du -sb "$work/up/blobs/tarballs" | cut -f1)

log "sync throughput"
mkdir -p "$work/down"
printf 'data_dir = "%s"\nsync_workers = 2\n[[registries]]\nname = "up"\nhost = "%s"\ntype = "cnpm"\ndefault = true\n[log]\nlevel = "warn"\n' "$work/down" "$U" >"$work/down.toml"
start=$(date +%s%N)
command -v /usr/bin/time >/dev/null || { apt-get update -qq >&2 && apt-get install -y time >&2; }
/usr/bin/time -f '%M' -o "$work/rss" "$cairn" sync --nodeps --config "$work/down.toml" sync-bench-1 sync-bench-2 sync-bench-3 sync-bench-4 sync-bench-5 2>"$work/sync.err" || { cat "$work/sync.err" >&2; exit 1; }
ms=$(( ($(date +%s%N) - start) / 1000000 ))
versions=$(for i in 1 2 3 4 5; do curl -fsS "$U/sync-bench-$i" >/dev/null; done; echo 500)
rss_kb=$(cat "$work/rss")

log "cold npm install of tree-0 (100 packages) through Cairn (proxy) and Verdaccio (uplink)"
install() { # registry-url -> ms
  local d; d=$(mktemp -d -p "$work")
  printf 'registry=%s/\n' "$1" >"$d/npmrc"
  echo '{"name":"bench-app","version":"1.0.0"}' >"$d/package.json"
  local t0; t0=$(date +%s%N)
  (cd "$d" && npm_config_userconfig="$d/npmrc" npm_config_cache="$d/cache" npm install --no-audit --no-fund tree-0 >/dev/null 2>"$d/err") || { cat "$d/err" >&2; exit 1; }
  local n; n=$(ls "$d/node_modules" | grep -c '^tree-')
  [ "$n" = 100 ] || { echo "installed $n packages, expected 100" >&2; exit 1; }
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
: >"$work/installs"
for r in $(seq 1 "$runs"); do
  rm -rf "$work/proxy" "$work/v"
  serve proxy $((port + 1)) "sync_mode = \"proxy\"
[[registries]]
name = \"up\"
host = \"$U\"
type = \"cnpm\"
default = true"
  c=$(install "http://127.0.0.1:$((port + 1))")
  kill -TERM "${pids##* }"; wait "${pids##* }" 2>/dev/null || true; pids="${pids% *}"
  "$peer" start $((port + 2)) "$work/v" "$U/" >/dev/null
  v=$(install "http://127.0.0.1:$((port + 2))")
  "$peer" stop "$work/v"
  log "run $r: cairn ${c} ms, verdaccio ${v} ms"
  echo "$c $v" >>"$work/installs"
done
mean() { awk -v c="$1" '{ s += $c; n++ } END { printf "%.0f", s / n }' "$work/installs"; }

echo "Machine: $(nproc) cores, $(uname -srm); $(date -u '+%Y-%m-%d %H:%M UTC'); load: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| sync (cnpm upstream on loopback, \`cairn sync --nodeps\`, one task at a time) | value |"
echo "|---|---:|"
echo "| versions synced | $versions ($bytes bytes of tarballs) |"
echo "| wall time | ${ms} ms |"
echo "| versions per second | $(awk -v v="$versions" -v m="$ms" 'BEGIN { printf "%.1f", v / (m / 1000) }') |"
echo "| peak RSS of the syncing process | $(awk -v k="$rss_kb" 'BEGIN { printf "%.1f MiB", k / 1024 }') |"
echo
echo "| cold \`npm install tree-0\` (100 packages, upstream-only) | mean of $runs (ms) | runs (ms) |"
echo "|---|---:|---|"
echo "| Cairn, proxy mode | $(mean 1) | $(cut -d' ' -f1 "$work/installs" | paste -sd' ') |"
echo "| Verdaccio 6.8, uplink | $(mean 2) | $(cut -d' ' -f2 "$work/installs" | paste -sd' ') |"
