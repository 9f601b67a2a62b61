#!/usr/bin/env bash
# Builds every plugin in this workspace as a WebAssembly component
# (wasm32-wasip2, release) and copies the .wasm files into OUT_DIR, then the
# JavaScript plugins of js/ (js/build.sh: componentize-js, pinned, installed
# outside the repository on first use and cached; needs node and npm).
#
#   plugins/build.sh [OUT_DIR]     (default: plugins/dist/)
#
# Works from any directory; uses the committed Cargo.lock (--locked). Honours
# CARGO_TARGET_DIR (default: plugins/target; never point it at a target dir a
# running cargo holds, e.g. from inside `cargo test`, or the build waits on its
# lock) and CARGO_BUILD_JOBS (default 2).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/dist}"
target="wasm32-wasip2"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"

if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

# The .wasm files this build produced, from cargo's JSON messages (so a stale
# file of a plugin since removed is never shipped); diagnostics still go to
# stderr as usual.
messages="$(cargo build \
    --manifest-path "$here/Cargo.toml" \
    --workspace \
    --locked \
    --release \
    --target "$target" \
    --jobs "${CARGO_BUILD_JOBS:-2}" \
    --message-format=json-render-diagnostics)"
mapfile -t built < <(grep '"reason":"compiler-artifact"' <<<"$messages" \
    | grep -o '"[^"]*\.wasm"' | tr -d '"' | sort -u)
if (( ${#built[@]} == 0 )); then
    echo "build.sh: cargo built no .wasm file" >&2
    exit 1
fi

mkdir -p "$out"
out="$(cd "$out" && pwd)"
for wasm in "${built[@]}"; do
    # A component starts with the wasm magic and layer 1 (00 61 73 6d 0d 00 01 00).
    if [[ "$(head -c 8 "$wasm" | od -An -tx1 | tr -d ' \n')" != "0061736d0d000100" ]]; then
        echo "build.sh: $wasm is not a WebAssembly component" >&2
        exit 1
    fi
    cp "$wasm" "$out/"
done
echo "plugins in $out:"
for wasm in "${built[@]}"; do
    name="$(basename "$wasm")"
    printf '  %-20s %8d bytes\n' "$name" "$(stat -c %s "$out/$name")"
done

# The plugins in other languages, into the same folder.
bash "$here/js/build.sh" "$out"
# Python plugins (plugins/py/*/app.py), with componentize-py.
bash "$here/py/build.sh" "$out"
