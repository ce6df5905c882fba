"""The exactly-once marks protocol: every rule in one place (docs/architecture.md, "Exactly once").

A *mark* is the highest `seq` of one (source, sensor) that some party has
taken. Four parties keep one, each under one name:

- the **published mark** (Redis hash `<channel>:published`): the highest seq
  Redis accepted; a producer keeps its own copy of it per sensor, read back
  from its outbox at start (`Outbox.published_marks`);
- the **recorded mark** (hash `<channel>:recorded`): the highest seq stored
  in the history database, written by the recorder after each commit;
- the **hold position** (field `@pos` of the recorded hash): the stream time
  (ms) before which the recorder has stored every entry;
- a **high-water** mark (`HighWater`): what one consumer has already passed
  on (a web worker's hub, one client's resume, the recorder's batch).

The rules, each tested by name in tests/test_marks.py:

1. *Counting*: a producer numbers each sensor's readings 0, 1, 2, ... (a
   fresh outbox starts at the current time in ms), kept across restarts, so
   (source, sensor, seq) is unique. A reading without seq skips rules 2-7.
2. *Publish once*: publishing a seq at or below the published or the
   recorded mark is a repeat: nothing is added, the publish returns None.
3. *Forgotten*: a producer whose published mark is above both Redis marks
   sees Redis restarted empty: the publish fails with `Forgotten(mark)` and
   the producer re-sends, in order, every row above that mark.
4. *Recorded*: the recorder advances the recorded mark only after the rows
   are committed (and not past a gap, rule 9); when Redis comes back without
   the marks it restores them from the database (`store.high_water`).
5. *Producer may drop* a sent outbox row once its seq is at or below the
   recorded mark; a row sent more than `RESEND_GRACE` seconds ago whose seq
   is above the published mark was lost by Redis: it is sent again.
6. *Hold*: the publish script trims the stream at the retention but keeps
   entries from the hold position on (for at most the longest retention),
   so a stopped recorder loses nothing meanwhile.
7. *Hub may skip* an event whose stream id is not after the last one it
   passed on, or whose seq is not above its sensor's high-water mark (a
   producer re-sending after Redis came back empty).
8. *Refused*: the publish script takes nothing stamped far ahead of Redis's
   clock or numbered far beyond the marks (see PUBLISH_LUA).
9. *Gaps*: when the recorder stores a seq more than one above its mark, the
   seqs between were accepted by Redis but never reached it (the stream was
   trimmed under it: `XADD ... MAXLEN 0` with a producer's password). It
   holds the recorded mark below the gap and lowers the published mark to
   it, so the producer keeps those rows and, told Redis forgot them (rule
   3), re-sends them; the mark moves on when the gap is filled, or after
   `GAP_WAIT` seconds (then they are logged as lost: an outbox that dropped
   them, a counter that restarted).
10. *Audit*: a published mark the recorder saw, then read the whole stream
   past, that is still above the recorded mark names readings Redis says it
   took that the stream never gave (trimmed at its end, or a forged mark):
   the recorder lowers it to the recorded mark, unless it moved meanwhile,
   and the producer re-sends as in rule 9.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis

Key = tuple[str, str]

# The recorded-marks field that holds the hold position; "@" is outside the
# source charset, so it never collides with a "source/sensor" field.
HOLD_FIELD = "@pos"
# Seconds a sent row waits for its recorded mark before a missing published
# mark is believed (rule 5): the recorder writes marks after its batch.
RESEND_GRACE = 30.0
# Seconds a gap holds the recorded mark (rule 9): a producer re-sends within
# RESEND_GRACE plus its settle interval even when it publishes rarely.
GAP_WAIT = 120.0
# Most stored seqs above a gap remembered per sensor; past it the gap is given up.
GAP_SEEN_MAX = 10_000

# Rule 10: lower a published mark, but only from the value the audit saw.
# KEYS: published hash. ARGV: field, the value seen, the new value ("" = none).
LOWER_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
"""

# Rules 2, 3 and 6, atomically with the publish itself.
# KEYS: stream, published hash. ARGV: channel, reading JSON, retention ms,
# mark field ("" when the reading has no seq), seq, the caller's published
# mark ("" when it does not know), the longest retention ms, the most ms
# ahead, the largest seq jump, the recorded hash. The recorded hash is an
# argument, not a key: Redis grants a script's declared keys only with write
# access, and a producer must only read it (deploy/redis/start.sh). TIME
# makes the script non-deterministic, which Redis >= 5 replicates by
# effects; XADD ... MINID keeps at least the retention window.
# Rule 8 (refusals, before anything is written): a reading stamped more than
# MAX_AHEAD_S ahead of Redis's clock, or a seq more than MAX_SEQ_JUMP above
# the marks that is also beyond what a counter started from the clock in ms
# could reach: one such reading would otherwise become the mark and make
# every real reading of that sensor a "repeat".
PUBLISH_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ok, body = pcall(cjson.decode, ARGV[2])
if not ok or type(body) ~= 'table' or type(body.ts) ~= 'number' then
  return redis.error_reply('REFUSED the reading is not a JSON object with a numeric ts')
end
if body.ts * 1000 > now + tonumber(ARGV[8]) then
  return redis.error_reply('REFUSED ts is more than a day ahead of the Redis clock')
end
if ARGV[4] ~= '' then
  local last, raw = -1, '-1'
  for _, key in ipairs({KEYS[2], ARGV[10]}) do
    local v = redis.call('HGET', key, ARGV[4])
    if v and tonumber(v) > last then last, raw = tonumber(v), v end
  end
  local seq = tonumber(ARGV[5])
  if last >= seq then return false end
  if last >= 0 and seq > last + tonumber(ARGV[9]) and seq > now + tonumber(ARGV[8]) then
    return redis.error_reply('REFUSED seq jumps too far beyond the mark ' .. raw)
  end
  if ARGV[6] ~= '' and last < tonumber(ARGV[6]) then
    return redis.error_reply('FORGOTTEN ' .. raw)
  end
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
end
local minid = now - tonumber(ARGV[3])
local hold = tonumber(redis.call('HGET', ARGV[10], '@pos') or '')
if hold then minid = math.max(math.min(minid, hold), now - tonumber(ARGV[7])) end
local id = redis.call('XADD', KEYS[1], 'MINID', '~', minid, '*', 'r', ARGV[2])
redis.call('PUBLISH', ARGV[1],
  '{"data":' .. ARGV[2] .. ',"type":"reading","id":"' .. id .. '"}')
return id
"""


MAX_AHEAD_S = 86400
MAX_SEQ_JUMP = 1_000_000


class Refused(ValueError):
    """Rule 8: Redis refused a reading (far-future ts, or a seq far beyond the mark)."""


class Forgotten(Exception):
    """Rule 3: Redis no longer knows a reading the publisher had sent (it restarted empty)."""

    def __init__(self, mark: int) -> None:
        super().__init__(f"Redis forgot readings after seq {mark}")
        self.mark = mark  # the highest seq Redis still knows as published or recorded


def parse_forgotten(error: str) -> Forgotten | Refused | None:
    """The Forgotten (or Refused) a publish error reply stands for, or None for any other."""
    if error.startswith("REFUSED "):
        return Refused(error.removeprefix("REFUSED "))
    if not error.startswith("FORGOTTEN "):
        return None
    return Forgotten(int(error.split()[1]))


def mark_field(source: str, sensor: str) -> str:
    """The hash field of a (source, sensor) pair; '/' is outside both charsets."""
    return f"{source}/{sensor}"


def split_field(field: str) -> Key:
    """Inverse of `mark_field`."""
    source, _, sensor = field.partition("/")
    return source, sensor


def known_to_redis(published: Mapping[Key, int], key: Key) -> int:
    """Rule 5: the published mark of a sensor, -1 when Redis has none."""
    return published.get(key, -1)


def hold_position(last_delivered: str, first_pending: str | None) -> int:
    """Rule 6: the stream ms before which the recorder's group has stored everything."""
    return int((first_pending or last_delivered).split("-")[0])


class HighWater(dict[Key, int]):
    """One consumer's highest seq passed on per sensor (rules 4 and 7)."""

    __slots__ = ()

    def advance(self, key: Key, seq: int) -> bool:
        """Take `seq` if it is new (above the mark): True; a repeat: False."""
        if seq <= self.get(key, -1):
            return False
        self[key] = seq
        return True


@dataclass
class Gap:
    """Rule 9: one sensor's missing seqs, from `held` + 1 up to below the lowest in `seen`."""

    held: int  # every seq up to here is stored: the recorded mark while the gap is open
    since: float  # when it opened
    seen: set[int] = field(default_factory=set)  # stored seqs above `held`


class Gaps(dict[Key, Gap]):
    """Rule 9: the sensors whose stored seqs have a hole, and the recorded mark each holds."""

    __slots__ = ()

    def stored(self, key: Key, seq: int, mark: int | None, now: float) -> int | None:
        """Take a stored `seq` (`mark`: the highest before it); the held mark if a gap opened."""
        gap = self.get(key)
        if gap is None:
            if mark is None or seq <= mark + 1:
                return None
            self[key] = Gap(mark, now, {seq})
            return mark
        if seq > gap.held:
            gap.seen.add(seq)
        while gap.held + 1 in gap.seen:
            gap.held += 1
            gap.seen.discard(gap.held)
        if not gap.seen:
            del self[key]
        elif len(gap.seen) > GAP_SEEN_MAX:
            gap.since = -math.inf  # given up at the next expire
        return None

    def recorded(self, key: Key, mark: int) -> int:
        """The recorded mark of `key`: held below its gap, else the highest stored."""
        gap = self.get(key)
        return mark if gap is None else gap.held

    def expire(self, now: float, wait: float = GAP_WAIT) -> list[tuple[Key, int, int]]:
        """Give up gaps open longer than `wait`: (key, first missing, first stored after)."""
        gone = [(k, g.held + 1, min(g.seen)) for k, g in self.items() if now - g.since > wait]
        for key, _, _ in gone:
            del self[key]
        return gone


class MarkHashes:
    """The published and recorded marks and the hold position, as Redis keeps them."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.client = client
        self.published_key = f"{channel}:published"
        self.recorded_key = f"{channel}:recorded"

    def published(self) -> dict[Key, int]:
        """The highest seq Redis has accepted per (source, sensor)."""
        return self._read(self.published_key)

    def recorded(self) -> dict[Key, int]:
        """The highest seq the history database holds per (source, sensor)."""
        return self._read(self.recorded_key)

    def lower_published(self, marks: Mapping[Key, int]) -> None:
        """Rules 9: set published marks down to these (the producers re-send above them)."""
        if marks:
            mapping = {mark_field(*key): seq for key, seq in marks.items()}
            self.client.hset(self.published_key, mapping=mapping)

    def record(self, marks: Mapping[Key, int]) -> None:
        """Rule 4: raise recorded marks (call after the rows are committed)."""
        if marks:
            mapping = {mark_field(*key): seq for key, seq in marks.items()}
            self.client.hset(self.recorded_key, mapping=mapping)

    def hold(self) -> int | None:
        """Rule 6: the hold position, or None before the recorder set one."""
        raw = self.client.hget(self.recorded_key, HOLD_FIELD)
        return None if raw is None else int(raw)

    def set_hold(self, ms: int) -> None:
        """Rule 6: everything in the stream before `ms` is stored; the rest is held."""
        self.client.hset(self.recorded_key, HOLD_FIELD, ms)

    def _read(self, key: str) -> dict[Key, int]:
        # Only "source/sensor" fields are marks (the recorded hash also holds @pos).
        raw = self.client.hgetall(key)
        return {split_field(k.decode()): int(v) for k, v in raw.items() if b"/" in k}
