"""The Redis bus: one atomic publish onto the channel and the capped stream.

The channel carries flask-sse's message format, so stock
``flask_sse.sse.publish`` publishers interoperate; the stream position is the
event id, which is what makes ``Last-Event-ID`` exact across web replicas.
"""

from __future__ import annotations

import json
import time

import redis

from shared import marks, redis_conn
from shared.events import Event, stream_id_key
from shared.marks import MarkHashes, mark_field, split_field
from shared.reading import MAX_MESSAGE_BYTES, NAME_RE, Reading, ReadingError
from shared.settings import Settings

# The recorder's consumer group on the stream (docs/architecture.md, "Processes").
RECORDER_GROUP = "recorder"

_MESSAGE_KEYS = frozenset({"data", "type", "id", "retry"})
# Stream ids are Redis's clock in ms; a day covers any skew between hosts.
MAX_ID_AHEAD = 86400
# A sensor's last error as /api/sensors shows it: a sentence, not a file.
MAX_ERROR_CHARS = 500
# MQTT bridge reports /metrics shows; one per broker is the use, more is junk.
MAX_BRIDGES = 20


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
    reading = Reading.from_dict(msg["data"])
    # Stamped in 2099, it would stay "latest" for good and make its age
    # negative, so staleness could never show (the publish script refuses
    # these too; stock flask-sse publishes reach only this check).
    if reading.ts > time.time() + MAX_ID_AHEAD:
        raise ReadingError("ts is more than a day in the future")
    return Event(event_id, reading)


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
        self.marks = MarkHashes(client, channel)
        self.errors_key = f"{channel}:errors"
        self.recorder_key = f"{channel}:recorder"
        self.bridges_prefix = f"{channel}:mqtt:"
        self.retention_ms = retention * 1000
        self.max_retention_ms = max(retention, max_retention) * 1000
        self._publish = client.register_script(marks.PUBLISH_LUA)

    @classmethod
    def for_settings(cls, client: redis.Redis, settings: Settings) -> Bus:
        """The bus of the configured channel, with its retention limits."""
        return cls(
            client, settings.redis_channel, settings.stream_retention, settings.stream_max_retention
        )

    def publish(self, reading: Reading, *, published: int | None = None) -> str | None:
        """Publish atomically; the stream id, or None for a repeat (marks rule 2).

        `published` is the caller's published mark of this sensor; if Redis
        knows less, it was emptied and `marks.Forgotten` is raised (rule 3).
        """
        mark = "" if reading.seq is None else mark_field(reading.source, reading.sensor)
        try:
            result = self._publish(
                keys=[self.stream, self.marks.published_key],
                args=[
                    self.channel,
                    reading.to_json(),
                    self.retention_ms,
                    mark,
                    reading.seq or 0,
                    "" if published is None else published,
                    self.max_retention_ms,
                    marks.MAX_AHEAD_S * 1000,
                    marks.MAX_SEQ_JUMP,
                    self.marks.recorded_key,
                ],
            )
        except redis.ResponseError as exc:
            forgotten = marks.parse_forgotten(str(exc))
            if forgotten is None:
                raise
            raise forgotten from None
        return _text(result) if result else None

    def load_scripts(self) -> None:
        """Put the publish script in Redis's cache (trusted roles: producers may not)."""
        self.client.script_load(marks.PUBLISH_LUA)

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

    def recorder_status(self) -> dict[str, float]:
        """The recorder's last report (lag, lag_s, pending, inserted, ts); {} if none."""
        return _numbers(self.client.hgetall(self.recorder_key))

    def report_bridge(self, name: str, counts: dict[str, int]) -> None:
        """An MQTT bridge's counters and the time, in hash <channel>:mqtt:<name>, for /metrics."""
        self.client.hset(self.bridges_prefix + name, mapping={**counts, "ts": time.time()})

    def bridge_statuses(self) -> dict[str, dict[str, float]]:
        """Every MQTT bridge's last report by name (at most MAX_BRIDGES; numbers only)."""
        out: dict[str, dict[str, float]] = {}
        for key in self.client.scan_iter(match=f"{self.bridges_prefix}*", count=100):
            name = _text(key).removeprefix(self.bridges_prefix)
            if not NAME_RE.fullmatch(name):
                continue
            out[name] = _numbers(self.client.hgetall(key))
            if len(out) >= MAX_BRIDGES:
                break
        return out

    def recorder_storage(self) -> dict[str, object]:
        """Whether the recorder could write the history at its last report, and if not why."""
        error = _text(self.client.hget(self.recorder_key, "storage_error") or b"")
        return {"history_writable": not error, "history_error": error or None}

    def recorder_group(self) -> dict | None:
        """The recorder's consumer group as XINFO GROUPS reports it, or None."""
        try:
            groups = self.client.xinfo_groups(self.stream)
        except redis.ResponseError:  # no stream yet: nothing published, nothing behind
            return None
        names = (RECORDER_GROUP, RECORDER_GROUP.encode())
        return next((g for g in groups if g["name"] in names), None)

    def recorder_lag(self) -> dict[str, float]:
        """How far the recorder is behind the stream, read from Redis itself.

        `lag`: entries not read yet; `lag_s`: age of the oldest of them (0 when
        none); `pending`: read but not stored and acked. It is right even while
        the recorder is down, so /readyz and /metrics can call it directly.
        """
        group = self.recorder_group()
        if group is None:
            return {"lag": -1, "lag_s": -1.0, "pending": 0}
        last = _text(group["last-delivered-id"])
        oldest = self.client.xrange(self.stream, min=f"({last}", count=1)
        age = time.time() - int(oldest[0][0].split(b"-")[0]) / 1000 if oldest else 0.0
        lag = group.get("lag")
        return {
            "lag": -1 if lag is None else lag,
            "lag_s": round(max(age, 0.0), 3),
            "pending": group["pending"],
        }

    def hold_position(self) -> int | None:
        """Where the recorder's group stands (marks rule 6), or None without a group."""
        group = self.recorder_group()
        if group is None:
            return None
        pending = self.client.xpending(self.stream, RECORDER_GROUP)
        first = _text(pending["min"]) if pending["pending"] else None
        return marks.hold_position(_text(group["last-delivered-id"]), first)

    def report_error(self, source: str, sensor: str, error: str | None, ts: float) -> None:
        """Record (or clear, with None) the last error of a sensor for /api/sensors."""
        field = mark_field(source, sensor)
        if error is None:
            self.client.hdel(self.errors_key, field)
        else:
            text = error[:MAX_ERROR_CHARS]
            self.client.hset(self.errors_key, field, json.dumps({"error": text, "ts": ts}))

    def sensor_errors(self) -> dict[tuple[str, str], dict[str, object]]:
        """Every sensor's last error, as producers reported it."""
        out: dict[tuple[str, str], dict[str, object]] = {}
        for key, value in self.client.hgetall(self.errors_key).items():
            # Anyone who may write the hash can put anything there: only a
            # small {"error": text} object is believed, and its text capped.
            if len(value) > 4 * MAX_ERROR_CHARS:
                continue
            try:
                found = json.loads(value)
            except ValueError:
                continue
            if isinstance(found, dict) and isinstance(found.get("error"), str):
                out[split_field(_text(key))] = {**found, "error": found["error"][:MAX_ERROR_CHARS]}
        return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _numbers(fields: dict) -> dict[str, float]:
    """A status hash's numeric fields; anything else is left out."""
    out = {}
    for key, value in fields.items():
        try:
            out[_text(key)] = float(value)
        except ValueError:
            continue
    return out


def _entry_event(entry_id: bytes | str, fields: dict) -> Event | None:
    raw = fields.get(b"r", fields.get("r"))
    try:
        return Event(_text(entry_id), Reading.from_json(raw or b""))
    except ReadingError:
        return None
