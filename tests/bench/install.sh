#!/usr/bin/env bash
# Whole-install benchmark (issue 13), in one run on 127.0.0.1: `npm install`
# and `pnpm install` of a 300-package tree with the lockfile present, a warm
# server and an empty client cache, through
#   - Cairn (release build, fresh temp data dir: SQLite + local blobs),
#   - the static ceiling: `cairn-bench ceiling --routes`, a bare hyper server
#     answering from memory with the exact bytes Cairn serves (every
#     abbreviated packument and tarball of the tree, dumped from Cairn),
#   - Verdaccio 6.8 (../shared/bench/verdaccio.sh), the same tree published
#     into it (tests/bench/seed_tree.py writes the same bytes every time).
# Each install runs in a fresh directory (package.json, lockfile, .npmrc)
# with a fresh cache (and, for pnpm, a fresh store); servers are measured in
# interleaved rounds after one warm-up install each, and the figure is the
# median wall time. A markdown table goes to stdout, progress to stderr.
# Works from any directory:   tests/bench/install.sh
# Knobs (environment): BENCH_PACKAGES (default 300), BENCH_RUNS (rounds,
# default 5), BENCH_CLIENTS (default "npm pnpm"), BENCH_PORT (default 17601,
# uses 3 ports), BENCH_CAIRN (a cairn binary instead of building one; the
# cairn-bench tool is then BENCH_TOOL or the one in the target dir),
# BENCH_NO_VERDACCIO=1, BENCH_PNPM (default: the test clients' pnpm),
# BENCH_LIMIT (seconds, default 600), BENCH_CAIRN_TOML (top-level keys added
# to Cairn's config, e.g. 'packument_cache_ttl_secs = 3600').
# The whole run is stopped after BENCH_LIMIT seconds (10 minutes).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
n=${BENCH_PACKAGES:-300}
runs=${BENCH_RUNS:-5}
clients=${BENCH_CLIENTS:-npm pnpm}
cport=${BENCH_PORT:-17601}
gport=$((cport + 1))
vport=$((cport + 2))
peer="$repo/../shared/bench/verdaccio.sh"
pnpm=${BENCH_PNPM:-$HOME/.cache/cairn-test-clients/node_modules/.bin/pnpm}
abbrev='application/vnd.npm.install-v1+json'
prefix=itree
log() { echo "install.sh: $*" >&2; }

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
if [ -n "${BENCH_CAIRN:-}" ]; then
  cairn=$BENCH_CAIRN
  bench=${BENCH_TOOL:-$target/release/cairn-bench}
else
  (cd "$repo" && cargo build --release -p cairn --bin cairn && cargo build --release -p cairn-e2e --bin cairn-bench) >&2
  cairn="$target/release/cairn" bench="$target/release/cairn-bench"
fi
verdaccio=1
[ -n "${BENCH_NO_VERDACCIO:-}" ] && verdaccio=""
[ -x "$peer" ] || verdaccio=""
case " $clients " in *" pnpm "*) "$pnpm" --version >/dev/null || { echo "pnpm ($pnpm) does not run" >&2; exit 1; } ;; esac
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

work=$(mktemp -d)
pids="" watchdog=""
cleanup() {
  for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
  [ -n "$verdaccio" ] && { "$peer" stop "$work/v" 2>/dev/null || true; }
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
main=$$
limit=${BENCH_LIMIT:-600}
( trap 'kill $sp 2>/dev/null; exit 0' TERM; sleep "$limit" & sp=$!; wait $sp
  echo "install.sh: ${limit} s limit reached, stopping" >&2; kill -TERM $main ) 2>/dev/null & watchdog=$!
for p in $cport $gport $vport; do
  if curl -s -o /dev/null "http://127.0.0.1:$p/"; then echo "port $p is already in use" >&2; exit 1; fi
done
wait_ping() { for _ in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.1:$1/$2" && return; sleep 0.1; done; echo "nothing on $1" >&2; exit 1; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Cairn, seeded with the tree.
mkdir -p "$work/cairn"
printf '%s\ndata_dir = "%s"\npublic_url = "http://127.0.0.1:%s"\n[auth]\nallow_public_registration = true\n[log]\nlevel = "warn"\n' \
  "${BENCH_CAIRN_TOML:-}" "$work/cairn" "$cport" >"$work/cairn.toml"
CAIRN_LISTEN=127.0.0.1:$cport "$cairn" serve --config "$work/cairn.toml" 2>"$work/cairn.log" & cpid=$!; pids="$pids $cpid"
wait_ping "$cport" -/ping
C=http://127.0.0.1:$cport G=http://127.0.0.1:$gport V=http://127.0.0.1:$vport
log "publishing the $n-package tree into Cairn${verdaccio:+ and Verdaccio}"
ctok=$("$bench" adduser --registry "$C" --name bench --password bench-password-1)
python3 "$repo/tests/bench/seed_tree.py" "$C" "$ctok" "$prefix" "$n"
if [ -n "$verdaccio" ]; then
  "$peer" start "$vport" "$work/v" >/dev/null
  vtok=$("$bench" adduser --registry "$V" --name bench --password bench-password-1)
  python3 "$repo/tests/bench/seed_tree.py" "$V" "$vtok" "$prefix" "$n"
fi

# --- The static ceiling: every packument (abbreviated) and tarball, as Cairn serves them.
mkdir -p "$work/static"
: >"$work/routes"
for i in $(seq 0 $((n - 1))); do
  p="$prefix-$i" f="$prefix-$i-1.0.0.tgz"
  curl -fsS -H "Accept: $abbrev" -o "$work/static/$p.json" "$C/$p"
  curl -fsS -o "$work/static/$f" "$C/$p/-/$f"
  printf '/%s\t%s\t%s\n/%s/-/%s\tapplication/octet-stream\t%s\n' "$p" "$abbrev" "$work/static/$p.json" "$p" "$f" "$work/static/$f" >>"$work/routes"
done
"$bench" ceiling --port "$gport" --routes "$work/routes" --count-file "$work/static.count" 2>"$work/ceiling.log" & gpid=$!; pids="$pids $gpid"
wait_ping "$gport" "$prefix-0"
if [ -n "$verdaccio" ]; then
  cmp -s "$work/static/$prefix-1-1.0.0.tgz" <(curl -fsS "$V/$prefix-1/-/$prefix-1-1.0.0.tgz") || { echo "Verdaccio serves other tarball bytes" >&2; exit 1; }
fi

# --- Lockfiles, made once against Cairn; npm's names the registry host in
# every `resolved`, so each server gets its own copy.
mkdir -p "$work/proj"
printf '{"name":"install-bench","version":"1.0.0","private":true,"dependencies":{"%s-0":"1.0.0"}}\n' "$prefix" >"$work/proj/package.json"
printf 'registry=%s/\n' "$C" >"$work/proj/.npmrc"
case " $clients " in *" npm "*)
  (cd "$work/proj" && npm install --package-lock-only --cache "$work/lockcache" >/dev/null 2>"$work/lock.err") || { cat "$work/lock.err" >&2; exit 1; } ;;
esac
case " $clients " in *" pnpm "*)
  (cd "$work/proj" && "$pnpm" install --lockfile-only --store-dir "$work/lockstore" --cache-dir "$work/lockcache" >/dev/null 2>"$work/lock.err") || { cat "$work/lock.err" >&2; exit 1; } ;;
esac

servers="cairn static${verdaccio:+ verdaccio}"
url_of() { case $1 in cairn) echo "$C" ;; static) echo "$G" ;; verdaccio) echo "$V" ;; esac; }
pid_of() { case $1 in cairn) echo "$cpid" ;; static) echo "$gpid" ;; verdaccio) cat "$work/v/verdaccio.pid" ;; esac; }
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system
install() { # client server -> "ms requests cpu_ms" (requests only known for the static server)
  local client=$1 url d before t0 ms count=- pid c0
  url=$(url_of "$2")
  d=$(mktemp -d -p "$work")
  cp "$work/proj/package.json" "$d/"
  if [ "$client" = npm ]; then
    sed "s#$C/#$url/#g" "$work/proj/package-lock.json" >"$d/package-lock.json"
    printf 'registry=%s/\ncache=%s/cache\n' "$url" "$d" >"$d/.npmrc"
  else
    cp "$work/proj/pnpm-lock.yaml" "$d/"
    printf 'registry=%s/\nstore-dir=%s/store\ncache-dir=%s/cache\n' "$url" "$d" "$d" >"$d/.npmrc"
  fi
  before=$(cat "$work/static.count" 2>/dev/null || echo 0)
  pid=$(pid_of "$2") c0=$(cpu_ticks "$pid")
  t0=$(date +%s%N)
  if [ "$client" = npm ]; then
    (cd "$d" && npm install --no-audit --no-fund >/dev/null 2>"$d/err") || { cat "$d/err" >&2; exit 1; }
  else
    (cd "$d" && "$pnpm" install --frozen-lockfile --reporter=silent >/dev/null 2>"$d/err") || { cat "$d/err" >&2; exit 1; }
  fi
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  local cpu_ms=$(( ($(cpu_ticks "$pid") - c0) * 1000 / tck ))
  local got
  if [ "$client" = npm ]; then got=$(find "$d/node_modules" -maxdepth 1 -name "$prefix-*" | wc -l); else got=$(find "$d/node_modules/.pnpm" -maxdepth 1 -name "$prefix-*" | wc -l); fi
  [ "$got" = "$n" ] || { echo "$client via $2: installed $got packages, expected $n" >&2; exit 1; }
  if [ "$2" = static ]; then sleep 0.2; count=$(( $(cat "$work/static.count") - before )); fi
  rm -rf "$d"
  echo "$ms $count $cpu_ms"
}
: >"$work/results"
for client in $clients; do
  log "$client: one warm-up install per server"
  for s in $servers; do install "$client" "$s" >/dev/null; done
  for r in $(seq 1 "$runs"); do
    line=""
    for s in $servers; do
      out=$(install "$client" "$s")
      read -r ms count cpu <<<"$out"
      echo "$client $s $ms $count $cpu" >>"$work/results"
      line="$line $s=${ms}ms"
    done
    log "$client round $r:$line"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.0f\n", (a[NR/2]+a[NR/2+1])/2}'; }
ms_of() { awk -v c="$1" -v s="$2" '$1 == c && $2 == s {print $3}' "$work/results"; }
echo "Machine: $(nproc) cores, $(uname -srm); $(date -u '+%Y-%m-%d %H:%M UTC')."
echo "Load average before: $load_before; after: $load_after."
echo "Tree: $n packages ($prefix-0 depends on all of them through its dependencies), lockfile present, warm servers, empty client cache (and pnpm store) per install; $runs interleaved rounds after one warm-up install per server; medians."
echo "npm $(npm --version), pnpm $("$pnpm" --version), node $(node --version)."
echo
echo "Server CPU: the server process's user + system CPU time during one install (median)."
echo
echo "| client | server | median (ms) | range (ms) | / static | server CPU (ms) | requests per install |"
echo "|---|---|---:|---:|---:|---:|---:|"
for client in $clients; do
  static=$(ms_of "$client" static | median)
  reqs=$(awk -v c="$client" '$1 == c && $2 == "static" {print $4}' "$work/results" | median)
  for s in $servers; do
    m=$(ms_of "$client" "$s" | median)
    range=$(ms_of "$client" "$s" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%d–%d", lo, hi}')
    cpu=$(awk -v c="$client" -v s="$s" '$1 == c && $2 == s {print $5}' "$work/results" | median)
    echo "| $client | $s | $m | $range | $(awk -v a="$m" -v b="$static" 'BEGIN {printf "%.2f", a / b}') | $cpu | $([ "$s" = static ] && echo "$reqs" || echo "—") |"
  done
done
