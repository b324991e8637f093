#!/usr/bin/env bash
# One command to a running single-node memsy on http://127.0.0.1:8080:
# installs what is missing, builds, makes sure NATS (JetStream) and Redis
# answer on their standard ports (starting local ones under ./data if not),
# creates an admin API key on first run (kept in ./data/admin.key) and runs
# `memsy serve`. Extra arguments go to `memsy serve`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --locked -p memsy
memsy="$CARGO_TARGET_DIR/release/memsy"
mkdir -p data

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
nats_url="${MEMSY__NATS__URL:-nats://127.0.0.1:4222}"
redis_url="${MEMSY__REDIS__URL:-redis://127.0.0.1:6379}"
if [ -z "${MEMSY__NATS__URL:-}" ] && ! port_open 4222; then
  echo "serve: starting nats-server (JetStream) on 127.0.0.1:4222, store in data/nats" >&2
  # setup.sh's nats-server first (see there), else the system's.
  nats="$root/.venv/bin/nats-server"
  [ -x "$nats" ] || nats="$(command -v nats-server || echo /usr/sbin/nats-server)"
  "$nats" -a 127.0.0.1 -p 4222 -js -sd "$root/data/nats" -l "$root/data/nats.log" &
fi
if [ -z "${MEMSY__REDIS__URL:-}" ] && ! port_open 6379; then
  echo "serve: starting redis-server on 127.0.0.1:6379" >&2
  # Durable: event states survive a restart (append-only file, synced every second).
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly yes --appendfsync everysec --dir "$root/data" --logfile "$root/data/redis.log"
fi
for _ in $(seq 1 100); do port_open 4222 && port_open 6379 && break; sleep 0.1; done

if [ ! -s data/admin.key ]; then
  MEMSY__NATS__URL="$nats_url" "$memsy" keys create --org default --scopes read,write,admin --name admin > data/admin.key
  chmod 600 data/admin.key
fi
echo "serve: API key (org 'default', all scopes): $(cat data/admin.key)" >&2
echo "serve: SDK base_url: http://127.0.0.1:8080/v1" >&2
MEMSY__NATS__URL="$nats_url" MEMSY__REDIS__URL="$redis_url" exec "$memsy" serve "$@"
