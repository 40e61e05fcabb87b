#!/usr/bin/env bash
# Builds skiff/python-lambda:latest (examples/python-lambda): a Python function on the official
# AWS Lambda runtime interface client (awslambdaric), with no registry and no pull:
#
#   1. skiff/debian-python:bookworm, a Debian bookworm root file system made here with
#      `debootstrap --variant=minbase` (python3, python3-pip) and `docker import`ed. Skipped when
#      that image exists already (remove it to rebuild it).
#   2. skiff/python-lambda:latest, `docker build` FROM it: pip installs awslambdaric (binary
#      wheels only) into /var/runtime, app.py goes to /var/task.
#
# Needs root (debootstrap), Docker, and Debian's and PyPI's package servers. Idempotent; safe to
# run concurrently (flock). Set DEBIAN_MIRROR to use another Debian mirror.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

base=skiff/debian-python:bookworm
image=skiff/python-lambda:latest
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

mkdir -p "$root/target"
exec 9>"$root/target/.build-python-lambda.lock"
flock 9

work=""
cleanup() {
  if [ -n "$work" ] && [ -d "$work" ]; then
    # debootstrap mounts proc and sys in the new root; never leave them mounted.
    for m in proc sys dev/pts; do
      if mountpoint -q "$work/rootfs/$m" 2>/dev/null; then umount -l "$work/rootfs/$m" || true; fi
    done
    rm -rf "$work"
  fi
}
trap cleanup EXIT

if ! docker image inspect "$base" >/dev/null 2>&1; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    echo "installing debootstrap" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  work=$(mktemp -d "${TMPDIR:-/var/tmp}/skiff-debian-python.XXXXXX")
  echo "debootstrap bookworm into $work/rootfs (from $mirror)" >&2
  if ! debootstrap --variant=minbase --include=python3,python3-pip \
      bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 40 "$work/debootstrap.log" >&2
    [ -f "$work/rootfs/debootstrap/debootstrap.log" ] && tail -n 40 "$work/rootfs/debootstrap/debootstrap.log" >&2
    echo "debootstrap failed" >&2
    exit 1
  fi
  # Keep the image small: no package caches or lists, no docs, man pages or translations.
  rm -rf "$work/rootfs/var/cache/apt/"*.bin "$work/rootfs/var/cache/apt/archives/"*.deb \
    "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/log/"*.log "$work/rootfs/debootstrap" \
    "$work/rootfs/usr/share/doc/"* "$work/rootfs/usr/share/man/"* "$work/rootfs/usr/share/info/"* \
    "$work/rootfs/usr/share/locale/"*
  find "$work/rootfs/usr/lib/python3"* -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
  tar -C "$work/rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' - "$base" >/dev/null
  cleanup
  work=""
  echo "built $base" >&2
fi

# The build context: the example's Dockerfile and app.py, and the host's CA bundle, which pip
# trusts while it installs (a network that inspects TLS needs its own CA; the final image does
# not contain the bundle).
work=$(mktemp -d "${TMPDIR:-/tmp}/skiff-python-lambda.XXXXXX")
cp examples/python-lambda/Dockerfile examples/python-lambda/app.py "$work/"
ca=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
if [ -s "$ca" ]; then cp "$ca" "$work/ca-certificates.crt"; else : >"$work/ca-certificates.crt"; fi
if ! docker build --quiet --label skiff.example=true -t "$image" "$work" >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  echo "docker build of $image failed" >&2
  exit 1
fi
echo "built $image"
