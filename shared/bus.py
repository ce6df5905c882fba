"""The Redis bus: one atomic publish onto the channel and the capped stream.

The channel carries flask-sse's message format, so stock
``flask_sse.sse.publish`` publishers interoperate; the stream position is the
event id, which is what makes ``Last-Event-ID`` exact across web replicas.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from shared import redis_conn
from shared.reading import MAX_MESSAGE_BYTES, Reading, ReadingError
from shared.settings import Settings

# KEYS: stream, published-marks hash, recorded-marks hash (whose field @pos
# is the stream time before which the recorder has stored everything).
# ARGV: channel, reading JSON, retention ms, mark field ("" when the reading
# has no seq), seq, the seq the publisher last had accepted ("" when it does
# not know), the longest retention ms (how long unrecorded entries are held).
# A seq at or below either mark is a repeat. A last-accepted seq above both
# marks means Redis forgot what it accepted (restarted empty): refusing here,
# atomically, is what stops a newer reading from overtaking the lost ones.
# TIME makes the script non-deterministic, which Redis >= 5 replicates by
# effects; XADD ... MINID keeps at least the retention window.
_PUBLISH_LUA = """
if ARGV[4] ~= '' then
  local last, raw = -1, '-1'
  for _, key in ipairs({KEYS[2], KEYS[3]}) do
    local v = redis.call('HGET', key, ARGV[4])
    if v and tonumber(v) > last then last, raw = tonumber(v), v end
  end
  if last >= tonumber(ARGV[5]) then return false end
  if ARGV[6] ~= '' and last < tonumber(ARGV[6]) then
    return redis.error_reply('FORGOTTEN ' .. raw)
  end
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minid = now - tonumber(ARGV[3])
-- Hold what the recorder has not read yet (up to the longer limit), so a
-- recorder stopped for longer than the retention still loses nothing.
local hold = tonumber(redis.call('HGET', KEYS[3], '@pos') or '')
if hold then minid = math.max(math.min(minid, hold), now - tonumber(ARGV[7])) end
local id = redis.call('XADD', KEYS[1], 'MINID', '~', minid, '*', 'r', ARGV[2])
redis.call('PUBLISH', ARGV[1],
  '{"data":' .. ARGV[2] .. ',"type":"reading","id":"' .. id .. '"}')
return id
"""
# The recorded-marks field that holds the recorder's stream position; "@" is
# outside the source charset, so it never collides with a "source/sensor".
HOLD_FIELD = "@pos"
_MESSAGE_KEYS = frozenset({"data", "type", "id", "retry"})
# Stream ids are Redis's clock in ms; a day covers any skew between hosts.
MAX_ID_AHEAD = 86400


class Forgotten(Exception):
    """Redis no longer knows a reading the publisher had sent (it restarted empty)."""

    def __init__(self, mark: int) -> None:
        super().__init__(f"Redis forgot readings after seq {mark}")
        self.mark = mark  # the highest seq Redis still knows as published or recorded


@dataclass(frozen=True, slots=True)
class Event:
    """A reading as it travels: with its stream id, or None if published stock."""

    id: str | None
    reading: Reading


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """Order stream ids numerically ("ms-seq"); ValueError if malformed."""
    ms, _, seq = stream_id.partition("-")
    # isascii: str.isdigit() is also true for "²" and Arabic-Indic digits, which Redis refuses.
    if not (ms + seq).isascii() or not ms.isdigit() or (seq and not seq.isdigit()):
        raise ValueError(f"not a stream id: {stream_id!r:.40}")
    if len(ms) > 16 or len(seq) > 16:
        raise ValueError(f"not a stream id: {stream_id!r:.40}")
    return int(ms), int(seq or 0)


def parse_message(data: str | bytes) -> Event:
    """Validate one channel message (flask-sse format); raise ReadingError."""
    if len(data) > MAX_MESSAGE_BYTES + 256:
        raise ReadingError("message is too large")
    try:
        msg = json.loads(data, parse_constant=_refuse)
    except (ValueError, RecursionError) as exc:
        raise ReadingError(f"message is not JSON: {exc}") from None
    if not isinstance(msg, dict) or not set(msg) <= _MESSAGE_KEYS or "data" not in msg:
        raise ReadingError("message must be {data, type, id} as flask-sse sends")
    if msg.get("type", "reading") != "reading":
        raise ReadingError(f"message type {str(msg.get('type'))!r:.40} is not 'reading'")
    event_id = msg.get("id")
    if event_id is not None:
        try:
            key = stream_id_key(event_id) if isinstance(event_id, str) else stream_id_key("x")
        except ValueError:
            raise ReadingError("message id is not a stream id") from None
        # An id from the future would become the hub's high-water mark and
        # make every real event after it look like a duplicate.
        if key[0] > (time.time() + MAX_ID_AHEAD) * 1000:
            raise ReadingError("message id is a stream id from the future")
    return Event(event_id, Reading.from_dict(msg["data"]))


def _refuse(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def connect(url: str, **kwargs: object) -> redis.Redis:
    """A client of the server at `url` (see `shared.redis_conn.connect`)."""
    return redis_conn.connect(url, **kwargs)


class Bus:
    """Publish and replay readings on one channel and its stream."""

    def __init__(
        self,
        client: redis.Redis,
        channel: str = "readings",
        retention: int = 3600,
        max_retention: int = 86400,
    ):
        self.client = client
        self.channel = channel
        self.stream = f"{channel}:stream"
        self.published_key = f"{channel}:published"
        self.recorded_key = f"{channel}:recorded"
        self.errors_key = f"{channel}:errors"
        self.recorder_key = f"{channel}:recorder"
        self.retention_ms = retention * 1000
        self.max_retention_ms = max(retention, max_retention) * 1000
        self._publish = client.register_script(_PUBLISH_LUA)

    @classmethod
    def for_settings(cls, client: redis.Redis, settings: Settings) -> Bus:
        """The bus of the configured channel, with its retention limits."""
        return cls(
            client, settings.redis_channel, settings.stream_retention, settings.stream_max_retention
        )

    def publish(self, reading: Reading, *, expect: int | None = None) -> str | None:
        """Publish atomically; the stream id, or None if (source, sensor, seq) was seen.

        `expect` is the seq of this sensor that Redis last accepted from the
        caller; if Redis knows less, it was emptied and Forgotten is raised.
        """
        mark = "" if reading.seq is None else mark_field(reading.source, reading.sensor)
        try:
            result = self._publish(
                keys=[self.stream, self.published_key, self.recorded_key],
                args=[
                    self.channel,
                    reading.to_json(),
                    self.retention_ms,
                    mark,
                    reading.seq or 0,
                    "" if expect is None else expect,
                    self.max_retention_ms,
                ],
            )
        except redis.ResponseError as exc:
            if not str(exc).startswith("FORGOTTEN "):
                raise
            raise Forgotten(int(str(exc).split()[1])) from None
        return _text(result) if result else None

    def read_after(self, last_id: str, count: int = 1000) -> list[Event]:
        """Stream entries strictly after `last_id`, oldest first; bad ones skipped."""
        rows = self.client.xrange(self.stream, min=f"({last_id}", count=count)
        return [ev for ev in (_entry_event(i, f) for i, f in rows) if ev is not None]

    def first_id(self) -> str | None:
        """The oldest id the stream still holds, or None when it is empty."""
        rows = self.client.xrange(self.stream, count=1)
        return _text(rows[0][0]) if rows else None

    def last_id(self) -> str | None:
        """The newest id in the stream, or None when it is empty."""
        rows = self.client.xrevrange(self.stream, count=1)
        return _text(rows[0][0]) if rows else None

    def recorded_marks(self) -> dict[tuple[str, str], int]:
        """The recorder's high-water seq per (source, sensor)."""
        return self._marks(self.recorded_key)

    def set_recorded_position(self, ms: int) -> None:
        """Everything in the stream before `ms` is stored: the rest is held for us."""
        self.client.hset(self.recorded_key, HOLD_FIELD, ms)

    def published_marks(self) -> dict[tuple[str, str], int]:
        """The highest seq Redis has accepted per (source, sensor)."""
        return self._marks(self.published_key)

    def _marks(self, key: str) -> dict[tuple[str, str], int]:
        # Only "source/sensor" fields are marks (the recorded hash also holds @pos).
        raw = self.client.hgetall(key)
        return {split_mark(_text(k)): int(v) for k, v in raw.items() if b"/" in k}

    def recorder_status(self) -> dict[str, float]:
        """The recorder's last report (lag, lag_s, pending, inserted, ts); {} if none."""
        out = {}
        for key, value in self.client.hgetall(self.recorder_key).items():
            try:
                out[_text(key)] = float(value)
            except ValueError:
                continue
        return out

    def report_error(self, source: str, sensor: str, error: str | None, ts: float) -> None:
        """Record (or clear, with None) the last error of a sensor for /api/sensors."""
        field = mark_field(source, sensor)
        if error is None:
            self.client.hdel(self.errors_key, field)
        else:
            self.client.hset(self.errors_key, field, json.dumps({"error": error, "ts": ts}))

    def sensor_errors(self) -> dict[tuple[str, str], dict[str, object]]:
        """Every sensor's last error, as producers reported it."""
        out = {}
        for key, value in self.client.hgetall(self.errors_key).items():
            try:
                out[split_mark(_text(key))] = json.loads(value)
            except ValueError:
                continue
        return out


def mark_field(source: str, sensor: str) -> str:
    """The hash field of a (source, sensor) pair; '/' is outside both charsets."""
    return f"{source}/{sensor}"


def split_mark(field: str) -> tuple[str, str]:
    """Inverse of `mark_field`."""
    source, _, sensor = field.partition("/")
    return source, sensor


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry_event(entry_id: bytes | str, fields: dict) -> Event | None:
    raw = fields.get(b"r", fields.get("r"))
    try:
        return Event(_text(entry_id), Reading.from_json(raw or b""))
    except ReadingError:
        return None
