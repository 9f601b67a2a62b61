#!/usr/bin/env bash
# Binary mirror benchmarks (issue 11), in one run on 127.0.0.1, against a
# loopback dist site (a small Python server writing nginx-style autoindex pages):
#   1. peak RSS of the server while it syncs one 500 MB file, above its idle RSS
#      (goal < 64 MiB);
#   2. download throughput of a mirrored 100 MB file (curl, 5 runs; goal
#      >= 1 GB/s) and the server's RSS before and after (flat in the file size);
#   3. sync rate of a 1,000-file tree (10 directories x 100 files of 4 KiB).
# Works from any directory:   tests/bench/binaries.sh
# Builds the release binary into $CARGO_TARGET_DIR (default: target).
# Knobs: BENCH_PORT (default 17501, uses 2 ports); BENCH_CAIRN (a cairn binary
# to use instead of building one).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
port=${BENCH_PORT:-17501}
log() { echo "binaries.sh: $*" >&2; }
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
if [ -n "${BENCH_CAIRN:-}" ]; then
  cairn=$BENCH_CAIRN
else
  (cd "$repo" && cargo build --release -p cairn --bin cairn) >&2
  cairn="$target/release/cairn"
fi

work=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

log "making the dist tree (500 MB, 100 MB, 1,000 x 4 KiB)"
mkdir -p "$work/dist/huge/v1.0.0" "$work/dist/big/v1.0.0"
head -c 500M /dev/urandom >"$work/dist/huge/v1.0.0/huge.bin"
head -c 100M /dev/urandom >"$work/dist/big/v1.0.0/big.bin"
for d in $(seq -w 0 9); do
  mkdir -p "$work/dist/tree/v1.0.$d"
  for f in $(seq -w 0 99); do head -c 4096 /dev/urandom >"$work/dist/tree/v1.0.$d/f$f.bin"; done
done

cat >"$work/dist.py" <<'PY'
import http.server, os, sys, time, html
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
    def list_directory(self, path):
        lines = ['<html><body><pre><a href="../">../</a>']
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            st = os.stat(full)
            date = time.strftime("%d-%b-%Y %H:%M", time.gmtime(st.st_mtime))
            shown = name + "/" if os.path.isdir(full) else name
            size = "-" if os.path.isdir(full) else str(st.st_size)
            lines.append('<a href="%s">%s</a>%s %s %20s' % (shown, html.escape(shown), " " * (50 - len(shown)), date, size))
        body = ("\n".join(lines) + "\n</pre></body></html>\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None
os.chdir(sys.argv[1])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
PY
python3 "$work/dist.py" "$work/dist" "$((port + 1))" & pids="$pids $!"
D=http://127.0.0.1:$((port + 1))

mkdir -p "$work/cairn"
{
  echo "data_dir = \"$work/cairn\""
  echo "[log]"; echo "level = \"warn\""
  for c in huge big tree; do printf '[[binaries]]\ncategory = "%s"\ntype = "node"\ndist_url = "%s/%s/"\n' "$c" "$D" "$c"; done
} >"$work/cairn.toml"
echo 'bench-password-1' | "$cairn" user create admin --admin --password-stdin --config "$work/cairn.toml" >/dev/null
CAIRN_LISTEN=127.0.0.1:$port "$cairn" serve --config "$work/cairn.toml" 2>"$work/cairn.log" & cpid=$!; pids="$pids $cpid"
C=http://127.0.0.1:$port
for _ in $(seq 1 300); do curl -fs -o /dev/null "$C/-/ping" && break; sleep 0.1; done
token=$(curl -fs -X PUT -H 'content-type: application/json' -d '{"_id":"org.couchdb.user:admin","name":"admin","password":"bench-password-1","type":"user"}' \
  "$C/-/user/org.couchdb.user:admin" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
rss() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$cpid/status"; } # KiB
sync() { # category; prints seconds
  local id t0 state
  t0=$(date +%s.%N)
  id=$(curl -fs -X POST -H "authorization: Bearer $token" "$C/-/binary/$1/sync" | python3 -c 'import json,sys; print(json.load(sys.stdin)["taskId"])')
  while :; do
    state=$(curl -fs "$C/-/binary/$1/syncs/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    case "$state" in success) break ;; error) echo "sync of $1 failed" >&2; curl -s "$C/-/binary/$1/syncs/$id/log" >&2; exit 1 ;; esac
    sleep 0.05
  done
  echo "$(date +%s.%N) - $t0" | bc -l
}

sleep 1
idle=$(rss VmRSS)
log "idle RSS ${idle} KiB; syncing the 500 MB file"
t_huge=$(sync huge)
peak=$(rss VmHWM)
after_huge=$(rss VmRSS)

log "syncing the 100 MB file, then downloading it 5 times"
sync big >/dev/null
before_dl=$(rss VmRSS)
speeds=""
for _ in 1 2 3 4 5; do
  s=$(curl -fs -o /dev/null -w '%{speed_download}' "$C/-/binary/big/v1.0.0/big.bin")
  speeds="$speeds $s"
done
after_dl=$(rss VmRSS)

log "syncing the 1,000-file tree"
t_tree=$(sync tree)
files=$(find "$work/cairn/blobs/binaries/tree" -type f | wc -l)

load=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$idle" "$peak" "$after_huge" "$t_huge" "$before_dl" "$after_dl" "$t_tree" "$files" "$load" $speeds <<'PY'
import sys, statistics
idle, peak, after_huge, t_huge, before_dl, after_dl, t_tree, files = sys.argv[1:9]
load = sys.argv[9]
speeds = sorted(float(s) / 1e9 for s in sys.argv[10:])
mib = lambda k: int(k) / 1024
print(f"sync of one 500 MB file: {float(t_huge):.1f} s ({500 / float(t_huge):.0f} MB/s); RSS idle {mib(idle):.1f} MiB, peak {mib(peak):.1f} MiB "
      f"(+{mib(peak) - mib(idle):.1f} MiB), after {mib(after_huge):.1f} MiB")
print(f"download of a 100 MB file: median {statistics.median(speeds):.2f} GB/s, best {speeds[-1]:.2f} GB/s "
      f"(runs: {', '.join(f'{s:.2f}' for s in speeds)}); RSS before {mib(before_dl):.1f} MiB, after {mib(after_dl):.1f} MiB")
print(f"sync of a 1,000-file tree: {files} files in {float(t_tree):.2f} s ({int(files) / float(t_tree):.0f} files/s)")
print(f"load average at the end: {load}")
PY
