#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, from Debian's postgresql package.
#
#   scripts/postgres.sh start    makes a cluster in a fresh temporary directory, listening on
#                                a free loopback port (from 55432 up) with trust
#                                authentication, and prints "URL DIRECTORY"; for tests it
#                                turns fsync and synchronous commits off
#   scripts/postgres.sh start --durable   the same with PostgreSQL's durable defaults
#                                (for benchmarks)
#   scripts/postgres.sh stop DIR stops the cluster of DIR and removes the directory
#
# As root, the cluster runs as the postgres user (initdb refuses root).
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
as_owner=()
if [ "$(id -u)" = 0 ]; then
  as_owner=(runuser -u postgres --)
fi

case "${1:-}" in
  start)
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
      echo "error: PostgreSQL is not installed (apt-get install postgresql)" >&2
      exit 1
    fi
    dir=$(mktemp -d /tmp/skiff-postgres.XXXXXX)
    chmod 0755 "$dir"
    [ ${#as_owner[@]} -eq 0 ] || chown postgres: "$dir"
    "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    settings="-c max_connections=300"
    if [ "${2:-}" != "--durable" ]; then
      settings="$settings -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    for port in $(seq 55432 55531); do
      if "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $settings" \
        start >/dev/null 2>&1; then
        echo "postgres://postgres@127.0.0.1:$port/postgres $dir"
        exit 0
      fi
    done
    echo "error: PostgreSQL did not start on any port from 55432 to 55531; see $dir/server.log" >&2
    exit 1
    ;;
  stop)
    dir=${2:?usage: postgres.sh stop DIR}
    case "$dir" in /tmp/skiff-postgres.*) ;; *) echo "error: not a cluster of this script: $dir" >&2; exit 1 ;; esac
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
