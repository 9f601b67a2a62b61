#!/usr/bin/env bash
# Builds the plugin, then runs cases.toml against it with the settings of
# config.toml, as Cairn would run it (no server needed). CAIRN=/path/to/cairn
# picks the binary (default: `cairn` on the PATH).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/build.sh"
"${CAIRN:-cairn}" plugin test "$here/dist/{{name_snake}}.wasm" --config "$here/config.toml" "$here/cases.toml"
