#!/usr/bin/env bash
# Runs every test of skiff: unit tests, HTTP handler tests, and the end-to-end tests on the
# real Docker engine (which must be running; with CI=true a missing engine fails the tests).
# The function images the tests use are built first, FROM scratch, with no registry.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/build-examples.sh
cargo test --workspace --locked "$@"
