"""The recorder's consumer: the only writer of the dashboard database.

Reads the Redis stream through a consumer group (a restart resumes where it
stopped), inserts in batches idempotent on (source, sensor, seq), publishes
its recorded marks so producers can drop what is safely stored (marks rules
4 and 6), and records readings from stock flask-sse publishers, which reach
the channel only.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from types import FrameType

import redis

from recorder.alerts import Evaluator, evaluate, start_alerts
from recorder.audit import AUDIT_EVERY, StreamAudit
from recorder.prune import Maintenance
from shared import redis_conn, store
from shared.bus import RECORDER_GROUP, Bus, parse_message
from shared.events import Event
from shared.marks import Gaps, HighWater
from shared.reading import Reading, ReadingError
from shared.settings import Settings

logger = logging.getLogger(__name__)

BATCH = 2000
# Seconds between tries while the history cannot be written (disk full, read-only).
STORAGE_RETRY_S = 1.0
# Readings without a stream id kept in memory meanwhile (the rest are in the stream).
UNSTORED_MAX = 100_000
# Seconds between status reports; a report older than a few of these means
# the recorder is down.
STATUS_EVERY = 2.0
# A master that stops answering (paused, cut off) must not hold the recorder
# for ever: its blocking read waits 0.5 s, so 5 s of silence means gone.
SOCKET_TIMEOUT = 5.0
# Seconds between asking Sentinel whether the master moved (Sentinel mode only).
MASTER_CHECK_EVERY = 1.0
# Sensors past MAX_SENSORS named in the log one by one; after that, only at
# every power-of-two total, so a flood of made-up names cannot flood the log.
REFUSED_NAMED = 100


@dataclass
class Recorder:
    """Moves readings from Redis into SQLite, exactly once each."""

    bus: Bus
    conn: sqlite3.Connection
    consumer: str = "recorder"
    marks: HighWater = field(default_factory=HighWater)
    inserted: int = 0
    stopping: bool = False
    alerts: Evaluator | None = None
    caught_up: bool = False  # the last read found less than a batch waiting
    storage_error: str = ""  # why the history cannot be written now, "" while it can
    unstored: list[Event] = field(default_factory=list)
    max_sensors: int | None = None  # MAX_SENSORS: the most sensors the history holds
    gaps: Gaps = field(default_factory=Gaps)  # marks rule 9
    gaps_found: int = 0  # gaps opened: readings Redis took that the stream lost
    seq_lost: int = 0  # seqs of gaps given up: missing from the history for good
    audit: StreamAudit | None = None
    refused_sensors: int = 0  # readings refused because the history holds MAX_SENSORS
    refused_names: set[tuple[str, str]] = field(default_factory=set)

    def prepare(self) -> None:
        """Create the group if missing and restore the marks if Redis lost them."""
        try:
            # From 0, not $: a fresh group takes what the stream still holds;
            # the database drops what it already has.
            self.bus.client.xgroup_create(self.bus.stream, RECORDER_GROUP, id="0", mkstream=True)
            logger.info("created consumer group %r on %s", RECORDER_GROUP, self.bus.stream)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        # Producers may run the publish script but not load it (least
        # privilege, docs/security.md): the recorder loads it whenever it
        # (re)connects, e.g. after Redis restarted with an empty script cache.
        self.bus.load_scripts()
        self.marks = HighWater(store.high_water(self.conn))
        # Marks, not the hash's length: its @pos field can be back first.
        if self.marks and not self.bus.marks.recorded():
            self.bus.marks.record(self.recorded())
            logger.info("restored %d recorded marks into Redis", len(self.marks))

    def recorded(self) -> dict[tuple[str, str], int]:
        """The recorded marks as Redis should hold them: held below open gaps (rule 9)."""
        return {key: self.gaps.recorded(key, mark) for key, mark in self.marks.items()}

    def step(self, block_ms: int = 1000) -> int:
        """Read one batch (own pending entries first), store it, ack it."""
        pending = self._read("0", 0)
        entries = pending or self._read(">", block_ms)
        self.caught_up = not pending and len(entries) < BATCH
        if not entries:
            return 0
        events = [e for e in (self._event(i, f) for i, f in entries) if e is not None]
        try:
            added = self.store(events)
        except sqlite3.OperationalError as exc:
            # Not acknowledged: the entries stay pending (read again first next
            # time) and the marks stay, so producers keep their outbox rows.
            self._cannot_write(exc)
            return 0
        self.bus.client.xack(self.bus.stream, RECORDER_GROUP, *[i for i, _ in entries])
        return added

    def _cannot_write(self, exc: sqlite3.OperationalError) -> None:
        """Say so once per outage, then wait a little before the next try."""
        if not self.storage_error:
            logger.error(
                "the history cannot be written (%s): not acknowledging; readings wait in the"
                " Redis stream and the producers' outboxes until it can",
                exc,
            )
        self.storage_error = str(exc)
        time.sleep(STORAGE_RETRY_S)

    def _can_write(self) -> None:
        if self.storage_error:
            logger.info("the history can be written again; catching up")
            self.storage_error = ""

    def _read(self, start: str, block_ms: int) -> list[tuple[bytes, dict]]:
        reply = self.bus.client.xreadgroup(
            RECORDER_GROUP,
            self.consumer,
            {self.bus.stream: start},
            count=BATCH,
            block=block_ms or None,
        )
        return [(i, f) for _, rows in reply or [] for i, f in rows if f]

    def _event(self, entry_id: bytes, fields: dict) -> Event | None:
        try:
            return Event(entry_id.decode(), Reading.from_json(fields.get(b"r", b"")))
        except ReadingError as exc:
            logger.warning("skipped stream entry %s: %s", entry_id.decode(), exc)
            return None

    def store(self, events: list[Event]) -> int:
        """Insert and advance the marks; the number of new rows."""
        if not events:
            return 0
        refused: list[Event] = []
        added = store.insert_events(
            self.conn, events, max_sensors=self.max_sensors, refused=refused
        )
        self._can_write()
        self.inserted += added
        if refused:
            # Acknowledged with the rest (a refusal is final, retrying would
            # wedge the group), but no mark moves: they are not stored
            # (docs/architecture.md, "History storage").
            self._refused(refused)
            gone = {id(e) for e in refused}
            events = [e for e in events if id(e) not in gone]
        if self.alerts is not None:
            evaluate(self.alerts.observe, events)
        self._move_marks(events)
        return added

    def _move_marks(self, events: list[Event]) -> None:
        """Rules 4 and 9: raise the recorded marks, held below any gap, and ask for the gaps."""
        now, before, opened = time.time(), {}, {}
        for event in events:
            r = event.reading
            if r.seq is None:
                continue
            if r.key not in before and r.key in self.marks:
                before[r.key] = self.gaps.recorded(r.key, self.marks[r.key])
            # Only stream entries: a reading from the channel alone (stock
            # flask-sse) has no published mark to lower.
            mark = self.marks.get(r.key)
            held = None if event.id is None else self.gaps.stored(r.key, r.seq, mark, now)
            if held is not None:
                opened[r.key] = held
                self.gaps_found += 1
                logger.warning(
                    "%s/%s: seqs %d..%d reached Redis but not the recorder (the stream was"
                    " trimmed under it?); holding its recorded mark at %d so its producer"
                    " re-sends them (marks rule 9)",
                    *r.key,
                    held + 1,
                    r.seq - 1,
                    held,
                )
            before.setdefault(r.key, -1)
            self.marks.advance(r.key, r.seq)
        after = {k: self.gaps.recorded(k, self.marks[k]) for k in before}
        # Only marks that moved: a repeat (re-read after a failover, re-sent)
        # writes nothing, so a new master learns its losses by rule 3.
        self.bus.marks.record({k: m for k, m in after.items() if m != before[k]})
        self.bus.marks.lower_published(opened)

    def audit_stream(self) -> int | None:
        """Entries trimmed unread, and published marks the stream did not deliver (rule 10)."""
        if self.audit is None:
            self.audit = StreamAudit(self.bus)
        if self.audit.off:
            return None
        known = [k for k in store.names(self.conn).sids if k not in self.gaps]
        try:
            return self.audit.run(self.recorded(), known)
        except redis.ResponseError as exc:
            # An older Redis (no group lag, no "(" ranges): record without it.
            logger.warning("stream audit unavailable on this Redis (%s); not checking", exc)
            self.audit.off = True
            return None

    def expire_gaps(self) -> None:
        """Rule 9: give up gaps no producer filled in time; the history keeps the hole."""
        for key, first, after in self.gaps.expire(time.time()):
            self.seq_lost += after - first
            logger.error(
                "%s/%s: seqs %d..%d never came back (its producer no longer had them, or its"
                " counter restarted); the history has a hole there",
                *key,
                first,
                after - 1,
            )
            self.bus.marks.record({key: self.gaps.recorded(key, self.marks[key])})

    def _refused(self, refused: list[Event]) -> None:
        """Count readings of sensors past MAX_SENSORS; name each new one, up to a bound."""
        for event in refused:
            self.refused_sensors += 1
            key = event.reading.key
            first = key not in self.refused_names and len(self.refused_names) < REFUSED_NAMED
            if first:
                self.refused_names.add(key)
            if first or self.refused_sensors & (self.refused_sensors - 1) == 0:
                logger.warning(
                    "refused %s/%s: the history holds %d sensors already (MAX_SENSORS);"
                    " %d readings refused so far",
                    *key,
                    self.max_sensors,
                    self.refused_sensors,
                )

    def store_messages(self, pubsub: redis.client.PubSub) -> int:
        """Record readings that came without a stream id (stock flask-sse).

        They are in no stream: while the history cannot be written they wait
        here (the newest UNSTORED_MAX of them).
        """
        while (message := pubsub.get_message(timeout=0)) is not None:
            try:
                event = parse_message(message["data"])
            except ReadingError:
                continue  # the web hub logs and counts these
            if event.id is None:
                self.unstored.append(event)
        del self.unstored[:-UNSTORED_MAX]
        try:
            added = self.store(self.unstored)
        except sqlite3.OperationalError as exc:
            self._cannot_write(exc)
            return 0
        self.unstored.clear()
        return added


def run(settings: Settings) -> None:
    """Record until SIGTERM, reconnecting to Redis with capped backoff."""
    conn = store.connect(settings.database_path)
    store.init_db(conn)
    client = redis_conn.client(settings, socket_timeout=SOCKET_TIMEOUT)
    bus = Bus.for_settings(client, settings)
    # One recorder, one fixed consumer name: a restart reclaims its own pending.
    recorder = Recorder(
        bus, conn, alerts=start_alerts(settings, conn, client), max_sensors=settings.max_sensors
    )
    _stop_on_signals(recorder)
    # Packing and pruning beside the ingest, on a connection of their own.
    maintenance = Maintenance(settings.database_path, store.Retention.from_settings(settings))
    maintenance.start()
    backoff = 0.25
    while not recorder.stopping:
        try:
            _session(recorder)
            backoff = 0.25
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            logger.warning("Redis unavailable (%s); retrying in %.1fs", exc, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, redis_conn.retry_cap(client, 5.0))
    maintenance.stop()
    if recorder.alerts is not None and recorder.alerts.notifier is not None:
        recorder.alerts.notifier.stop()
    conn.close()
    logger.info("recorder stopped after %d readings", recorder.inserted)


def _session(recorder: Recorder) -> None:
    recorder.prepare()
    pubsub = recorder.bus.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(recorder.bus.channel)
    status_at = checked_at = audited_at = 0.0
    try:
        while not recorder.stopping:
            if time.monotonic() - checked_at > MASTER_CHECK_EVERY:
                checked_at = time.monotonic()
                # A subscription is not told its node was demoted or paused
                # (docs/architecture.md, "Failover").
                if redis_conn.master_moved(recorder.bus.client, pubsub.connection):
                    raise redis.ConnectionError("the master moved; reconnecting")
            try:
                recorder.step(block_ms=500)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                logger.warning("the stream or group vanished (Redis restarted?); recreating")
                recorder.prepare()
            recorder.store_messages(pubsub)
            # Stale and repeat timers, once the backlog is read: a sensor whose
            # readings are still waiting in the stream is not silent.
            if recorder.alerts is not None and recorder.caught_up:
                evaluate(recorder.alerts.tick)
            if recorder.caught_up and time.monotonic() - audited_at > AUDIT_EVERY:
                audited_at = time.monotonic()
                recorder.audit_stream()
            if time.monotonic() - status_at > STATUS_EVERY:
                status_at = time.monotonic()
                recorder.expire_gaps()
                _publish_status(recorder)
    finally:
        pubsub.close()


def _publish_status(recorder: Recorder) -> None:
    """Lag, totals and the hold position in Redis (hash <channel>:recorder)."""
    status: dict[str, float | str] = {
        **recorder.bus.recorder_lag(),
        "inserted": recorder.inserted,
        "refused_sensors": recorder.refused_sensors,
        "stream_lost": recorder.audit.lost if recorder.audit else 0,
        "marks_lowered": recorder.audit.lowered if recorder.audit else 0,
        "gaps": recorder.gaps_found,
        "seq_lost": recorder.seq_lost,
        "sensors": len(store.names(recorder.conn).sids),
        "storage_ok": 0 if recorder.storage_error else 1,
        "storage_error": recorder.storage_error,
        "ts": time.time(),
    }
    recorder.bus.client.hset(recorder.bus.recorder_key, mapping=status)
    position = recorder.bus.hold_position()
    if position is not None:
        recorder.bus.marks.set_hold(position)


def _stop_on_signals(recorder: Recorder) -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        recorder.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
