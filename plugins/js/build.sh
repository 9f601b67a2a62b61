#!/usr/bin/env bash
# Builds every JavaScript plugin of this folder (each subfolder with a
# plugin.json) into a WebAssembly component and copies it into OUT_DIR.
#
#   plugins/js/build.sh OUT_DIR
#
# The toolchain (componentize-js, versions pinned by package-lock.json here) is
# installed from the npm registry with `npm ci` into
# ${CAIRN_PLUGIN_TOOLS_DIR:-~/.cache/cairn-plugin-tools}/js, outside the
# repository, the first time or when the lock file changes; afterwards the
# build needs no network. A component takes seconds to build (it embeds the
# SpiderMonkey engine), so each is cached there by the hash of its inputs (its
# folder, lib/, the WIT, the lock file and componentize.mjs) and rebuilt only
# when one of them changes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: plugins/js/build.sh OUT_DIR}"
wit="$here/../../wit/plugin.wit"
tools="${CAIRN_PLUGIN_TOOLS_DIR:-$HOME/.cache/cairn-plugin-tools}/js"

command -v node >/dev/null && command -v npm >/dev/null || {
    echo "plugins/js/build.sh: node and npm are needed to build the JavaScript plugins" >&2
    exit 1
}

# The toolchain, reinstalled when the committed lock file changes.
lock_hash="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)"
if [[ "$(cat "$tools/.installed" 2>/dev/null)" != "$lock_hash" ]]; then
    echo "plugins/js/build.sh: installing the JavaScript plugin toolchain into $tools" >&2
    mkdir -p "$tools"
    cp "$here/package.json" "$here/package-lock.json" "$tools/"
    (cd "$tools" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
    echo "$lock_hash" >"$tools/.installed"
fi

mkdir -p "$out" "$tools/built"
out="$(cd "$out" && pwd)"
shared=("$wit" "$here/package-lock.json" "$here/componentize.mjs")
mapfile -t libs < <(find "$here/lib" -type f | sort)
built=()
for meta in "$here"/*/plugin.json; do
    dir="$(dirname "$meta")"
    name="$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).wasm' "$meta")"
    mapfile -t own < <(find "$dir" -type f | sort)
    key="$(for f in "${shared[@]}" "${libs[@]}" "${own[@]}"; do printf '%s\n' "${f#"$here"/}"; sha256sum <"$f"; done | sha256sum | cut -c1-32)"
    cached="$tools/built/$key.wasm"
    if [[ ! -s "$cached" ]]; then
        tmp="$tools/built/.$key.$$.tmp"
        (cd "$here" && node componentize.mjs "$tools" "$wit" "$dir" "$tmp")
        mv "$tmp" "$cached"
    fi
    # A component starts with the wasm magic and layer 1 (00 61 73 6d 0d 00 01 00).
    if [[ "$(head -c 8 "$cached" | od -An -tx1 | tr -d ' \n')" != "0061736d0d000100" ]]; then
        echo "plugins/js/build.sh: $cached is not a WebAssembly component" >&2
        exit 1
    fi
    cp "$cached" "$out/$name"
    built+=("$name")
done
echo "JavaScript plugins in $out:"
for name in "${built[@]}"; do
    printf '  %-20s %8d bytes\n' "$name" "$(stat -c %s "$out/$name")"
done
