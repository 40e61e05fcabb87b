#!/usr/bin/env bash
# Runs every test of skiff: unit tests, HTTP handler tests, and the end-to-end tests on the
# real Docker engine (which must be running; with CI=true a missing engine fails the tests).
# The function images the tests use are built first, FROM scratch, with no registry.
# The store's tests and the tests of daemons on PostgreSQL use the server SKIFF_TEST_POSTGRES
# names; when it is not set and PostgreSQL is installed (Debian's postgresql package), a
# throwaway cluster is started for the run and removed after it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ -z "${SKIFF_TEST_POSTGRES:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  read -r SKIFF_TEST_POSTGRES postgres_dir < <(./scripts/postgres.sh start)
  export SKIFF_TEST_POSTGRES
  trap './scripts/postgres.sh stop "$postgres_dir"' EXIT
  echo "PostgreSQL for the tests: $SKIFF_TEST_POSTGRES"
fi
./scripts/build-examples.sh
cargo test --workspace --locked "$@"
