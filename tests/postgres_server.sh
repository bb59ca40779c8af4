#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, in a temporary directory on a loopback port (CI and developers
# run the same thing):
#   eval "$(tests/postgres_server.sh start)"   # exports SDPT_TEST_POSTGRES_URL and SDPT_TEST_POSTGRES_DIR
#   tests/postgres_server.sh stop "$SDPT_TEST_POSTGRES_DIR"
# Needs Debian's postgresql package (its binaries live in /usr/lib/postgresql/<version>/bin). As root the cluster
# runs as the postgres user (PostgreSQL refuses to run as root).
set -euo pipefail

bindir() {
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$found" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
  echo "$found"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "${1:-}" in
  start)
    bin=$(bindir)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/sdpt-postgres.XXXXXX")
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    port=$(free_port)
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-instructions >"$dir/initdb.log"
    # throwaway data: no fsync; sockets only in the cluster's own directory; TCP only on loopback
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
      "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres sdpt_test
    echo "export SDPT_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/sdpt_test"
    echo "export SDPT_TEST_POSTGRES_DIR=$dir"
    ;;
  stop)
    dir=${2:?usage: $0 stop DIR}
    [ -d "$dir/data" ] || exit 0
    as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
