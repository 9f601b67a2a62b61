#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the storage conformance suite
# on SQLite and PostgreSQL, the in-process domain tests (host/tests/domain:
# domain functions called on an App over a temporary SQLite, no HTTP, in
# milliseconds), and the end-to-end tests that start the real server and drive
# it over HTTP and with the real npm CLI.
#
# The hostile suite (tests/tests/hostile.rs: kill -9 during publishes, write
# races, a fuzz smoke) runs at CI size here; CAIRN_HOSTILE_LONG=1 runs its long
# variants (20 kills, 200 race trials, 100,000 fuzzed requests), e.g.
#   CAIRN_HOSTILE_LONG=1 cargo test -p cairn-e2e --test hostile
# CAIRN_FUZZ_SEED=N replays another fuzz stream.
#
# Installs or starts what the tests need when it is missing:
# - PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; each test creates
#   and drops its own database). Override with CAIRN_TEST_PG=postgres://...
# - moto's S3 server (`moto_server`, pip package `moto[server]`) on a free
#   loopback port, stopped at exit, for the blob conformance suite and the S3
#   end-to-end tests (each makes its own bucket). Override with
#   CAIRN_TEST_S3=http://host:port.
# - Debian's chromium (the web UI's browser tests).
# - npm 10 (for `npm hook`), pnpm 9 and yarn berry 4, installed from the npm registry into
#   ${CAIRN_CLIENTS_DIR:-~/.cache/cairn-test-clients} (outside the repository)
#   (npm 10 under npm10/) and handed to the tests as CAIRN_PNPM, CAIRN_YARN and
#   CAIRN_NPM10. Corepack is not used:
#   it downloads from outside the npm registry.
# - componentize-py (PyPI), for the Python plugins and the Python skeletons of
#   `cairn plugin new` (tests/tests/plugin_cli.rs), installed by their build
#   scripts into ${CAIRN_PLUGIN_TOOLS_DIR:-~/.cache/cairn-plugin-tools}.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"

pg_url="${CAIRN_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
if [ -z "${CAIRN_TEST_PG:-}" ] && ! (command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432); then
  echo "PostgreSQL is not answering on 127.0.0.1:5432; trying to start it" >&2
  if ! command -v pg_ctlcluster >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  fi
  for v in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2 || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
export CAIRN_TEST_PG="$pg_url"

cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c"; done' EXIT
if [ -z "${CAIRN_TEST_S3:-}" ]; then
  if ! command -v moto_server >/dev/null; then
    echo "installing moto[server] with pip" >&2
    python3 -m pip install --quiet 'moto[server]' >&2
    hash -r
  fi
  s3_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if command -v moto_server >/dev/null; then
    moto_server -H 127.0.0.1 -p "$s3_port" >/dev/null 2>&1 &
  else
    python3 -m moto.server -H 127.0.0.1 -p "$s3_port" >/dev/null 2>&1 &
  fi
  moto_pid=$!
  cleanup+=("kill $moto_pid 2>/dev/null || true")
  for _ in $(seq 1 120); do
    (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break
    sleep 0.5
  done
  export CAIRN_TEST_S3="http://127.0.0.1:$s3_port"
fi

command -v node >/dev/null && command -v npm >/dev/null || {
  echo "node and npm are required for the npm client tests" >&2
  exit 1
}

# Headless Chromium for the web UI tests (tests/tests/web_ui.rs drives it over
# the DevTools protocol): Debian's package, installed when missing.
if ! command -v chromium >/dev/null; then
  echo "installing chromium for the web UI tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2
fi

# Without this, npm would use the machine's own ~/.npmrc settings in tests
# that forget to pass a throwaway one.
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# pnpm and yarn berry for the client tests (tests/tests/npm_clients.rs), which
# fail rather than skip when they are missing.
clients_dir="${CAIRN_CLIENTS_DIR:-$HOME/.cache/cairn-test-clients}"
if [ -z "${CAIRN_PNPM:-}" ] || [ -z "${CAIRN_YARN:-}" ]; then
  if [ ! -e "$clients_dir/node_modules/.bin/pnpm" ] || [ ! -e "$clients_dir/node_modules/.bin/yarn" ]; then
    echo "installing pnpm@9 and @yarnpkg/cli-dist@4 into $clients_dir" >&2
    mkdir -p "$clients_dir"
    npm install --prefix "$clients_dir" --no-audit --no-fund pnpm@9 @yarnpkg/cli-dist@4 >&2
  fi
fi
export CAIRN_PNPM="${CAIRN_PNPM:-$clients_dir/node_modules/.bin/pnpm}"
export CAIRN_YARN="${CAIRN_YARN:-$clients_dir/node_modules/.bin/yarn}"
(cd / && "$CAIRN_PNPM" --version && "$CAIRN_YARN" --version) >/dev/null || {
  echo "pnpm ($CAIRN_PNPM) or yarn ($CAIRN_YARN) does not run" >&2
  exit 1
}
# npm 10 for `npm hook` (npm 11 dropped it; tests/tests/npm_hook.rs), in a
# folder of its own so that it does not replace the machine's npm.
if [ -z "${CAIRN_NPM10:-}" ] && [ ! -e "$clients_dir/npm10/node_modules/.bin/npm" ]; then
  echo "installing npm@10 into $clients_dir/npm10" >&2
  mkdir -p "$clients_dir/npm10"
  npm install --prefix "$clients_dir/npm10" --no-audit --no-fund npm@10 >&2
fi
export CAIRN_NPM10="${CAIRN_NPM10:-$clients_dir/npm10/node_modules/.bin/npm}"
(cd / && "$CAIRN_NPM10" --version) >/dev/null || {
  echo "npm 10 ($CAIRN_NPM10) does not run" >&2
  exit 1
}

# The sample plugins, built for wasm32-wasip2 (plugins/build.sh adds the
# target with rustup when it is missing). Their own target dir: they build for
# another platform.
CARGO_TARGET_DIR="$target/wasm-plugins" bash plugins/build.sh "$target/plugins-dist" >&2
export CAIRN_PLUGIN_DIR="$target/plugins-dist"

# The style gate, for the host and the plugins: formatting (rustfmt.toml) and
# clippy with every warning an error (clippy.toml caps functions at 100 lines).
# It runs before the tests so a style slip fails fast; docs/style.md says why
# each rule is there.
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component" >&2
done
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd plugins && cargo fmt --all --check)
CARGO_TARGET_DIR="$target/wasm-plugins" cargo clippy --manifest-path plugins/Cargo.toml --workspace --all-targets \
  --target wasm32-wasip2 --locked -- -D warnings

cargo build --workspace --tests --locked
log=$(mktemp)
cleanup+=("rm -f '$log'")
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo's last line is its empty doc-test run).
echo
awk '/^test result: / { for (i = 1; i < NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
