#!/usr/bin/env bash
# Deploys the voting application (vote, worker, result) with the skiff CLI, from the
# skiff.toml of each function. The image skiff/voting:latest comes from
# scripts/build-examples.sh.
#
#   SKIFF          the skiff binary (default: skiff on PATH)
#   SKIFF_URL      the daemon (default: http://127.0.0.1:8080)
#   VOTING_VOLUME  the volume holding the tally (default: voting-data)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
skiff=${SKIFF:-skiff}
volume=${VOTING_VOLUME:-voting-data}
# A --volume on /data replaces the one in skiff.toml.
"$skiff" deploy --dir "$here/worker" --volume "$volume:/data"
"$skiff" deploy --dir "$here/result" --volume "$volume:/data:ro"
"$skiff" deploy --dir "$here/vote"
