#!/usr/bin/env bash
# Builds, with nothing pulled, the two images besides skiff's own that deploy/stack.yml runs,
# from this machine's Debian packages (installed when missing, as root):
#
#   skiff/postgres:15   PostgreSQL 15 (Debian's postgresql-15): its programs, the libraries
#                       they load, its share files and zoneinfo, busybox for the entry point.
#                       It takes the official image's settings: POSTGRES_USER, POSTGRES_PASSWORD
#                       (or POSTGRES_PASSWORD_FILE), POSTGRES_DB, PGDATA
#                       (/var/lib/postgresql/data); on an empty data directory it makes the
#                       cluster, the user and the database, then listens on port 5432 with
#                       password (scram-sha-256) authentication from any address.
#   skiff/registry:2    Debian's docker-registry (the distribution registry), listening on port
#                       5000 with its storage in /var/lib/registry, as the official image does.
#
#   scripts/build-stack-images.sh
#
# Where images can be pulled, the stack's defaults (postgres:15, registry:2) need none of this:
# these stand in for them (SKIFF_POSTGRES_IMAGE, SKIFF_REGISTRY_IMAGE) on a machine that
# cannot pull. Idempotent: an image that exists is kept (remove it to rebuild).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

log() { echo "stack-images: $*" >&2; }
die() { echo "stack-images: error: $*" >&2; exit 1; }

# need PROGRAM PACKAGE: installs PACKAGE unless PROGRAM is there.
need() {
  [ -e "$1" ] && return 0
  [ "$(id -u)" = 0 ] || die "$1 is missing; install Debian's $2"
  log "installing $2"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$2" >/dev/null; }
}

# copy_with_libs DIR FILE...: copies each FILE and every shared library it loads (ldd) into DIR
# under the same paths, symbolic links resolved.
copy_with_libs() {
  local dir=$1 f lib
  shift
  for f in "$@"; do
    mkdir -p "$dir$(dirname "$f")"
    cp -L "$f" "$dir$f"
    for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true); do
      [ -e "$dir$lib" ] && continue
      mkdir -p "$dir$(dirname "$lib")"
      cp -L "$lib" "$dir$lib"
    done
  done
}

mkdir -p "$root/target"
exec 9>"$root/target/.build-stack-images.lock"
flock 9

ctx=""
trap '[ -z "$ctx" ] || rm -rf "$ctx"' EXIT

build_postgres() {
  local tag=skiff/postgres:15 bin=/usr/lib/postgresql/15/bin
  if docker image inspect "$tag" >/dev/null 2>&1; then log "$tag exists"; return 0; fi
  need "$bin/postgres" postgresql-15
  need /bin/busybox busybox-static
  ctx=$(mktemp -d)
  local r=$ctx/root
  copy_with_libs "$r" "$bin/postgres" "$bin/initdb" "$bin/pg_ctl" "$bin/psql" "$bin/pg_isready" \
    $(find /usr/lib/postgresql/15/lib -name '*.so' ! -name 'llvmjit*')
  cp -a /usr/share/postgresql/15/. "$r/usr/share/postgresql/15/" 2>/dev/null \
    || { mkdir -p "$r/usr/share/postgresql/15" && cp -a /usr/share/postgresql/15/. "$r/usr/share/postgresql/15/"; }
  rm -rf "$r/usr/share/postgresql/15/man"
  mkdir -p "$r/usr/share" "$r/bin" "$r/etc" "$r/tmp" "$r/var/lib/postgresql/data" "$r/usr/local/bin"
  cp -a /usr/share/zoneinfo "$r/usr/share/zoneinfo"
  cp /bin/busybox "$r/bin/busybox"
  for a in sh cat mkdir rm chmod printf grep; do ln -s busybox "$r/bin/$a"; done
  chmod 1777 "$r/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\npostgres:x:999:\n' >"$r/etc/group"
  cat >"$r/usr/local/bin/docker-entrypoint.sh" <<'ENTRY'
#!/bin/sh
# The official postgres image's first-start contract, for skiff's stack: on an empty data
# directory make the cluster with POSTGRES_USER (default postgres) as its superuser and
# POSTGRES_PASSWORD (or the file POSTGRES_PASSWORD_FILE names) as its password, and the
# database POSTGRES_DB (default: the user's name); then run the server in the foreground.
set -eu
export PATH=/usr/lib/postgresql/15/bin:/bin
PGDATA=${PGDATA:-/var/lib/postgresql/data}
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE"); fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "error: set POSTGRES_PASSWORD" >&2; exit 1; }
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  pw=/tmp/.pgpass-init
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 \
    --locale=C --encoding=UTF8 >/dev/null
  rm -f "$pw"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    printf 'CREATE DATABASE "%s" OWNER "%s";\n' "$db" "$user" \
      | postgres --single -j -D "$PGDATA" postgres >/dev/null
  fi
  echo "postgres: made the cluster in $PGDATA, user $user, database $db"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
ENTRY
  chmod 0755 "$r/usr/local/bin/docker-entrypoint.sh"
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY --chown=999:999 root /
ENV PGDATA=/var/lib/postgresql/data
USER 999:999
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
DOCKERFILE
  docker build --quiet --label skiff.image=true -t "$tag" "$ctx" >/dev/null 2>&1 \
    || docker build --label skiff.image=true -t "$tag" "$ctx"
  rm -rf "$ctx"
  ctx=""
  log "built $tag"
}

build_registry() {
  local tag=skiff/registry:2
  if docker image inspect "$tag" >/dev/null 2>&1; then log "$tag exists"; return 0; fi
  need /usr/bin/docker-registry docker-registry
  ctx=$(mktemp -d)
  local r=$ctx/root
  copy_with_libs "$r" /usr/bin/docker-registry
  mkdir -p "$r/etc/docker/registry" "$r/var/lib/registry" "$r/tmp"
  chmod 1777 "$r/tmp"
  cat >"$r/etc/docker/registry/config.yml" <<'YML'
version: 0.1
log:
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
YML
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root /
EXPOSE 5000
ENTRYPOINT ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]
DOCKERFILE
  docker build --quiet --label skiff.image=true -t "$tag" "$ctx" >/dev/null 2>&1 \
    || docker build --label skiff.image=true -t "$tag" "$ctx"
  rm -rf "$ctx"
  ctx=""
  log "built $tag"
}

build_postgres
build_registry
echo "skiff/postgres:15 skiff/registry:2"
