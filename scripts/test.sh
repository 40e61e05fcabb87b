#!/usr/bin/env bash
# Runs every test of skiff: unit tests, HTTP handler tests, and the end-to-end tests on the
# real Docker engine (which must be running; with CI=true a missing engine fails the tests).
# The function images the tests use are built first, FROM scratch, with no registry.
# The store's tests and the tests of daemons on PostgreSQL use the server SKIFF_TEST_POSTGRES
# names; when it is not set and PostgreSQL is installed (Debian's postgresql package), a
# throwaway cluster is started for the run and removed after it.
# The Swarm tests use the swarm and registry SKIFF_TEST_SWARM and SKIFF_TEST_SWARM_REGISTRY
# name; when they are not set and this runs as root with Docker, a 2-node swarm of node
# containers and its registry are brought up for the run (scripts/swarm.sh; its node image
# is built once with debootstrap) and taken down after it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
postgres_dir=""
swarm_up=""
cleanup() {
  if [ -n "$swarm_up" ]; then ./scripts/swarm.sh down || true; fi
  if [ -n "$postgres_dir" ]; then ./scripts/postgres.sh stop "$postgres_dir"; fi
}
trap cleanup EXIT
if [ -z "${SKIFF_TEST_POSTGRES:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  read -r SKIFF_TEST_POSTGRES postgres_dir < <(./scripts/postgres.sh start)
  export SKIFF_TEST_POSTGRES
  echo "PostgreSQL for the tests: $SKIFF_TEST_POSTGRES"
fi
if [ -z "${SKIFF_TEST_SWARM:-}" ] && [ "$(id -u)" = 0 ] && docker info >/dev/null 2>&1; then
  ./scripts/swarm.sh image
  swarm_up=1
  SKIFF_TEST_SWARM=$(./scripts/swarm.sh up 2 | tail -n 1)
  SKIFF_TEST_SWARM_REGISTRY=$(./scripts/swarm.sh registry | tail -n 1)
  export SKIFF_TEST_SWARM SKIFF_TEST_SWARM_REGISTRY
  echo "Swarm manager for the tests: $SKIFF_TEST_SWARM, registry $SKIFF_TEST_SWARM_REGISTRY"
fi
./scripts/build-examples.sh
echo "--- building the tests (at ${SECONDS} s)"
cargo test --workspace --locked --no-run "$@"
echo "--- running the tests (at ${SECONDS} s)"
# Every test binary runs, whatever failed before it: a run reports every failure at once.
cargo test --workspace --locked --no-fail-fast "$@"
