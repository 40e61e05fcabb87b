#!/usr/bin/env bash
# Runs skiff with the demo functions deployed, on a machine with Docker and a Rust toolchain:
# builds skiff and the example images (FROM scratch, nothing is pulled), starts the daemon
# on 127.0.0.1:8080 (SKIFF_LISTEN to change), deploys `hello`, `uppercase` (exec contract)
# `web` (http contract) and `greeter` (lambda contract), public so that curl calls them
# without a token, then stays in the foreground until Ctrl-C, which stops the daemon and
# removes its containers. At its first start the daemon makes an admin token and writes it
# to the CLI's config (~/.config/skiff/config.toml), which the skiff commands below use.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

docker info >/dev/null 2>&1 || { echo "error: the Docker engine is not reachable; start it first" >&2; exit 1; }

echo "==> building skiff"
cargo build --release --locked --quiet -p skiff
skiff="$root/target/release/skiff"
echo "==> building the example images"
./scripts/build-examples.sh

listen=${SKIFF_LISTEN:-127.0.0.1:8080}
data_dir=${SKIFF_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/skiff}
export SKIFF_URL="http://$listen"
echo "==> starting skiff serve on $listen"
"$skiff" serve --listen "$listen" --data-dir "$data_dir" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon' INT TERM

for _ in $(seq 100); do
  curl -fsS "$SKIFF_URL/readyz" >/dev/null 2>&1 && break
  kill -0 $daemon 2>/dev/null || { echo "error: skiff serve exited" >&2; exit 1; }
  sleep 0.1
done

"$skiff" deploy hello --image skiff/hello:latest --memory 64Mi --timeout 10s --public
"$skiff" deploy uppercase --image skiff/uppercase:latest --memory 64Mi --timeout 10s --public
"$skiff" deploy web --image skiff/echo-http:latest --contract http --readiness-path /ready \
  --memory 64Mi --concurrency 10 --max 3 --idle-timeout 2m --public
"$skiff" deploy greeter --image skiff/lambda-hello:latest --contract lambda --memory 64Mi \
  --timeout 10s --max 3 --public

cat <<TOUR

skiff is running at $SKIFF_URL with four functions.
Dashboard: $SKIFF_URL/   (functions, calls, logs and charts, updated live; sign in with
           the admin token, the \`token\` of ~/.config/skiff/config.toml)

Try, in another terminal:

  export SKIFF_URL=$SKIFF_URL PATH=$root/target/release:\$PATH
  echo '{"name":"Ann"}' | skiff invoke hello      # Hello Ann!
  curl -d 'shout this' \$SKIFF_URL/fn/uppercase   # SHOUT THIS
  curl \$SKIFF_URL/fn/web/hi?x=1                  # an http function: its JSON echo
  skiff instances web                             # its warm instance
  curl -d '{"name":"Ann"}' \$SKIFF_URL/fn/greeter  # a Lambda function (lambda_runtime)
  # The Lambda API's access key, made at the first start (requests are checked with SigV4):
  export AWS_SHARED_CREDENTIALS_FILE=$data_dir/aws-credentials AWS_PROFILE=skiff
  aws lambda invoke --endpoint-url \$SKIFF_URL --region us-east-1 --function-name greeter \\
      --payload '{"name":"Ann"}' /dev/stdout      # the same through the Lambda API
  skiff calls                                     # the calls, newest first
  skiff logs <call id>                            # what a call wrote to stderr
  skiff logs -f web                               # a function's output, as it is written
  skiff tokens create ci --scope deploy,read      # a token for CI, shown once
  skiff audit                                     # who deployed what, when, with which token

Ctrl-C stops skiff and removes its containers.
TOUR
wait $daemon
