#!/usr/bin/env bash
# Time from process start to the first answer of /-/ping, and idle RSS one
# second after that answer, for Cairn on the embedded default (fresh SQLite +
# local files, no config file) and, side by side in the same run, Verdaccio 6.8
# (started by ../shared/bench/verdaccio.sh next to the repository). Everything
# listens on 127.0.0.1. Works from any directory:
#   tests/bench/startup.sh [RUNS]        (default 5 runs; prints a markdown table)
# Ports: CAIRN_BENCH_PORT (default 17101) and CAIRN_BENCH_PORT+1.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=${1:-5}
port=${CAIRN_BENCH_PORT:-17101}
vport=$((port + 1))
peer="$repo/../shared/bench/verdaccio.sh"
[ -x "$peer" ] || { echo "peer script $peer not found" >&2; exit 1; }
for tool in curl awk; do command -v $tool >/dev/null || { echo "$tool is needed" >&2; exit 1; }; done

# A relative CARGO_TARGET_DIR is relative to the repository, where cargo runs.
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
(cd "$repo" && cargo build --release -p cairn --bin cairn) >&2
bin="$target/release/cairn"

work=$(mktemp -d)
cpid="" vpid=""
cleanup() {
  for p in $cpid $vpid; do kill -TERM "$p" 2>/dev/null || true; done
  "$peer" stop "$work/v" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for p in $port $vport; do
  if curl -s -o /dev/null "http://127.0.0.1:$p/"; then echo "port $p is already in use" >&2; exit 1; fi
done

now_ms() { date +%s%3N; }
wait_ping() { # port start_ms -> ms from start until /-/ping answers (gives up after ~60 s)
  local port=$1 start=$2
  for _ in $(seq 1 6000); do
    if curl -fs -o /dev/null "http://127.0.0.1:$port/-/ping"; then echo $(( $(now_ms) - start )); return; fi
    sleep 0.005
  done
  echo "no answer on $port" >&2; return 1
}
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# Install Verdaccio and write its config once (not timed); the timed runs start
# the same command the peer script starts, so the process timed is node itself.
"$peer" start "$vport" "$work/v" >/dev/null
"$peer" stop "$work/v"
sleep 1
vhome=${VERDACCIO_HOME:-/tmp/cairn-verdaccio-6.8}

echo "Machine: $(nproc) cores, $(uname -srm); $(date -u '+%Y-%m-%d %H:%M UTC'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
echo "First answer: polled with curl every ~5 ms (resolution about 10 ms). Idle RSS: VmRSS 1 s after the first answer."
echo
echo "| run | cairn first answer (ms) | cairn idle RSS (MiB) | verdaccio first answer (ms) | verdaccio idle RSS (MiB) |"
echo "|---|---|---|---|---|"
: >"$work/results"
for i in $(seq 1 "$runs"); do
  mkdir -p "$work/c$i"
  start=$(now_ms)
  (cd "$work/c$i" && CAIRN_LISTEN=127.0.0.1:$port exec "$bin" serve 2>"$work/c$i.log") & cpid=$!
  c_ms=$(wait_ping "$port" "$start"); sleep 1; c_rss=$(rss_mib "$cpid")
  kill -TERM "$cpid"; wait "$cpid" 2>/dev/null || true; cpid=""

  rm -rf "$work/v/storage"
  start=$(now_ms)
  (cd "$vhome" && exec ./node_modules/.bin/verdaccio --config "$work/v/config.yaml" >"$work/v$i.log" 2>&1) & vpid=$!
  v_ms=$(wait_ping "$vport" "$start"); sleep 1; v_rss=$(rss_mib "$vpid")
  kill -TERM "$vpid"; wait "$vpid" 2>/dev/null || true; vpid=""

  echo "| $i | $c_ms | $c_rss | $v_ms | $v_rss |"
  echo "$c_ms $c_rss $v_ms $v_rss" >>"$work/results"
done
col() { awk -v c="$1" '{print $c}' "$work/results" | median; }
echo "| **median** | **$(col 1)** | **$(col 2)** | **$(col 3)** | **$(col 4)** |"
