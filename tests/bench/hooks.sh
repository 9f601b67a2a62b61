#!/usr/bin/env bash
# Webhook benchmark (issue 10), in ONE run on 127.0.0.1: one Cairn (release
# build, fresh temp data dir: SQLite + local blobs, default [hooks] settings
# but for `allow_private_targets = ["127.0.0.0/8"]`) and `cairn-bench receiver`,
# a bare hyper server that answers every delivery 200 and timestamps it.
#   (a) publish throughput, 8 clients (`cairn-bench publish`, as registry.sh
#       measures it): a user with no hook against a user with 10 owner hooks
#       (every publish matches all 10), alternating in rounds on the same
#       server; after each hooked run the script waits until all its
#       deliveries arrived, so no run pays for the one before it.
#   (b) sustained delivery rate: with hooks disabled, publishes fill the
#       outbox (N events x 10 hooks); Cairn restarts with hooks enabled and
#       the receiver's arrivals give the rate (count over first-to-last).
#   (c) publish-to-delivery latency, idle queue: `cairn-bench hook-latency`.
# A markdown table is printed on stdout (progress goes to stderr).
#   tests/bench/hooks.sh        (from any directory; CARGO_TARGET_DIR is honoured)
# Knobs (environment): BENCH_ROUNDS (default 3), BENCH_PUBLISHES (per run,
# default 400), BENCH_QUEUED (events queued for (b), default 500: 5,000
# deliveries), BENCH_LATENCY_COUNT (default 200), BENCH_CAIRN_HOOKS (extra
# [hooks] keys, e.g. 'workers = 4'), BENCH_PORT (default 17301, uses 3 ports),
# BENCH_CAIRN_BIN (a cairn binary to measure instead of building one, e.g. a
# copy of an older build for a before/after comparison).
# The whole run is stopped after 10 minutes.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=${BENCH_ROUNDS:-3}
publishes=${BENCH_PUBLISHES:-400}
queued=${BENCH_QUEUED:-500}
latency_count=${BENCH_LATENCY_COUNT:-200}
cport=${BENCH_PORT:-17301}
rport=$((cport + 1))
lport=$((cport + 2))
hooks=10
log() { echo "hooks.sh: $*" >&2; }

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
# Two builds, as in registry.sh: the cairn binary is the one users build.
if [ -z "${BENCH_CAIRN_BIN:-}" ]; then (cd "$repo" && cargo build --release -p cairn --bin cairn) >&2; fi
(cd "$repo" && cargo build --release -p cairn-e2e --bin cairn-bench) >&2
cairn=${BENCH_CAIRN_BIN:-$target/release/cairn}
bench="$target/release/cairn-bench"

work=$(mktemp -d)
cpid="" rpid="" watchdog=""
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -s "$work/cairn.log" ]; then
    echo "hooks.sh: failed ($rc); the end of Cairn's log:" >&2
    tail -n 20 "$work/cairn.log" >&2
  fi
  for p in $cpid $rpid; do kill -TERM "$p" 2>/dev/null || true; done
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
main=$$
( trap 'kill $sp 2>/dev/null; exit 0' TERM; sleep 600 & sp=$!; wait $sp
  echo "hooks.sh: 10 minute limit reached, stopping" >&2; kill -TERM $main ) 2>/dev/null & watchdog=$!

for p in $cport $rport $lport; do
  if curl -s -o /dev/null "http://127.0.0.1:$p/"; then echo "port $p is already in use" >&2; exit 1; fi
done
C=http://127.0.0.1:$cport R=http://127.0.0.1:$rport
val() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; } # key=value from a result line
now_ms() { date +%s%3N; }

start_cairn() { # enabled
  cat >"$work/cairn.toml" <<TOML
data_dir = "$work/cairn"
public_url = "$C"

[auth]
allow_public_registration = true

[log]
level = "warn"

[hooks]
enabled = $1
allow_private_targets = ["127.0.0.0/8"]
${BENCH_CAIRN_HOOKS:-}
TOML
  CAIRN_LISTEN=127.0.0.1:$cport "$cairn" serve --config "$work/cairn.toml" 2>>"$work/cairn.log" & cpid=$!
  for _ in $(seq 1 600); do curl -fs -o /dev/null "$C/-/ping" && return; sleep 0.1; done
  echo "Cairn does not answer on port $cport" >&2; return 1
}
stop_cairn() { kill -TERM "$cpid"; wait "$cpid" || true; cpid=""; }
stats() { curl -fsS "$R/-/stats"; }
reset() { curl -fsS -X POST -o /dev/null "$R/-/reset"; }
wait_count() { # n seconds
  local deadline=$(($(date +%s) + $2)) s
  while :; do
    s=$(stats)
    [ "$(val "$s" count)" -ge "$1" ] && { echo "$s"; return; }
    [ "$(date +%s)" -ge "$deadline" ] && { echo "only $(val "$s" count) of $1 deliveries arrived within $2 s" >&2; return 1; }
    sleep 0.05
  done
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $load_before"
mkdir -p "$work/cairn"
"$bench" receiver --port "$rport" 2>"$work/receiver.log" & rpid=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "$R/-/stats" && break; sleep 0.05; done
start_cairn true
ptok=$("$bench" adduser --registry "$C" --name plain --password bench-password-1)
htok=$("$bench" adduser --registry "$C" --name hooked --password bench-password-1)
for i in $(seq 1 $hooks); do
  curl -fsS -o /dev/null -H "Authorization: Bearer $htok" -H 'Content-Type: application/json' \
    -d "{\"type\":\"owner\",\"name\":\"hooked\",\"endpoint\":\"$R/hook/$i\",\"secret\":\"bench-secret-$i\"}" "$C/-/npm/v1/hooks/hook"
done

# --- (a) publishes without and with 10 matching hooks, alternating.
: >"$work/publish"
for round in $(seq 1 "$rounds"); do
  log "(a) round $round of $rounds: $publishes publishes without hooks, then with $hooks hooks"
  line=$(timeout 240 "$bench" publish --registry "$C" --token "$ptok" --clients 8 --total "$publishes" --prefix "plain$round")
  echo "none round=$round $line" >>"$work/publish"
  reset
  line=$(timeout 240 "$bench" publish --registry "$C" --token "$htok" --clients 8 --total "$publishes" --prefix "hooked$round")
  done_ms=$(now_ms)
  s=$(wait_count $((publishes * hooks)) 180)
  drain=$(awk -v l="$(val "$s" last_ms)" -v d="$done_ms" 'BEGIN { printf "%.0f", l - d }')
  echo "hooks round=$round $line drain_ms=$drain delivered=$(val "$s" count)" >>"$work/publish"
done

# --- (b) a queue of queued x 10 deliveries, sent by a freshly started process.
log "(b) queueing $queued events x $hooks hooks with hooks disabled"
stop_cairn
start_cairn false
timeout 240 "$bench" publish --registry "$C" --token "$htok" --clients 8 --total "$queued" --prefix queued >/dev/null
stop_cairn
reset
started=$(now_ms)
start_cairn true
s=$(wait_count $((queued * hooks)) 300)
rate=$(awk -v n="$(val "$s" count)" -v f="$(val "$s" first_ms)" -v l="$(val "$s" last_ms)" 'BEGIN { printf "%.0f", (n - 1) / ((l - f) / 1000) }')
whole=$(awk -v n="$(val "$s" count)" -v s="$started" -v l="$(val "$s" last_ms)" 'BEGIN { printf "%.0f", n / ((l - s) / 1000) }')
span=$(awk -v f="$(val "$s" first_ms)" -v l="$(val "$s" last_ms)" 'BEGIN { printf "%.2f", (l - f) / 1000 }')
echo "rate deliveries=$(val "$s" count) span_s=$span per_s=$rate per_s_from_start=$whole" >"$work/rate"

# --- (c) latency with an idle queue.
log "(c) $latency_count publishes one at a time, each delivered before the next"
ltok=$("$bench" adduser --registry "$C" --name latency --password bench-password-1)
timeout 240 "$bench" hook-latency --registry "$C" --token "$ltok" --port "$lport" --name latency-pkg --count "$latency_count" >"$work/latency"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Report.
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { grep "^$1 " "$work/publish" | while read -r l; do val "$l" "$2"; done; }
range() { col "$1" "$2" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%s–%s", lo, hi}'; }
echo "Machine: $(nproc) cores, $(uname -srm); $(date -u '+%Y-%m-%d %H:%M UTC')."
echo "Load average before: $load_before; after: $load_after."
[ -n "${BENCH_CAIRN_HOOKS:-}" ] && echo "[hooks] additions: \`${BENCH_CAIRN_HOOKS}\`."
[ -n "${BENCH_CAIRN_BIN:-}" ] && echo "Cairn binary: $BENCH_CAIRN_BIN."
echo "(a) 8 clients, $publishes publishes per run, $rounds rounds (medians); (b) $queued events x $hooks hooks; (c) $latency_count publishes."
echo
echo "Raw:"
echo '```'
cat "$work/publish" "$work/rate" "$work/latency"
echo '```'
echo
none=$(col none publishes_per_s | median) with=$(col hooks publishes_per_s | median)
echo "| measure | without hooks | with $hooks hooks | goal |"
echo "|---|---:|---:|---|"
echo "| publishes/s (median; range) | $none ($(range none publishes_per_s)) | $with ($(range hooks publishes_per_s)) | with ≥ 90 % of without: $(awk -v a="$with" -v b="$none" 'BEGIN { printf "%.0f %%", 100 * a / b }') |"
echo "| publish p50 / p99 (ms) | $(col none p50_ms | median) / $(col none p99_ms | median) | $(col hooks p50_ms | median) / $(col hooks p99_ms | median) | — |"
echo "| all deliveries arrived after the last publish (ms) | — | $(col hooks drain_ms | median) | — |"
echo
r=$(cat "$work/rate") l=$(cat "$work/latency")
echo "| measure | measured | goal |"
echo "|---|---:|---|"
echo "| delivery rate, $(val " $r" deliveries) queued deliveries (first to last arrival) | $(val " $r" per_s)/s | ≥ 1,000/s |"
echo "| the same from the process start | $(val " $r" per_s_from_start)/s | — |"
echo "| publish answer to delivery, p50 / p99 / max | $(val " $l" p50_ms) / $(val " $l" p99_ms) / $(val " $l" max_ms) ms | p99 < 500 ms |"
echo "| publish request to delivery, p50 / p99 | $(val " $l" from_request_p50_ms) / $(val " $l" from_request_p99_ms) ms | — |"
