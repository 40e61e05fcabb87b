#!/usr/bin/env bash
# Builds the example and test function images FROM scratch, with no registry and no pull:
# each is one statically linked Rust binary. Idempotent; safe to run concurrently.
#
#   skiff/hello:latest         examples/hello         JSON {"name":...} in, "Hello <name>!" out
#   skiff/uppercase:latest     examples/uppercase     text in, upper case out
#   skiff/echo-http:latest     examples/echo-http     http contract: describes or echoes each request
#   skiff/lambda-hello:latest  examples/lambda-hello  lambda contract (lambda_runtime): greets
#   skiff/voting:latest        examples/voting        the voting application: vote, worker, result
#   skiff/testfn:latest        testing/testfn         the end-to-end tests' function (see its docs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=$(rustc -vV | sed -n 's/^host: //p')

mkdir -p "$root/target"
exec 9>"$root/target/.build-examples.lock"
flock 9

# An explicit --target keeps these flags off build scripts and proc macros.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --locked \
  --target "$target" -p hello -p uppercase -p echo-http -p lambda-hello -p voting -p testfn

for name in hello uppercase echo-http lambda-hello voting testfn; do
  ctx=$(mktemp -d)
  cp "target/$target/release/$name" "$ctx/$name"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY $name /$name
ENTRYPOINT ["/$name"]
DOCKERFILE
  docker build --quiet --label skiff.example=true -t "skiff/$name:latest" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "built skiff/$name:latest"
done
