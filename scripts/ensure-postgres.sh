#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the test suite on 127.0.0.1 and print its URL.
# Installs Debian's postgresql package when missing and we are root on Debian/Ubuntu.
set -euo pipefail

port="${BACKENDAI_HUB_PG_PORT:-55432}"
dbname=backendai_hub_test
url="postgresql://postgres@127.0.0.1:${port}/${dbname}"

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

if ! bindir=$(find_bindir); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: installing postgresql from Debian's packages" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bindir=$(find_bindir)
  else
    echo "ensure-postgres: PostgreSQL is not installed. Install it (e.g. 'apt-get install postgresql'" \
         "as root) or set BACKENDAI_HUB_TEST_PG_URL to a server you own." >&2
    exit 1
  fi
fi

# PostgreSQL refuses to run as root: run the cluster as the 'postgres' user then.
if [ "$(id -u)" = 0 ]; then
  runas() { su -s /bin/sh postgres -c "$*"; }
  owner=postgres
else
  runas() { sh -c "$*"; }
  owner=$(id -un)
fi
data="${TMPDIR:-/tmp}/backendai-hub-pg-${port}"

if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
  :
else
  if [ ! -s "$data/PG_VERSION" ]; then
    rm -rf "$data"
    mkdir -p "$data"
    chown "$owner" "$data"
    chmod 700 "$data"
    runas "'$bindir/initdb' -D '$data' -U postgres -A trust --no-sync -E UTF8" >/dev/null
  fi
  runas "'$bindir/pg_ctl' -D '$data' -l '$data/server.log' -w -t 60 \
    -o \"-c listen_addresses=127.0.0.1 -p $port -k '$data' -c fsync=off -c max_connections=200\" start" >/dev/null
fi
if ! "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "select 1 from pg_database where datname='$dbname'" | grep -q 1; then
  "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$dbname"
fi
echo "$url"
