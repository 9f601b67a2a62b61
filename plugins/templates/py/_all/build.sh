#!/usr/bin/env bash
# Builds dist/{{name_snake}}.wasm, a WebAssembly component, from app.py with
# componentize-py (pinned below). The first run installs it from PyPI into
# ${CAIRN_PLUGIN_TOOLS_DIR:-~/.cache/cairn-plugin-tools}/py-<version> (a venv;
# needs python3 with venv); later builds are offline.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="0.25.1"
tools="${CAIRN_PLUGIN_TOOLS_DIR:-$HOME/.cache/cairn-plugin-tools}/py-$version"
if [ ! -e "$tools/.complete" ]; then
    echo "installing componentize-py $version into $tools" >&2
    mkdir -p "$(dirname "$tools")"
    tmp="$(mktemp -d "$tools.XXXXXX")"
    python3 -m venv "$tmp"
    "$tmp/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
    touch "$tmp/.complete"
    # Another build may have installed it meanwhile: keep the first. An
    # interrupted install (no marker) is replaced.
    if [ ! -e "$tools/.complete" ]; then
        rm -rf "$tools"
        mv "$tmp" "$tools"
    fi
    rm -rf "$tmp"
fi
mkdir -p "$here/dist"
cd "$here"
# Through the venv's python rather than its `componentize-py` script: the
# venv was made under a temporary name, which its scripts' #! lines keep.
"$tools/bin/python3" -c 'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())' \
    --quiet -d wit -w {{world}} componentize app -o "dist/{{name_snake}}.wasm"
echo "built $here/dist/{{name_snake}}.wasm"
