#!/bin/sh
# Start redis-sentinel for the compose `ha` profile (docs/redis-ha.md).
#
# Run by the sentinel-1..3 services (and by tests/faults/sentinels.py with
# short timings). Two users, passwords from the environment:
#
#   default  REDIS_SENTINEL_PASSWORD        every role: find the master, nothing else
#   admin    REDIS_SENTINEL_ADMIN_PASSWORD  the Sentinels among themselves, operators;
#            also the `sentinel` user they log in as on the data nodes (start.sh)
#
# The config is written on the first start only. Sentinel rewrites it with
# what it learns (the current master, epochs, the other Sentinels), and a
# restart must keep that: from a fresh config a Sentinel would again call the
# first master "master" after a failover. After changing a password, remove
# the Sentinels' volumes so the config is written again.
set -eu

: "${REDIS_SENTINEL_PASSWORD:?set REDIS_SENTINEL_PASSWORD (see .env.example)}"
: "${REDIS_SENTINEL_ADMIN_PASSWORD:?set REDIS_SENTINEL_ADMIN_PASSWORD (see .env.example)}"
dir="${SENTINEL_DIR:-/data}"
conf="$dir/sentinel.conf"
name="${REDIS_SENTINEL_MASTER:-mymaster}"

# Timings (why these values: docs/redis-ha.md "Failover timings").
down_after="${SENTINEL_DOWN_AFTER_MS:-5000}"
failover_timeout="${SENTINEL_FAILOVER_TIMEOUT_MS:-60000}"

if [ ! -s "$conf" ]; then
  umask 077
  cat >"$conf" <<EOF
port ${SENTINEL_PORT:-26379}
dir $dir
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
user default on >${REDIS_SENTINEL_PASSWORD} -@all +auth +hello +ping +sentinel|masters +sentinel|master +sentinel|get-master-addr-by-name +sentinel|sentinels +sentinel|replicas +sentinel|slaves
user admin on >${REDIS_SENTINEL_ADMIN_PASSWORD} ~* &* +@all
sentinel sentinel-user admin
sentinel sentinel-pass ${REDIS_SENTINEL_ADMIN_PASSWORD}
sentinel monitor $name ${SENTINEL_MONITOR:-redis 6379} ${SENTINEL_QUORUM:-2}
sentinel auth-user $name sentinel
sentinel auth-pass $name ${REDIS_SENTINEL_ADMIN_PASSWORD}
sentinel down-after-milliseconds $name $down_after
sentinel failover-timeout $name $failover_timeout
sentinel parallel-syncs $name 1
EOF
fi
exec redis-sentinel "$conf" "$@"
