#!/usr/bin/env bash
# Builds dist/{{name_snake}}.wasm, a WebAssembly component, from app.py with
# componentize-py (pinned below). The first run installs it from PyPI into
# ${CAIRN_PLUGIN_TOOLS_DIR:-~/.cache/cairn-plugin-tools}/py-<version> (a venv;
# needs python3 with venv); later builds are offline.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="0.25.1"
tools="${CAIRN_PLUGIN_TOOLS_DIR:-$HOME/.cache/cairn-plugin-tools}/py-$version"
if [ ! -x "$tools/bin/componentize-py" ]; then
    echo "installing componentize-py $version into $tools" >&2
    mkdir -p "$(dirname "$tools")"
    tmp="$(mktemp -d "$tools.XXXXXX")"
    python3 -m venv "$tmp"
    "$tmp/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$version"
    # Another build may have installed it meanwhile: keep the first.
    mv -T "$tmp" "$tools" 2>/dev/null || rm -rf "$tmp"
fi
mkdir -p "$here/dist"
cd "$here"
"$tools/bin/componentize-py" --quiet -d wit -w {{world}} componentize app -o "dist/{{name_snake}}.wasm"
echo "built $here/dist/{{name_snake}}.wasm"
