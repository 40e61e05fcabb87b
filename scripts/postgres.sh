#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, from Debian's postgresql package.
#
#   scripts/postgres.sh start    makes a cluster in a fresh temporary directory, listening on
#                                a free loopback port (from 55432 up) with trust
#                                authentication, and prints "URL DIRECTORY"; for tests it
#                                turns fsync and synchronous commits off
#   scripts/postgres.sh start --durable   the same with PostgreSQL's durable defaults
#                                (for benchmarks)
#   scripts/postgres.sh start --listen ADDRS --trust CIDR
#                                listens on ADDRS (comma-separated, e.g. 127.0.0.1,10.231.0.1)
#                                instead of loopback only, and trusts clients from CIDR
#                                (repeatable; e.g. the Swarm nodes of scripts/swarm.sh,
#                                10.231.0.0/16); the URL printed is still the loopback one
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
    shift
    durable=false listen=127.0.0.1 trusted=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --durable) durable=true ;;
        --listen) listen=${2:?usage: postgres.sh start --listen ADDRS}; shift ;;
        --trust) trusted+=("${2:?usage: postgres.sh start --trust CIDR}"); shift ;;
        *) echo "error: unknown option $1" >&2; exit 2 ;;
      esac
      shift
    done
    dir=$(mktemp -d /tmp/skiff-postgres.XXXXXX)
    chmod 0755 "$dir"
    [ ${#as_owner[@]} -eq 0 ] || chown postgres: "$dir"
    "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    for cidr in ${trusted[@]+"${trusted[@]}"}; do
      echo "host all all $cidr trust" >>"$dir/data/pg_hba.conf"
    done
    settings="-c max_connections=300"
    if [ "$durable" = false ]; then
      settings="$settings -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    for port in $(seq 55432 55531); do
      if "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-p $port -k $dir -c listen_addresses=$listen $settings" \
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
    echo "usage: $0 start [--durable] [--listen ADDRS] [--trust CIDR]... | stop DIR" >&2
    exit 2
    ;;
esac
