#!/usr/bin/env bash
# Builds the image of skiff itself, FROM scratch, with nothing pulled: the statically linked
# skiff binary, the host's CA certificates (for TLS to registries, PostgreSQL and callbacks),
# and an empty /tmp and /var/lib/skiff (the data directory). This is the image a Swarm stack
# runs (deploy/stack.yml); push it to the stack's registry with `skiff push`.
#
#   scripts/build-skiff-image.sh [TAG]    (default skiff/skiff:latest)
#
# SKIFF_IMAGE_BINARY=PATH puts that skiff binary in the image instead of building one, with
# the shared libraries it loads if it is not static: the tests give the debug binary they
# run, which spares them a release build.
#
# Idempotent; safe to run concurrently (a lock serialises builds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tag=${1:-skiff/skiff:latest}
target=$(rustc -vV | sed -n 's/^host: //p')

mkdir -p "$root/target"
exec 9>"$root/target/.build-skiff-image.lock"
flock 9

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
if [ -n "${SKIFF_IMAGE_BINARY:-}" ]; then
  bin=$SKIFF_IMAGE_BINARY
else
  # An explicit --target keeps the static flag off build scripts and proc macros.
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --locked \
    --target "$target" -p skiff
  bin=target/$target/release/skiff
fi
cp "$bin" "$ctx/skiff"
# A binary that is not static takes the shared libraries it loads along.
if ldd "$bin" >/dev/null 2>&1; then
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$ctx$(dirname "$lib")"
    cp -L "$lib" "$ctx$lib"
  done
fi
# The release profile keeps line tables for backtraces; the image does without them.
strip "$ctx/skiff" 2>/dev/null || true
mkdir -p "$ctx/etc/ssl/certs" "$ctx/tmp" "$ctx/var/lib/skiff"
chmod 1777 "$ctx/tmp"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/etc/ssl/certs/ca-certificates.crt"
fi
# Name lookups of a static binary read these files; with none, only DNS answers.
printf 'hosts: files dns\n' >"$ctx/etc/nsswitch.conf"
printf 'Dockerfile\n.dockerignore\n' >"$ctx/.dockerignore"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY . /
ENV SKIFF_DATA_DIR=/var/lib/skiff SKIFF_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/skiff"]
CMD ["serve"]
DOCKERFILE
docker build --quiet --label skiff.image=true -t "$tag" "$ctx" >/dev/null 2>&1 || docker build --label skiff.image=true -t "$tag" "$ctx"
echo "built $tag"
