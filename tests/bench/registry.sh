#!/usr/bin/env bash
# Side-by-side registry benchmark, in ONE run on 127.0.0.1:
#   - Cairn (release build, fresh temp data dir: SQLite + local blobs),
#   - Verdaccio 6.8 (../shared/bench/verdaccio.sh next to the repository),
#   - the ceiling: `cairn-bench ceiling`, a bare hyper server answering with the
#     exact abbreviated packument bytes Cairn serves (and its gzip bytes), and
#     the exact bytes of the tarball measured;
#   - optionally a second Cairn binary (BENCH_BASELINE), e.g. an older build.
# The same 100-version package is seeded into Cairn and Verdaccio, then:
#   - abbreviated packument GET (wrk, identity and gzip): ceiling, Cairn, Verdaccio
#   - tarball GET of a ~600-byte tarball (wrk): ceiling, Cairn, Verdaccio
#   - publishes from 8 concurrent clients (cairn-bench publish), no lost version
# and a markdown table is printed on stdout (progress goes to stderr).
# Works from any directory:
#   tests/bench/registry.sh
# Knobs (environment): BENCH_ROUNDS (default 5), BENCH_DURATION (s per wrk
# run and round, default 5: 25 s per target in all),
# BENCH_WARMUP (s, default 3), BENCH_CONNECTIONS (default 64),
# BENCH_PUBLISHES (per registry, default 400), BENCH_PORT (default 17201,
# uses 3 ports from there), BENCH_CAIRN_TOML (top-level keys added to Cairn's
# config, e.g. 'packument_cache_ttl_secs = 3600'; default none: Cairn's defaults),
# BENCH_CAIRN (a cairn binary to use instead of building one; cairn-bench is
# then taken from BENCH_TOOL or the target dir), BENCH_BASELINE (a second cairn
# binary measured beside the first, on the 4th port, same config),
# BENCH_THREADS (worker threads of Cairn and of the ceiling: `worker_threads`
# in Cairn's config, `--threads` for the ceiling; default: one per core),
# BENCH_ONLY (a regex: only the wrk targets whose key matches, e.g. 'tarball'),
# BENCH_NO_VERDACCIO=1 (leave Verdaccio out).
# The whole run is stopped after 10 minutes.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
duration=${BENCH_DURATION:-5}
rounds=${BENCH_ROUNDS:-5}
warmup=${BENCH_WARMUP:-3}
conns=${BENCH_CONNECTIONS:-64}
publishes=${BENCH_PUBLISHES:-400}
cport=${BENCH_PORT:-17201}
vport=$((cport + 1))
gport=$((cport + 2))
peer="$repo/../shared/bench/verdaccio.sh"
pkg=bench-pkg
abbrev='application/vnd.npm.install-v1+json'
log() { echo "registry.sh: $*" >&2; }

[ -x "$peer" ] || { echo "peer script $peer not found" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
# Two builds, not one: built together, features would be unified across both
# packages and the cairn binary would differ from (and rebuild over) the one
# startup.sh and users build with `cargo build --release -p cairn`.
if [ -n "${BENCH_CAIRN:-}" ]; then
  cairn=$BENCH_CAIRN
  bench=${BENCH_TOOL:-$target/release/cairn-bench}
else
  (cd "$repo" && cargo build --release -p cairn --bin cairn && cargo build --release -p cairn-e2e --bin cairn-bench) >&2
  cairn="$target/release/cairn"
  bench="$target/release/cairn-bench"
fi
baseline=${BENCH_BASELINE:-}
threads=${BENCH_THREADS:-}
bport=$((cport + 3))
verdaccio=1
[ -n "${BENCH_NO_VERDACCIO:-}" ] && verdaccio=""
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq >&2 && apt-get install -y wrk >&2
fi

work=$(mktemp -d)
cpid="" gpid="" bpid="" watchdog=""
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -s "$work/cairn.log" ]; then
    echo "registry.sh: failed ($rc); the end of Cairn's log:" >&2
    tail -n 20 "$work/cairn.log" >&2
  fi
  for p in $cpid $gpid $bpid; do kill -TERM "$p" 2>/dev/null || true; done
  "$peer" stop "$work/v" 2>/dev/null || true
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Bounded runtime: whatever happens, stop after 10 minutes (the trap cleans up).
main=$$
( trap 'kill $sp 2>/dev/null; exit 0' TERM; sleep 600 & sp=$!; wait $sp
  echo "registry.sh: 10 minute limit reached, stopping" >&2; kill -TERM $main ) 2>/dev/null & watchdog=$!

for p in $cport $vport $gport $bport; do
  if curl -s -o /dev/null "http://127.0.0.1:$p/"; then echo "port $p is already in use" >&2; exit 1; fi
done
wait_ping() {
  for _ in $(seq 1 600); do curl -fs -o /dev/null "http://127.0.0.1:$1/-/ping" && return; sleep 0.1; done
  echo "nothing answers on port $1" >&2; return 1
}
val() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; } # key=value from a result line

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $load_before"

# --- Cairn: fresh data dir, its own config.
mkdir -p "$work/cairn"
cairn_toml() { # data dir, port
  cat <<TOML
${BENCH_CAIRN_TOML:-}
${threads:+worker_threads = $threads}
data_dir = "$1"
public_url = "http://127.0.0.1:$2"

[auth]
allow_public_registration = true

[log]
level = "warn"
TOML
}
cairn_toml "$work/cairn" "$cport" >"$work/cairn.toml"
CAIRN_LISTEN=127.0.0.1:$cport "$cairn" serve --config "$work/cairn.toml" 2>"$work/cairn.log" & cpid=$!
wait_ping "$cport"
if [ -n "$baseline" ]; then
  mkdir -p "$work/base"
  cairn_toml "$work/base" "$bport" >"$work/base.toml"
  CAIRN_LISTEN=127.0.0.1:$bport "$baseline" serve --config "$work/base.toml" 2>"$work/base.log" & bpid=$!
  wait_ping "$bport"
fi
# --- Verdaccio (its own log level is warn too).
[ -n "$verdaccio" ] && "$peer" start "$vport" "$work/v" >/dev/null
C=http://127.0.0.1:$cport V=http://127.0.0.1:$vport G=http://127.0.0.1:$gport B=http://127.0.0.1:$bport

ctok=$("$bench" adduser --registry "$C" --name bench --password bench-password-1)
log "seeding $pkg (100 versions) into Cairn${baseline:+, the baseline}${verdaccio:+ and Verdaccio}"
cseed=$(timeout 120 "$bench" seed --registry "$C" --token "$ctok" --name "$pkg" --versions 100)
if [ -n "$baseline" ]; then
  btok=$("$bench" adduser --registry "$B" --name bench --password bench-password-1)
  timeout 120 "$bench" seed --registry "$B" --token "$btok" --name "$pkg" --versions 100 >/dev/null
fi
if [ -n "$verdaccio" ]; then
  vtok=$("$bench" adduser --registry "$V" --name bench --password bench-password-1)
  vseed=$(timeout 120 "$bench" seed --registry "$V" --token "$vtok" --name "$pkg" --versions 100)
fi

# --- The ceiling serves the exact bytes Cairn serves.
curl -fsS -H "Accept: $abbrev" -o "$work/abbrev.json" "$C/$pkg"
curl -fsS -H "Accept: $abbrev" -H 'Accept-Encoding: gzip' -o "$work/abbrev.json.gz" "$C/$pkg"
gzip -t <"$work/abbrev.json.gz" || { echo "Cairn's gzip answer is not gzip" >&2; exit 1; }
tgz="/$pkg/-/$pkg-1.0.0.tgz"
curl -fsS -o "$work/tarball.tgz" "$C$tgz"
printf '%s\tapplication/octet-stream\t%s\n' "$tgz" "$work/tarball.tgz" >"$work/routes"
"$bench" ceiling --port "$gport" --file "$work/abbrev.json" --gzip-file "$work/abbrev.json.gz" --content-type "$abbrev" \
  --routes "$work/routes" ${threads:+--threads "$threads"} 2>"$work/ceiling.log" & gpid=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "$G/" && break; sleep 0.05; done
cmp -s "$work/abbrev.json" <(curl -fsS -H "Accept: $abbrev" "$G/$pkg") || { echo "ceiling does not serve Cairn's bytes" >&2; exit 1; }
cmp -s "$work/tarball.tgz" <(curl -fsS "$G$tgz") || { echo "ceiling does not serve Cairn's tarball" >&2; exit 1; }
vbytes=n/a vgz=n/a
if [ -n "$verdaccio" ]; then
  vbytes=$(curl -fsS -H "Accept: $abbrev" "$V/$pkg" | wc -c)
  vgz=$(curl -fsS -H "Accept: $abbrev" -H 'Accept-Encoding: gzip' "$V/$pkg" | wc -c)
fi
log "abbreviated packument: Cairn $(wc -c <"$work/abbrev.json") B ($(wc -c <"$work/abbrev.json.gz") B gzip), Verdaccio $vbytes B ($vgz B gzip); tarball $(wc -c <"$work/tarball.tgz") B"

cat >"$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d non2xx=%d bytes=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status, summary.bytes))
end
LUA
: >"$work/results"
# Targets are measured in interleaved rounds (ceiling, Cairn, Verdaccio, ...,
# then again), so a burst of other load on the machine hits all of them
# alike; each figure is the median over the rounds.
all_targets=(
  "ceiling.packument.identity|$G/$pkg|Accept: $abbrev"
  "cairn.packument.identity|$C/$pkg|Accept: $abbrev"
  "baseline.packument.identity|$B/$pkg|Accept: $abbrev"
  "verdaccio.packument.identity|$V/$pkg|Accept: $abbrev"
  "ceiling.packument.gzip|$G/$pkg|Accept: $abbrev|Accept-Encoding: gzip"
  "cairn.packument.gzip|$C/$pkg|Accept: $abbrev|Accept-Encoding: gzip"
  "baseline.packument.gzip|$B/$pkg|Accept: $abbrev|Accept-Encoding: gzip"
  "verdaccio.packument.gzip|$V/$pkg|Accept: $abbrev|Accept-Encoding: gzip"
  "ceiling.tarball|$G$tgz"
  "cairn.tarball|$C$tgz"
  "baseline.tarball|$B$tgz"
  "verdaccio.tarball|$V$tgz"
)
targets=()
for t in "${all_targets[@]}"; do
  case "${t%%|*}" in baseline.*) [ -n "$baseline" ] || continue ;; verdaccio.*) [ -n "$verdaccio" ] || continue ;; esac
  [ -n "${BENCH_ONLY:-}" ] && ! [[ "${t%%|*}" =~ $BENCH_ONLY ]] && continue
  targets+=("$t")
done
tck=$(getconf CLK_TCK)
vpid=$([ -n "$verdaccio" ] && cat "$work/v/verdaccio.pid" 2>/dev/null || echo "")
pid_of() { case $1 in ceiling.*) echo "$gpid" ;; cairn.*) echo "$cpid" ;; baseline.*) echo "$bpid" ;; verdaccio.*) echo "$vpid" ;; esac; }
cpu_ticks() { [ -n "$1" ] && awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # user + system
run_wrk() { # seconds target [round]
  local secs=$1 t=$2 round=${3:-} key url h=() parts x pid c0 line
  IFS='|' read -r -a parts <<<"$t"
  key=${parts[0]} url=${parts[1]}
  for x in "${parts[@]:2}"; do h+=(-H "$x"); done
  if [ -z "$round" ]; then
    wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s "${h[@]}" "$url" >/dev/null
  else
    # The server's CPU time over the run, per request: what a request costs
    # on one core, whatever else the machine runs meanwhile.
    pid=$(pid_of "$key") c0=$(cpu_ticks "$pid")
    line=$(wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s -s "$work/report.lua" "${h[@]}" "$url" | grep '^WRK ')
    line="$line cpu_us=$(awk -v d="$(( $(cpu_ticks "$pid") - c0 ))" -v t="$tck" -v n="$(val "$line" requests)" 'BEGIN { if (n > 0) printf "%.1f", d / t * 1e6 / n; else print 0 }')"
    echo "$key round=$round $line" >>"$work/results"
  fi
}
log "wrk warm-up, ${warmup}s per target"
for t in "${targets[@]}"; do run_wrk "$warmup" "$t"; done
for round in $(seq 1 "$rounds"); do
  log "wrk round $round of $rounds, ${duration}s per target"
  for t in "${targets[@]}"; do run_wrk "$duration" "$t" "$round"; done
done

# Cairn's run lasts about a second, so it is repeated (fresh packages each
# time) and the median taken; Verdaccio's lasts tens of seconds and runs once.
: >"$work/publish"
if [ "$publishes" -gt 0 ]; then
  log "publishing $publishes versions from 8 clients into Cairn ($rounds times)${verdaccio:+, then Verdaccio}"
  for round in $(seq 1 "$rounds"); do
    line=$(timeout 240 "$bench" publish --registry "$C" --token "$ctok" --clients 8 --total "$publishes" --prefix "bench-pub$round") || cfail=1
    echo "cairn round=$round $line" >>"$work/publish"
  done
  if [ -n "$verdaccio" ]; then
    line=$(timeout 240 "$bench" publish --registry "$V" --token "$vtok" --clients 8 --total "$publishes" --prefix bench-pub1) || vfail=1
    echo "verdaccio round=1 $line" >>"$work/publish"
  fi
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Report.
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { # file key field -> values over rounds
  grep "^$2 " "$1" | while read -r l; do val "$l" "$3"; done
}
fmt() { awk -v f="$1" '{ if ($1 == "n/a") print $1; else printf f "\n", $1 }'; }
# Median over rounds: req/s as a whole number, milliseconds with 2 decimals.
r() { col "$work/results" "$1" "$2" | median | fmt "$([ "$2" = rps ] && echo %.0f || echo %.2f)"; }
p() { col "$work/publish" "$1" "$2" | median | fmt "$([ "$2" = publishes_per_s ] && echo %.1f || echo %.2f)"; }
spread() { col "$work/results" "$1" rps | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.0f–%.0f", lo, hi}'; }
sum() { col "$work/$1" "$2" "$3" | awk '{s+=$1} END {print s+0}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
errs() { local e n; e=$(sum results "$1" errors) n=$(sum results "$1" non2xx); [ "$e$n" = 00 ] && echo 0 || echo "$e errors, $n non-2xx"; }
echo "Machine: $(nproc) cores, $(uname -srm); $(date -u '+%Y-%m-%d %H:%M UTC')."
echo "Load average before: $load_before; after: $load_after."
[ -n "${BENCH_CAIRN_TOML:-}" ] && echo "Cairn config additions: \`${BENCH_CAIRN_TOML}\`."
[ -n "$threads" ] && echo "Worker threads (Cairn and the ceiling): $threads."
[ -n "$baseline" ] && echo "baseline: $baseline."
echo "wrk: 1 thread, $conns connections, $rounds interleaved rounds of ${duration}s per target after ${warmup}s warm-up; figures are medians over the rounds."
[ "$publishes" -gt 0 ] && echo "Publishes: 8 clients, $publishes per run (Cairn: median of $rounds runs; Verdaccio: 1 run)."
echo "Abbreviated packument of $pkg (100 versions): Cairn $(val " $cseed" abbreviated_bytes) B ($(wc -c <"$work/abbrev.json.gz") B gzip)${verdaccio:+, Verdaccio $(val " ${vseed:-}" abbreviated_bytes) B ($vgz B gzip)}. Tarball $tgz: $(wc -c <"$work/tarball.tgz") B."
echo "Server CPU µs/req: the server process's user + system CPU time over each wrk run divided by its requests (median over the rounds); req/s per core = 1,000,000 / that."
echo
echo "| workload | server | req/s | req/s range | p50 (ms) | p99 (ms) | server CPU µs/req | req/s per core | errors |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
for w in packument.identity packument.gzip tarball; do
  for s in ceiling cairn baseline verdaccio; do
    grep -q "^$s.$w " "$work/results" || continue
    cpu=$(r $s.$w cpu_us)
    echo "| $w GET | $s | $(r $s.$w rps) | $(spread $s.$w) | $(r $s.$w p50_ms) | $(r $s.$w p99_ms) | $cpu | $(awk -v c="$cpu" 'BEGIN { if (c + 0 > 0) printf "%.0f", 1e6 / c; else print "n/a" }') | $(errs $s.$w) |"
  done
done
for s in cairn verdaccio; do
  grep -q "^$s " "$work/publish" || continue
  echo "| publish (8 clients) | $s | $(p $s publishes_per_s) | $(col "$work/publish" $s publishes_per_s | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.0f–%.0f", lo, hi}') | $(p $s p50_ms) | $(p $s p99_ms) | — | — | failed $(sum publish $s failed), lost $(sum publish $s lost) of $(sum publish $s ok) acknowledged |"
done
echo
echo "| ratio | measured | target |"
echo "|---|---:|---|"
echo "| packument req/s, Cairn / ceiling (identity) | $(ratio "$(r cairn.packument.identity rps)" "$(r ceiling.packument.identity rps)") | ≥ 0.80 |"
echo "| packument req/s, Cairn / ceiling (gzip) | $(ratio "$(r cairn.packument.gzip rps)" "$(r ceiling.packument.gzip rps)") | ≥ 0.80 |"
echo "| packument p99, Cairn (identity / gzip) | $(r cairn.packument.identity p99_ms) / $(r cairn.packument.gzip p99_ms) ms | < 10 ms |"
echo "| tarball req/s, Cairn / ceiling | $(ratio "$(r cairn.tarball rps)" "$(r ceiling.tarball rps)") | ≥ 0.70 |"
echo "| tarball p50 / p99, Cairn | $(r cairn.tarball p50_ms) / $(r cairn.tarball p99_ms) ms | p99 < 10 ms |"
if [ -n "$baseline" ]; then
  echo "| Cairn / baseline req/s (packument identity, gzip, tarball) | $(ratio "$(r cairn.packument.identity rps)" "$(r baseline.packument.identity rps)"), $(ratio "$(r cairn.packument.gzip rps)" "$(r baseline.packument.gzip rps)"), $(ratio "$(r cairn.tarball rps)" "$(r baseline.tarball rps)") | — |"
fi
[ -n "$verdaccio" ] && echo "| packument req/s, Cairn / Verdaccio (identity) | $(ratio "$(r cairn.packument.identity rps)" "$(r verdaccio.packument.identity rps)") | — |"
[ -n "$verdaccio" ] && echo "| tarball req/s, Cairn / Verdaccio | $(ratio "$(r cairn.tarball rps)" "$(r verdaccio.tarball rps)") | — |"
[ "$publishes" -gt 0 ] && echo "| publishes/s, Cairn / Verdaccio | $(ratio "$(p cairn publishes_per_s)" "$(p verdaccio publishes_per_s)") | ≥ 5, no lost version |"
if [ -n "${cfail:-}" ]; then echo "Cairn's publish run failed or lost versions (see stderr)" >&2; exit 1; fi
