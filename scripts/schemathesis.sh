#!/usr/bin/env bash
# Runs schemathesis (from PyPI: python3 -m pip install schemathesis) against the OpenAPI
# document of a running skiff daemon, for a bounded number of examples per operation, and
# fails on any 5xx and on any answer outside the documented statuses, content types,
# headers and schemas.
#
# Usage: scripts/schemathesis.sh [URL]   (default: $SKIFF_URL or http://127.0.0.1:8080)
# SKIFF_TOKEN, when set, is sent as `Authorization: Bearer ...`; SKIFF_CA_CERT is the CA
# of an https:// daemon; SCHEMATHESIS_EXAMPLES (default 25) and SCHEMATHESIS_SEED (default
# 1) bound and fix the run.
set -euo pipefail
url=${1:-${SKIFF_URL:-http://127.0.0.1:8080}}
args=(
  run "$url/v1/openapi.json"
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
  --max-examples "${SCHEMATHESIS_EXAMPLES:-25}"
  --seed "${SCHEMATHESIS_SEED:-1}"
  --workers 1
  --request-timeout 5
  --generation-database none
  --no-color
)
if [ -n "${SKIFF_TOKEN:-}" ]; then
  args+=(-H "Authorization: Bearer $SKIFF_TOKEN")
fi
if [ -n "${SKIFF_CA_CERT:-}" ]; then
  args+=(--tls-verify "$SKIFF_CA_CERT")
fi
exec schemathesis "${args[@]}"
