#!/usr/bin/env bash
# Plugin costs per guest language, side by side in one run: each sample built
# in Rust, JavaScript (componentize-js) and Python (componentize-py) is loaded
# by `cairn plugin check` (the server's runtime, sandbox and limits):
#   - .wasm size;
#   - cold load: compiling the component to native code with an empty cache;
#   - cached load: the same with the compiled code in the cache (a restart);
#   - start: a fresh instance (instantiate + init);
#   - first call on that instance, then the mean of 200 warm calls on it;
#   - linear memory the instance holds after its first call.
# Each figure is the median of BENCH_ROUNDS runs (default 3; the cold load is
# measured once per plugin, with a fresh cache).
#
#   tests/bench/plugin_langs.sh        (works from any directory)
#
# BENCH_CAIRN_BIN: a release `cairn` to use instead of building one.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=${BENCH_ROUNDS:-3}
log() { echo "plugin_langs.sh: $*" >&2; }
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
cairn=${BENCH_CAIRN_BIN:-}
if [ -z "$cairn" ]; then
  (cd "$repo" && cargo build --release -p cairn --bin cairn) >&2
  cairn="$target/release/cairn"
fi
dist="$target/plugins-dist"
CARGO_TARGET_DIR="$target/wasm-plugins" bash "$repo/plugins/build.sh" "$dist" >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'publishers = { "@acme" = ["alice"] }\nprivate_scopes = ["@secret"]\n' >"$work/scope.toml"
printf 'username = "registry-bot"\n' >"$work/chat.toml"
cp "$repo/tests/fixtures/cases/block_rules.config.toml" "$work/block.toml"

# sample language wasm settings
plugins="scope-policy rust scope_policy scope
scope-policy js scope_policy_js scope
block-rules rust block_rules block
block-rules js block_rules_js block
block-rules python block_rules_py block
chat-hook rust chat_hook chat
chat-hook js chat_hook_js chat"

# The value after "LABEL:" in `cairn plugin check` output, as a bare number.
field() { grep "^$1:" "$2" | head -n1 | sed -E 's/^[^:]+: *([0-9.]+).*/\1/'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "Machine: $(nproc) cores, $(uname -sr); $(date -u '+%Y-%m-%d %H:%M UTC'); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cairn: $cairn"
echo
echo "| sample | language | .wasm | cold load (compile) | cached load | start (instantiate + init) | first call | warm call | memory per instance |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
while read -r sample lang wasm settings; do
  file="$dist/$wasm.wasm"
  size=$(stat -c %s "$file")
  cache="$work/cache-$wasm"
  mkdir -p "$cache"
  XDG_CACHE_HOME="$cache" "$cairn" plugin check "$file" --config "$work/$settings.toml" >"$work/cold.out" 2>&1 \
    || { cat "$work/cold.out" >&2; exit 1; }
  cold=$(field compile "$work/cold.out")
  : >"$work/rounds"
  for _ in $(seq 1 "$rounds"); do
    XDG_CACHE_HOME="$cache" "$cairn" plugin check "$file" --config "$work/$settings.toml" >"$work/warm.out" 2>&1 \
      || { cat "$work/warm.out" >&2; exit 1; }
    echo "$(field compile "$work/warm.out") $(field start "$work/warm.out") $(field 'first call' "$work/warm.out") $(field 'warm call' "$work/warm.out") $(field memory "$work/warm.out")" >>"$work/rounds"
  done
  col() { awk -v c="$1" '{print $c}' "$work/rounds" | median; }
  printf '| %s | %s | %.1f MB | %s ms | %s ms | %s ms | %s ms | %s µs | %s MiB |\n' \
    "$sample" "$lang" "$(awk -v s="$size" 'BEGIN {print s / 1000000}')" "$cold" "$(col 1)" "$(col 2)" "$(col 3)" "$(col 4)" "$(col 5)"
done <<<"$plugins"
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
