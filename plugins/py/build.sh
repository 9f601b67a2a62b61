#!/usr/bin/env bash
# Builds every Python plugin (plugins/py/<name>/app.py) as a WebAssembly
# component with componentize-py and copies it into OUT_DIR as
# <name>_py.wasm (dashes as underscores: block-rules -> block_rules_py.wasm).
#
#   plugins/py/build.sh [OUT_DIR]     (default: plugins/dist/)
#
# Each app.py names its world in a `# world: <name>` line. componentize-py is
# pinned below and installed once from PyPI into a venv under
# ${CAIRN_PLUGIN_TOOLS_DIR:-~/.cache/cairn-plugin-tools}/py-<version>
# (outside the repository); later builds are offline. Skips a plugin whose
# .wasm is newer than its sources and the WIT contract.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../dist}"
version="0.25.1"
tools="${CAIRN_PLUGIN_TOOLS_DIR:-$HOME/.cache/cairn-plugin-tools}/py-$version"
wit="$here/../../wit"

if [ ! -x "$tools/bin/componentize-py" ]; then
    echo "installing componentize-py $version into $tools" >&2
    mkdir -p "$(dirname "$tools")"
    tmp="$(mktemp -d "$tools.XXXXXX")"
    python3 -m venv "$tmp"
    "$tmp/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
    # Another build may have installed it meanwhile: keep the first.
    mv -T "$tmp" "$tools" 2>/dev/null || rm -rf "$tmp"
fi

mkdir -p "$out"
out="$(cd "$out" && pwd)"
for app in "$here"/*/app.py; do
    dir="$(dirname "$app")"
    name="$(basename "$dir" | tr - _)_py.wasm"
    world="$(sed -n 's/^# world: *\([a-z-]*\) *$/\1/p' "$app" | head -n 1)"
    if [ -z "$world" ]; then
        echo "py/build.sh: $app has no '# world: <name>' line" >&2
        exit 1
    fi
    if [ -e "$out/$name" ] && [ -z "$(find "$dir" "$wit" -newer "$out/$name" -name '*.py' -o -newer "$out/$name" -name '*.wit' | head -n 1)" ]; then
        printf '  %-20s %8d bytes (up to date)\n' "$name" "$(stat -c %s "$out/$name")"
        continue
    fi
    (cd "$dir" && "$tools/bin/componentize-py" --quiet -d "$wit" -w "$world" componentize app -o "$out/$name.tmp")
    mv "$out/$name.tmp" "$out/$name"
    printf '  %-20s %8d bytes\n' "$name" "$(stat -c %s "$out/$name")"
done
