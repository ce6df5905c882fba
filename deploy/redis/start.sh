#!/bin/sh
# Start redis-server with one ACL user per role, passwords from the environment.
#
# Run by the compose `redis` service (and by tests/test_deploy_redis_acl.py with
# extra arguments such as --port). Passwords arrive as environment variables so
# none is written into an image, a committed file or a config on disk.
#
#   default   REDIS_PASSWORD            admin: redis-cli, backups, debugging
#   producer  REDIS_PRODUCER_PASSWORD   publish readings (script, stream, channel);
#                                       subscribe (the MQTT bridge's Home Assistant side);
#                                       the MQTT bridge's counters (<ch>:mqtt:*)
#   web       REDIS_WEB_PASSWORD        read the stream and subscribe; write only its
#                                       metrics hash and the login keys (<ch>:auth:*)
#   recorder  REDIS_RECORDER_PASSWORD   consumer group on the stream, delivery marks,
#                                       alert transitions on the channel
#   replication  REDIS_REPLICATION_PASSWORD     (optional) replicas syncing from it
#   sentinel     REDIS_SENTINEL_ADMIN_PASSWORD  (optional) Sentinels watching it
#
# Every key the app uses is "<REDIS_CHANNEL>:<name>" (see shared/bus.py), so one
# channel name scopes every user. `%R~` (Redis >= 7.0) makes a key read-only
# for a user. The producer runs the publish script (EVALSHA) but cannot load or write
# scripts of its own (no EVAL, no SCRIPT LOAD: the recorder loads it), cannot
# read the stream (no XRANGE/XREAD), cannot touch other clients (no CLIENT
# KILL/PAUSE) and only reads the recorded marks. Redis checks a script's
# commands against the caller's ACL, so XADD and HSET stay granted: a stolen
# producer password can still trim the stream or move published marks; the
# recorder notices either and producers re-send (docs/security.md, "Threat model").
set -eu

: "${REDIS_PASSWORD:?set REDIS_PASSWORD (see .env.example)}"
: "${REDIS_PRODUCER_PASSWORD:?set REDIS_PRODUCER_PASSWORD (see .env.example)}"
: "${REDIS_WEB_PASSWORD:?set REDIS_WEB_PASSWORD (see .env.example)}"
: "${REDIS_RECORDER_PASSWORD:?set REDIS_RECORDER_PASSWORD (see .env.example)}"
ch="${REDIS_CHANNEL:-readings}"

# High availability (docs/redis-ha.md), all optional. Any node may be master
# after a failover, so every node gets the same users and replicates as
# `replication` itself; the Sentinels log in as `sentinel`.
if [ -n "${REDIS_SENTINEL_ADMIN_PASSWORD:-}" ]; then
  set -- --user sentinel on ">${REDIS_SENTINEL_ADMIN_PASSWORD}" \
    resetchannels '&__sentinel__:hello' -@all +multi +exec +slaveof +replicaof +ping \
    +info +role +publish +subscribe '+config|rewrite' '+client|setname' '+client|kill' \
    '+script|kill' "$@"
fi
if [ -n "${REDIS_REPLICATION_PASSWORD:-}" ]; then
  set -- --user replication on ">${REDIS_REPLICATION_PASSWORD}" -@all +psync +replconf +ping \
    --masteruser replication --masterauth "${REDIS_REPLICATION_PASSWORD}" "$@"
fi
# The role: whatever the Sentinels say (a node back after a failover must
# not start as a second master), else REDIS_REPLICA_OF (host:port), else master.
me="${REDIS_ANNOUNCE_HOST:-}:${REDIS_PORT:-6379}"
master="${REDIS_REPLICA_OF:-}"
for s in $(echo "${REDIS_SENTINELS:-}" | tr ',' ' '); do
  answer=$(REDISCLI_AUTH="${REDIS_SENTINEL_PASSWORD:-}" timeout 3 redis-cli --no-auth-warning \
    -h "${s%:*}" -p "${s##*:}" --raw SENTINEL get-master-addr-by-name \
    "${REDIS_SENTINEL_MASTER:-mymaster}" 2>/dev/null | tr '\n' ':') || continue
  case "$answer" in *[!:]*:*[0-9]:) master="${answer%:}"; break ;; esac
done
[ "$master" = "$me" ] && master=""
[ -n "$master" ] && set -- --replicaof "${master%:*}" "${master##*:}" "$@"
[ -n "${REDIS_ANNOUNCE_HOST:-}" ] && set -- --replica-announce-ip "$REDIS_ANNOUNCE_HOST" "$@"

# AOF persistence (fsync every second) keeps the stream and the delivery marks
# over a restart; losing them anyway loses no reading (docs/architecture.md, "Exactly once"), it
# only makes producers re-send from their outboxes.
exec redis-server \
  --port "${REDIS_PORT:-6379}" \
  --dir "${REDIS_DATA_DIR:-/data}" \
  --appendonly yes \
  --appendfsync everysec \
  --user default on ">${REDIS_PASSWORD}" '~*' '&*' '+@all' \
  --user producer on ">${REDIS_PRODUCER_PASSWORD}" resetchannels "&${ch}" \
    "~${ch}:stream" "~${ch}:published" "%R~${ch}:recorded" "~${ch}:errors" "~${ch}:mqtt:*" \
    -@all +hello +auth +ping +select +reset '+client|setname' '+client|id' \
    +evalsha '+script|exists' \
    +time +xadd +publish +hget +hset +hdel +hgetall +subscribe +unsubscribe \
  --user web on ">${REDIS_WEB_PASSWORD}" resetchannels "&${ch}" "%R~${ch}:*" \
    "%RW~${ch}:metrics:*" "%RW~${ch}:auth:*" \
    -@all +@connection +@read -@dangerous +subscribe +unsubscribe \
    +hset +expire +set +incr +del \
  --user recorder on ">${REDIS_RECORDER_PASSWORD}" resetchannels "&${ch}" "~${ch}:*" \
    -@all +@connection +@read +@write +@stream +@hash -@dangerous -@scripting \
    +subscribe +unsubscribe +publish +evalsha +eval '+script|load' '+script|exists' \
  "$@"
