#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, the storage conformance suite
# on SQLite and PostgreSQL, and the end-to-end tests that start the real
# server and drive it over HTTP and with the real npm CLI.
#
# Installs or starts what the tests need when it is missing:
# - PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; each test creates
#   and drops its own database). Override with CAIRN_TEST_PG=postgres://...
set -euo pipefail
cd "$(dirname "$0")/.."

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

command -v node >/dev/null && command -v npm >/dev/null || {
  echo "node and npm are required for the npm client tests" >&2
  exit 1
}

# Without this, npm would use the machine's own ~/.npmrc settings in tests
# that forget to pass a throwaway one.
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

cargo build --workspace --tests --locked
cargo test --workspace --locked --no-fail-fast
