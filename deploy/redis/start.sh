#!/bin/sh
# Start redis-server with one ACL user per role, passwords from the environment.
#
# Run by the compose `redis` service (and by tests/test_deploy_redis_acl.py with
# extra arguments such as --port). Passwords arrive as environment variables so
# none is written into an image, a committed file or a config on disk.
#
#   default   REDIS_PASSWORD            admin: redis-cli, backups, debugging
#   producer  REDIS_PRODUCER_PASSWORD   publish readings (script, stream, channel);
#                                       subscribe (the MQTT bridge's Home Assistant side)
#   web       REDIS_WEB_PASSWORD        read the stream and subscribe, nothing else
#   recorder  REDIS_RECORDER_PASSWORD   consumer group on the stream, delivery marks,
#                                       alert transitions on the channel
#
# Every key the app uses is "<REDIS_CHANNEL>:<name>" (see shared/bus.py), so one
# channel name scopes every user. `%R~` (Redis >= 7.0) makes a key read-only
# for a user. The producer's publish script takes the recorder's marks as a
# key, and Redis grants a script's keys only with read and write access, so
# the producer holds write access to them too: its limit is the four keys and
# the commands below, not read-only marks.
set -eu

: "${REDIS_PASSWORD:?set REDIS_PASSWORD (see .env.example)}"
: "${REDIS_PRODUCER_PASSWORD:?set REDIS_PRODUCER_PASSWORD (see .env.example)}"
: "${REDIS_WEB_PASSWORD:?set REDIS_WEB_PASSWORD (see .env.example)}"
: "${REDIS_RECORDER_PASSWORD:?set REDIS_RECORDER_PASSWORD (see .env.example)}"
ch="${REDIS_CHANNEL:-readings}"

# AOF persistence (fsync every second) keeps the stream and the delivery marks
# over a restart; losing them anyway loses no reading (docs/architecture.md, "Exactly once"), it
# only makes producers re-send from their outboxes.
exec redis-server \
  --dir "${REDIS_DATA_DIR:-/data}" \
  --appendonly yes \
  --appendfsync everysec \
  --user default on ">${REDIS_PASSWORD}" '~*' '&*' '+@all' \
  --user producer on ">${REDIS_PRODUCER_PASSWORD}" resetchannels "&${ch}" \
    "~${ch}:stream" "~${ch}:published" "~${ch}:recorded" "~${ch}:errors" \
    -@all +@connection +evalsha +eval '+script|load' '+script|exists' \
    +time +xadd +publish +hget +hset +hdel +hgetall +xrange +xrevrange \
    +subscribe +unsubscribe \
  --user web on ">${REDIS_WEB_PASSWORD}" resetchannels "&${ch}" "%R~${ch}:*" \
    -@all +@connection +@read -@dangerous +subscribe +unsubscribe \
  --user recorder on ">${REDIS_RECORDER_PASSWORD}" resetchannels "&${ch}" "~${ch}:*" \
    -@all +@connection +@read +@write +@stream +@hash -@dangerous -@scripting \
    +subscribe +unsubscribe +publish +evalsha +eval '+script|load' '+script|exists' \
  "$@"
