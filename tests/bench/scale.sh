#!/usr/bin/env bash
# Scale-out benchmark (issue 12), in ONE run on 127.0.0.1, every Cairn on
# PostgreSQL (the multi-node layout):
#   local  — blobs on local disk,
#   s3     — blobs in an S3 bucket (moto), hot tarball cache on (default),
#   s3nc   — blobs in S3, hot tarball cache off (`tarball_cache_bytes = 0`),
#   s3b    — a second node on s3's database and bucket (for visibility).
# The same 100-version package is seeded into local, s3 and s3nc, then:
#   - abbreviated packument GET and small-tarball GET (wrk) on each,
#     with the Cairn process's CPU time per request,
#   - publishes from 8 concurrent clients (cairn-bench publish) on local and s3,
#   - publish on s3 → visible in s3b's packument (cairn-bench visible, 100 samples).
# A markdown table is printed on stdout (progress goes to stderr).
#   tests/bench/scale.sh
# Needs PostgreSQL (CAIRN_TEST_PG, default postgres://postgres@127.0.0.1:5432)
# and moto_server (started here on BENCH_S3_PORT unless CAIRN_TEST_S3 is set).
# Knobs: BENCH_ROUNDS (3), BENCH_DURATION (s per wrk run, 5), BENCH_WARMUP (2),
# BENCH_CONNECTIONS (64), BENCH_PUBLISHES (400), BENCH_SAMPLES (100),
# BENCH_PORT (17301, uses 4 ports), BENCH_S3_PORT (17310).
# The whole run is stopped after 15 minutes.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
duration=${BENCH_DURATION:-5}
rounds=${BENCH_ROUNDS:-3}
warmup=${BENCH_WARMUP:-2}
conns=${BENCH_CONNECTIONS:-64}
publishes=${BENCH_PUBLISHES:-400}
samples=${BENCH_SAMPLES:-100}
port=${BENCH_PORT:-17301}
pg=${CAIRN_TEST_PG:-postgres://postgres@127.0.0.1:5432}
pkg=bench-pkg
abbrev='application/vnd.npm.install-v1+json'
log() { echo "scale.sh: $*" >&2; }

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
(cd "$repo" && cargo build --release -p cairn --bin cairn && cargo build --release -p cairn-e2e --bin cairn-bench) >&2
cairn="$target/release/cairn"
bench="$target/release/cairn-bench"
command -v wrk >/dev/null || { log "installing wrk"; apt-get update -qq >&2 && apt-get install -y wrk >&2; }

work=$(mktemp -d)
run_id=$(date +%s)_$$
pids="" motopid="" watchdog="" dbs=""
cleanup() {
  local rc=$?
  [ "$rc" -ne 0 ] && for f in "$work"/*.log; do [ -s "$f" ] && { echo "== $f" >&2; tail -n 15 "$f" >&2; }; done
  for p in $pids $motopid; do kill -TERM "$p" 2>/dev/null || true; done
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null || true
  wait 2>/dev/null || true
  for d in $dbs; do psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
main=$$
( trap 'kill $sp 2>/dev/null; exit 0' TERM; sleep 900 & sp=$!; wait $sp
  echo "scale.sh: 15 minute limit reached, stopping" >&2; kill -TERM $main ) 2>/dev/null & watchdog=$!

wait_ping() {
  for _ in $(seq 1 600); do curl -fs -o /dev/null "http://127.0.0.1:$1/-/ping" && return; sleep 0.1; done
  echo "nothing answers on port $1" >&2; return 1
}
val() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

if [ -n "${CAIRN_TEST_S3:-}" ]; then
  s3=$CAIRN_TEST_S3
else
  s3=http://127.0.0.1:${BENCH_S3_PORT:-17310}
  moto_server -H 127.0.0.1 -p "${BENCH_S3_PORT:-17310}" >"$work/moto.log" 2>&1 & motopid=$!
  for _ in $(seq 1 300); do curl -fs -o /dev/null "$s3" && break; sleep 0.1; done
fi
bucket="cairn-bench-${run_id//_/-}"
curl -fsS -X PUT -o /dev/null "$s3/$bucket"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $load_before"

# start NAME PORT DB EXTRA_TOP BLOBS_TABLE: one Cairn node; sets pid_NAME.
start() {
  local name=$1 p=$2 db=$3 top=$4 blobs=$5
  mkdir -p "$work/$name"
  cat >"$work/$name.toml" <<TOML
$top
data_dir = "$work/$name"
database_url = "$pg/$db"
public_url = "http://127.0.0.1:$p"

[auth]
allow_public_registration = true

[log]
level = "warn"

$blobs
TOML
  CAIRN_LISTEN=127.0.0.1:$p "$cairn" serve --config "$work/$name.toml" 2>"$work/$name.log" &
  pids="$pids $!"
  eval "pid_$name=$!"
  wait_ping "$p"
}
s3blobs="[blobs]
kind = \"s3\"
bucket = \"$bucket\"
endpoint = \"$s3\"
region = \"us-east-1\"
prefix = \"bench/\"
access_key_id = \"moto\"
secret_access_key = \"moto-secret\""
for n in local s3 s3nc; do
  psql -q "$pg/postgres" -c "CREATE DATABASE bench_${n}_$run_id" >/dev/null
  dbs="$dbs bench_${n}_$run_id"
done
L=$port S=$((port + 1)) N=$((port + 2)) B=$((port + 3))
start local "$L" "bench_local_$run_id" "" ""
start s3 "$S" "bench_s3_$run_id" "" "$s3blobs"
start s3nc "$N" "bench_s3nc_$run_id" "tarball_cache_bytes = 0" "${s3blobs/bench\//bench-nc/}"
start s3b "$B" "bench_s3_$run_id" "" "$s3blobs"

declare -A tok port_of=([local]=$L [s3]=$S [s3nc]=$N)
for n in local s3 s3nc; do
  p=${port_of[$n]}
  tok[$n]=$("$bench" adduser --registry "http://127.0.0.1:$p" --name bench --password bench-password-1)
  log "seeding $pkg (100 versions) into $n"
  timeout 180 "$bench" seed --registry "http://127.0.0.1:$p" --token "${tok[$n]}" --name "$pkg" --versions 100 >"$work/seed.$n"
done
tgz_bytes=$(curl -fsS "http://127.0.0.1:$L/$pkg/-/$pkg-1.0.0.tgz" | wc -c)

cat >"$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
LUA
: >"$work/results"
targets=(
  "local.packument|local|$L|/$pkg|Accept: $abbrev"
  "s3.packument|s3|$S|/$pkg|Accept: $abbrev"
  "s3nc.packument|s3nc|$N|/$pkg|Accept: $abbrev"
  "local.tarball|local|$L|/$pkg/-/$pkg-1.0.0.tgz"
  "s3.tarball|s3|$S|/$pkg/-/$pkg-1.0.0.tgz"
  "s3nc.tarball|s3nc|$N|/$pkg/-/$pkg-1.0.0.tgz"
)
tick=$(getconf CLK_TCK)
run_wrk() { # seconds target [round]
  local secs=$1 t=$2 round=${3:-} parts h=() x pid c0 c1 out
  IFS='|' read -r -a parts <<<"$t"
  for x in "${parts[@]:4}"; do h+=(-H "$x"); done
  pid=$(eval echo "\$pid_${parts[1]}")
  if [ -z "$round" ]; then
    wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s "${h[@]}" "http://127.0.0.1:${parts[2]}${parts[3]}" >/dev/null
    return
  fi
  c0=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s -s "$work/report.lua" "${h[@]}" "http://127.0.0.1:${parts[2]}${parts[3]}" | grep '^WRK ')
  c1=$(cpu_ticks "$pid")
  # CPU time of the Cairn process per request, in µs (= ms per 1,000 requests).
  echo "${parts[0]} round=$round $out cpu_ms_per_k=$(awk -v d=$((c1 - c0)) -v t="$tick" -v r="$(val "$out" requests)" 'BEGIN{printf "%.1f", d * 1000 / t / r * 1000}')" >>"$work/results"
}
log "wrk warm-up, ${warmup}s per target"
for t in "${targets[@]}"; do run_wrk "$warmup" "$t"; done
for round in $(seq 1 "$rounds"); do
  log "wrk round $round of $rounds, ${duration}s per target"
  for t in "${targets[@]}"; do run_wrk "$duration" "$t" "$round"; done
done

log "publishing $publishes versions from 8 clients into local and s3 ($rounds times each, interleaved)"
: >"$work/publish"
for round in $(seq 1 "$rounds"); do
  for n in local s3; do
    p=${port_of[$n]}
    line=$(timeout 240 "$bench" publish --registry "http://127.0.0.1:$p" --token "${tok[$n]}" --clients 8 --total "$publishes" --prefix "bench-pub$round")
    echo "$n round=$round $line" >>"$work/publish"
  done
done
log "publish on s3 ($S), poll s3b ($B): $samples samples"
visible=$(timeout 300 "$bench" visible --registry "http://127.0.0.1:$S" --reader "http://127.0.0.1:$B" --token "${tok[s3]}" --name bench-visible --samples "$samples")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { grep "^$2 " "$1" | while read -r l; do val "$l" "$3"; done; }
r() { col "$work/results" "$1" "$2" | median; }
p() { col "$work/publish" "$1" "$2" | median; }
sum() { col "$work/$1" "$2" "$3" | awk '{s+=$1} END {print s+0}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "Machine: $(nproc) cores, $(uname -srm); $(date -u '+%Y-%m-%d %H:%M UTC')."
echo "Load average before: $load_before; after: $load_after."
echo "wrk: 1 thread, $conns connections, $rounds interleaved rounds of ${duration}s per target after ${warmup}s warm-up; medians over the rounds."
echo "Abbreviated packument of $pkg: $(val " $(cat "$work/seed.local")" abbreviated_bytes) B; tarball $tgz_bytes B."
echo
echo "| workload | blobs | req/s | p50 (ms) | p99 (ms) | Cairn CPU µs / req | errors |"
echo "|---|---|---:|---:|---:|---:|---|"
for w in packument tarball; do
  for s in local s3 s3nc; do
    label=$s; [ "$s" = s3 ] && label="s3, hot cache on"; [ "$s" = s3nc ] && label="s3, hot cache off"
    echo "| $w GET | $label | $(r $s.$w rps | xargs printf %.0f) | $(r $s.$w p50_ms) | $(r $s.$w p99_ms) | $(r $s.$w cpu_ms_per_k) | $(( $(sum results $s.$w errors) + $(sum results $s.$w non2xx) )) |"
  done
done
for s in local s3; do
  echo "| publish (8 clients) | $s | $(p $s publishes_per_s) | $(p $s p50_ms) | $(p $s p99_ms) | — | failed $(sum publish $s failed), lost $(sum publish $s lost) |"
done
echo
echo "| ratio | measured |"
echo "|---|---:|"
echo "| tarball req/s, s3 cache on / local | $(ratio "$(r s3.tarball rps)" "$(r local.tarball rps)") |"
echo "| tarball req/s, s3 cache off / local | $(ratio "$(r s3nc.tarball rps)" "$(r local.tarball rps)") |"
echo "| packument req/s, s3 / local | $(ratio "$(r s3.packument rps)" "$(r local.packument rps)") |"
echo "| publishes/s, s3 / local | $(ratio "$(p s3 publishes_per_s)" "$(p local publishes_per_s)") |"
echo
echo "Publish on one node → listed in another node's packument (same PostgreSQL and bucket, $samples samples): p50 $(val " $visible" visible_p50_ms) ms, p99 $(val " $visible" visible_p99_ms) ms, max $(val " $visible" visible_max_ms) ms."
