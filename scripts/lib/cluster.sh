# Throwaway PostgreSQL clusters for scripts (demo, benchmarks). Source this file.
# start_cluster NAME [postgresql.conf lines...]  -> sets NAME_PORT, NAME_DIR; stopped by stop_clusters.
PG_MAJOR=${PG_MAJOR:-15}
PG_BIN=${PGMOVE_PG_BINDIR:-/usr/lib/postgresql/$PG_MAJOR/bin}
_CLUSTERS=()

_as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_cluster() {
  local name=$1; shift
  local dir
  dir=$(mktemp -d "/tmp/pgmove-$name-XXXXXX")
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir"
  local port
  port=$(_free_port)
  _as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    echo "max_connections = 100"
    echo "wal_level = logical"
    echo "max_replication_slots = 10"
    echo "max_wal_senders = 10"
    for line in "$@"; do echo "$line"; done
  } >"$dir/data/postgresql.auto.conf"
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir/data/postgresql.auto.conf"
  _as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
  _CLUSTERS+=("$dir")
  printf -v "${name}_PORT" '%s' "$port"
  printf -v "${name}_DIR" '%s' "$dir"
}

# restart_cluster NAME: a fast stop and a start of the cluster start_cluster NAME made (its
# postgresql.auto.conf read again).
restart_cluster() {
  local dir_var="${1}_DIR"
  local dir=${!dir_var}
  _as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null \
    || { tail -n 20 "$dir/server.log" >&2; return 1; }
}

# recreate_db NAME DB: drops DB on cluster NAME (WITH (FORCE)) and creates it empty again.
# With pglogical in shared_preload_libraries, DROP DATABASE hangs on PostgreSQL 15 (its
# supervisor holds the drop back): the cluster is then restarted without it for the drop, and
# with it again after.
recreate_db() {
  local name=$1 db=$2 port_var="${1}_PORT" preload
  local port=${!port_var}
  preload=$(psql_on "$port" postgres -At -c "SHOW shared_preload_libraries")
  if [[ -n $preload ]]; then
    psql_on "$port" postgres -c "ALTER SYSTEM RESET shared_preload_libraries" >/dev/null
    restart_cluster "$name"
  fi
  psql_on "$port" postgres >/dev/null <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $db WITH (FORCE);
CREATE DATABASE $db;
SQL
  if [[ -n $preload ]]; then
    psql_on "$port" postgres -c "ALTER SYSTEM SET shared_preload_libraries = '$preload'" >/dev/null
    restart_cluster "$name"
  fi
}

stop_clusters() {
  local dir
  for dir in "${_CLUSTERS[@]}"; do
    _as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
  done
  _CLUSTERS=()
}

# psql_on PORT DB [psql args...]
psql_on() {
  local port=$1 db=$2; shift 2
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"
}
