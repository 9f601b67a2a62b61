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

# A venv cannot be moved (its scripts name their interpreter by absolute
# path), so it is made in place, under a lock, and marked complete last: an
# interrupted install is redone, and two builds never install at once.
if [ ! -e "$tools/.complete" ]; then
    mkdir -p "$(dirname "$tools")"
    exec 9>"$tools.lock"
    flock 9
    if [ ! -e "$tools/.complete" ]; then
        echo "installing componentize-py $version into $tools" >&2
        rm -rf "$tools"
        python3 -m venv "$tools"
        "$tools/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
        touch "$tools/.complete"
    fi
    flock -u 9
    exec 9>&-
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
