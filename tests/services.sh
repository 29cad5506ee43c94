#!/usr/bin/env bash
# Run a command against throwaway PostgreSQL and Redis servers on free loopback ports, then tear
# them down. Installs the Debian packages that are missing when run as root (CI, this machine
# kind); otherwise stops and says what to install.
# Usage: tests/services.sh COMMAND [ARGS...]
set -euo pipefail

need_packages=()
pg_bin=""
for dir in /usr/lib/postgresql/*/bin; do
  [ -x "$dir/initdb" ] && pg_bin="$dir"
done
[ -n "$pg_bin" ] || need_packages+=(postgresql)
command -v redis-server >/dev/null || need_packages+=(redis-server)
if [ "${ARBITER_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null || need_packages+=(chromium)
  command -v chromedriver >/dev/null || need_packages+=(chromium-driver)
fi
if [ ${#need_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "services: installing ${need_packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
    for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && pg_bin="$dir"; done
  else
    echo "services: please install: ${need_packages[*]} (e.g. sudo apt-get install ${need_packages[*]})" >&2
    exit 2
  fi
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/arbiter-services.XXXXXX)
chmod 755 "$work"
pg_port=$(free_port)
redis_port=$(free_port)

# PostgreSQL refuses to run as root; run it as the postgres system user when we are root.
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --no-create-home postgres
fi
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"

teardown() {
  run_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
  [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap teardown EXIT INT TERM

run_pg "$pg_bin/initdb" -D "$work/pg/data" -U arbiter --auth=trust -E UTF8 --no-sync >/dev/null
# Durability is pointless for a throwaway test database; these make it several times faster.
run_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -w -l "$work/pg/log" \
  -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null
psql -h 127.0.0.1 -p "$pg_port" -U arbiter -d postgres -qc "CREATE DATABASE arbiter" >/dev/null

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

export DATABASE_URL="postgres://arbiter@127.0.0.1:$pg_port/arbiter"
export CELERY_BROKER_URL="redis://127.0.0.1:$redis_port/0"
export ARBITER_TEST_SERVICES=1
echo "services: PostgreSQL on :$pg_port, Redis on :$redis_port"
"$@"
