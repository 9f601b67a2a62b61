#!/usr/bin/env bash
# Builds dist/{{name_snake}}.wasm, a WebAssembly component (wasm32-wasip2, release).
# Honours CARGO_TARGET_DIR (default: ./target).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
cargo build --manifest-path "$here/Cargo.toml" --release --target wasm32-wasip2
mkdir -p "$here/dist"
cp "${CARGO_TARGET_DIR:-$here/target}/wasm32-wasip2/release/{{name_snake}}.wasm" "$here/dist/"
echo "built $here/dist/{{name_snake}}.wasm"
