#!/usr/bin/env bash
# Builds dist/{{name_snake}}.wasm, a WebAssembly component, from index.js with
# componentize-js (pinned below; it embeds the SpiderMonkey engine). The first
# run installs it from the npm registry into
# ${CAIRN_PLUGIN_TOOLS_DIR:-~/.cache/cairn-plugin-tools}/js-skeleton-<version>
# (needs node and npm); later builds are offline.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="0.23.0"
shim="0.17.9"
tools="${CAIRN_PLUGIN_TOOLS_DIR:-$HOME/.cache/cairn-plugin-tools}/js-skeleton-$version"
if [ ! -e "$tools/node_modules/@bytecodealliance/componentize-js/package.json" ]; then
    echo "installing componentize-js $version into $tools" >&2
    mkdir -p "$(dirname "$tools")"
    tmp="$(mktemp -d "$tools.XXXXXX")"
    (cd "$tmp" && npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error \
        "@bytecodealliance/componentize-js@$version" "@bytecodealliance/preview2-shim@$shim" >&2)
    # Another build may have installed it meanwhile: keep the first.
    mv -T "$tmp" "$tools" 2>/dev/null || rm -rf "$tmp"
fi
mkdir -p "$here/dist"
node "$here/componentize.mjs" "$tools" "$here/wit/plugin.wit" {{world}} "$here/index.js" "$here/dist/{{name_snake}}.wasm"
echo "built $here/dist/{{name_snake}}.wasm"
