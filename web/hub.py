"""The hub: one Redis subscription per worker, fanned out to every SSE client.

Each message is validated and encoded once per worker into a shared ring
buffer; a client is a cursor into it. One wake-up per batch releases every
waiting client at once (cheaper than a queue per client), and a client whose
cursor falls off the ring's tail was too slow: it is dropped and resumes with
Last-Event-ID.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import gevent
import gevent.event
import redis

from shared import redis_conn
from shared.alerts import ALERT_MARK, AlertMessageError, parse_alert_message
from shared.bus import Bus, parse_message
from shared.events import Event, stream_id_key
from shared.marks import HighWater
from shared.reading import ReadingError
from web.push import Overrun, Pusher
from web.sse import encode_event, encode_id

logger = logging.getLogger(__name__)

IdKey = tuple[int, int]
# Seconds between sweeps for sensors gone quiet for longer than `expire_after`.
EXPIRE_EVERY = 60.0
# How far back the first subscription reads to continue the seeded readings.
SEED_CATCH_UP_MS = 60_000
# Seconds between asking Sentinel whether the master moved (Sentinel mode only).
MASTER_CHECK_EVERY = 1.0
# Encoded events a worker keeps; a client further behind is dropped (it resumes).
RING_SIZE = 8192


@dataclass(frozen=True, slots=True)
class Entry:
    """One encoded event in the ring, with what a client filters on."""

    key: IdKey | None
    source: str
    sensor: str
    payload: bytes
    seq: int | None = None  # what a resume compares re-sent readings by


@dataclass(slots=True)
class HubStats:
    """Counters for /metrics; plain ints, read by the metrics exporter."""

    received: int = 0
    rejected: int = 0
    duplicates: int = 0
    alerts: int = 0
    reconnects: int = 0
    clients: int = 0
    dropped_slow: int = 0
    backlog_max: int = 0  # most events one client had waiting, since the last push
    events_out: int = 0
    bytes_out: int = 0
    sensors: int = 0  # live sensors (a gauge)
    refused_sensors: int = 0  # readings refused: MAX_SENSORS were live already
    last_received: float = 0.0


class Hub:
    """Owns the worker's one subscription and the ring of encoded events."""

    def __init__(
        self,
        pubsub_client: redis.Redis,
        bus: Bus,
        *,
        ring_size: int = RING_SIZE,
        seed: Callable[[], list[Event]] | None = None,
        heartbeat: float | None = None,
        max_sensors: int = 1000,
        expire_after: float = 0.0,
    ) -> None:
        self.redis = pubsub_client
        # Bounded by design: 100,000 made-up sensor names must not grow every
        # worker's memory and every new client's snapshot without limit.
        self.max_sensors = max_sensors
        # With a heartbeat the hub wakes every client a few times per period
        # (one timer per worker); clients then wait without a gevent Timeout
        # of their own, which cost ~9% of a worker at one event per wake-up.
        self.tick = heartbeat / 4 if heartbeat else 0.0
        self._ticking = False
        # Clients the hub writes to itself (docs/architecture.md, "Fan-out").
        self.push = Pusher(self.tick, left=self.leave)
        self.bus = bus
        self.size = ring_size
        self._ring: list[Entry | None] = [None] * ring_size
        self.head = 0  # absolute index of the next entry
        self._wake = gevent.event.Event()
        self.last_key: IdKey | None = None
        self.last_id: str | None = None
        self.latest: dict[tuple[str, str], bytes] = {}
        # When each live sensor was last seen; one unseen for `expire_after`
        # seconds leaves the live state (0: never). History keeps it.
        self.seen_at: dict[tuple[str, str], float] = {}
        self.expire_after = expire_after
        self._expired_at = 0.0
        self.version = 0  # bumped whenever `latest` changes
        self._snapshot: tuple[int, str | None, bytes] | None = None
        self._joined: tuple[int, int, bytes, int] = (-1, -1, b"", 0)  # see joined()
        self._seqs = HighWater()  # marks rule 7
        self._seed_keys: list[IdKey] = []
        self._seed = seed
        self.connected = False
        self.stopping = False
        self.stats = HubStats()
        self._greenlet: gevent.Greenlet | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Fix the start position, then start the listener (in the worker, never the master).

        The position is taken here, before the worker serves its first
        request: taken later by the listener, it could pass over a reading
        published just after a client connected.
        """
        if self._greenlet is not None:
            return
        self._load_seed()
        try:
            self._start_position()
        except redis.RedisError as exc:  # Redis down: the listener takes it when it can
            logger.warning("Redis unreachable at start (%s); will keep trying", exc)
        self._greenlet = gevent.spawn(self._run)
        if self.tick:
            self._ticking = True
            gevent.spawn(self._ticker)

    def stop(self) -> None:
        """Tell clients to go (they reconnect elsewhere) and end the listener."""
        self.stopping = True
        self._notify()
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _run(self) -> None:
        backoff = 0.25
        while not self.stopping:
            try:
                self._listen()
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                self.connected = False
                self.stats.reconnects += 1
                logger.warning("Redis subscription lost (%s); retrying in %.1fs", exc, backoff)
                gevent.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, redis_conn.retry_cap(self.redis, 5.0))
            else:
                backoff = 0.25

    def _load_seed(self) -> None:
        if self._seed is None:
            return
        try:
            for event in self._seed()[: self.max_sensors]:
                reading = event.reading
                self.latest[reading.key] = reading.to_json().encode()
                self.seen_at[reading.key] = min(reading.ts, time.time())
                # Clients may take this as their snapshot before the first
                # subscription: the catch-up must continue right after it.
                if reading.seq is not None:
                    self._seqs[reading.key] = reading.seq
                if event.id is not None:
                    self._seed_keys.append(stream_id_key(event.id))
        except Exception:  # the history is a nicety here, never a reason to stop
            logger.exception("could not load the latest readings from the database")
        self.stats.sensors = len(self.latest)

    def _listen(self) -> None:
        pubsub = self.redis.pubsub()
        try:
            # The position first, then the subscription, then the catch-up:
            # whatever is published in between is read from the stream once
            # and its channel copy dropped as a repeat, so nothing is lost.
            if self.last_id is None:
                self._start_position()
            pubsub.subscribe(self.bus.channel)
            # The catch-up reads on another connection; only once Redis has
            # confirmed the subscription is every later publish sure to come
            # here, so anything earlier must be in what the catch-up reads.
            self._confirmed(pubsub)
            self._catch_up()
            self.connected = True
            logger.info("subscribed to Redis channel %r", self.bus.channel)
            checked_at = time.monotonic()
            while not self.stopping:
                self._pump(pubsub)
                if time.monotonic() - checked_at > MASTER_CHECK_EVERY:
                    checked_at = time.monotonic()
                    self._check_master(pubsub)
        finally:
            self.connected = False
            pubsub.close()

    def _check_master(self, pubsub: redis.client.PubSub) -> None:
        """Leave a master Sentinel has replaced: resubscribe there and catch up.

        A demoted or paused node sends the subscription nothing and no
        error, so without this the hub would wait on it (redis-py #1500).
        """
        if redis_conn.master_moved(self.redis, pubsub.connection):
            # Also drop the pool's idle connections to the old master.
            redis_conn.current_master(self.bus.client)
            raise redis.ConnectionError("the master moved; resubscribing")

    def _start_position(self) -> None:
        """First subscription: read on from the oldest seeded reading (a minute at most).

        The database's latest readings lag the stream by the recorder's
        batch; starting at the stream's end would leave that span in neither
        the snapshot nor the ring.
        """
        # An empty stream starts at 0-0, so what is published before the
        # subscription is live is still read by the catch-up.
        last = self.bus.last_id() or "0-0"
        if not self._seed_keys:
            self.last_id = last
        else:
            floor = (stream_id_key(last)[0] - SEED_CATCH_UP_MS, 0)
            start = min(max(min(self._seed_keys), floor), stream_id_key(last))
            self.last_id = f"{start[0]}-{start[1]}"
        self.last_key = stream_id_key(self.last_id) if self.last_id else None

    def _confirmed(self, pubsub: redis.client.PubSub, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "subscribe":
                return
        raise redis.TimeoutError("Redis did not confirm the subscription")

    def _pump(self, pubsub: redis.client.PubSub) -> None:
        message = pubsub.get_message(timeout=1.0)
        if message is None:
            return
        added = self._take(message)
        # Drain what has already arrived so a burst costs one wake-up; a
        # message only half arrived gets the full timeout, not zero.
        for _ in range(1000):
            if pubsub.connection is None or not pubsub.connection.can_read(timeout=0):
                break
            message = pubsub.get_message(timeout=1.0)
            if message is not None:
                added += self._take(message)
        if added:
            self._notify()

    def _take(self, message: dict) -> int:
        return self.accept_message(message["data"]) if message["type"] == "message" else 0

    def _catch_up(self) -> None:
        """After a reconnect, read the stream from the last id delivered."""
        while self.last_id is not None:
            events = self.bus.read_after(self.last_id, count=1000)
            if not events:
                return
            for event in events:
                self.accept(event)
            self._notify()

    # -- intake ------------------------------------------------------------

    def accept_message(self, data: bytes | str) -> int:
        """Validate one channel message and add it; 1 if added, else 0."""
        self.stats.received += 1
        if ALERT_MARK in (data if isinstance(data, bytes) else data.encode()):
            return self.accept_alert(data)
        try:
            event = parse_message(data)
        except ReadingError as exc:
            self.stats.rejected += 1
            logger.warning("dropped a message on %r: %s", self.bus.channel, exc)
            return 0
        return self.accept(event)

    def accept_alert(self, data: bytes | str) -> int:
        """An alert transition from the recorder: `event: alert` to every client of its sensor."""
        try:
            alert = parse_alert_message(data)
        except AlertMessageError as exc:
            self.stats.rejected += 1
            logger.warning("dropped a message on %r: %s", self.bus.channel, exc)
            return 0
        self.stats.alerts += 1
        payload = encode_event(json.dumps(alert, separators=(",", ":")), event="alert")
        self._append(Entry(None, alert["source"], alert["sensor"], payload))
        return 1

    def accept(self, event: Event) -> int:
        """Add a valid event unless it repeats one already delivered."""
        reading = event.reading
        key = None
        if event.id is not None:
            key = stream_id_key(event.id)
            if self.last_key is not None and key <= self.last_key:
                self.stats.duplicates += 1
                return 0
            # Consumed even if its seq repeats below: else _catch_up would
            # read the same re-sent entries forever.
            self.last_key, self.last_id = key, event.id
        if reading.key not in self.latest and len(self.latest) >= self.max_sensors:
            self.stats.refused_sensors += 1
            if self.stats.refused_sensors & (self.stats.refused_sensors - 1) == 0:
                logger.warning(
                    "refused %s/%s: %d sensors are live already (MAX_SENSORS); %d refused so far",
                    reading.source,
                    reading.sensor,
                    self.max_sensors,
                    self.stats.refused_sensors,
                )
            return 0
        # A producer re-sending its outbox after Redis came back empty (marks rule 7).
        if reading.seq is not None and not self._seqs.advance(reading.key, reading.seq):
            self.stats.duplicates += 1
            return 0
        data = reading.to_json()
        self.latest[reading.key] = data.encode()
        self.seen_at[reading.key] = time.time()
        self.version += 1
        self.stats.sensors = len(self.latest)
        self._append(
            Entry(
                key,
                reading.source,
                reading.sensor,
                encode_event(data, event_id=event.id),
                reading.seq,
            )
        )
        self.stats.last_received = time.time()
        return 1

    def _append(self, entry: Entry) -> None:
        self._ring[self.head % self.size] = entry
        self.head += 1

    def _notify(self) -> None:
        self._wake_waiters()
        if self.stopping:
            self.push.close_all()
        else:
            self.push.deliver()

    def _wake_waiters(self) -> None:
        wake, self._wake = self._wake, gevent.event.Event()
        wake.set()

    # -- clients -----------------------------------------------------------

    def _ticker(self) -> None:
        while not self.stopping:
            gevent.sleep(self.tick)
            self._wake_waiters()
            self.push.heartbeats()
            if self.expire_after and time.monotonic() - self._expired_at > EXPIRE_EVERY:
                self._expired_at = time.monotonic()
                self.expire()

    @property
    def ticking(self) -> bool:
        """True once the heartbeat ticker runs (direct writes need it for heartbeats)."""
        return self._ticking

    def expire(self, now: float | None = None) -> int:
        """Forget sensors not seen for `expire_after` seconds; how many went."""
        cutoff = (time.time() if now is None else now) - self.expire_after
        gone = [key for key, seen in self.seen_at.items() if seen < cutoff]
        for key in gone:
            del self.seen_at[key]
            self.latest.pop(key, None)
            self._seqs.pop(key, None)
        if gone:
            self.version += 1
            self.stats.sensors = len(self.latest)
            logger.info(
                "%d sensors unseen for %.0f s left the live state", len(gone), self.expire_after
            )
        return len(gone)

    def snapshot(self) -> bytes:
        """Every live sensor's latest reading and the position, as SSE: encoded once per change."""
        cached = self._snapshot
        if cached is None or cached[0] != self.version or cached[1] != self.last_id:
            parts = [encode_event(data.decode()) for _, data in sorted(self.latest.items())]
            if self.last_id is not None:
                parts.append(encode_id(self.last_id))
            cached = self._snapshot = (self.version, self.last_id, b"".join(parts))
        return cached[2]

    def wait(self, cursor: int, timeout: float) -> bool:
        """Block until entries exist past `cursor` (True), or a tick or `timeout` passes."""
        if cursor < self.head or self.stopping:
            return True
        if self._ticking:
            self._wake.wait()  # the ticker bounds the wait
        else:
            self._wake.wait(timeout)
        return cursor < self.head or self.stopping

    def entry(self, index: int) -> Entry:
        """One entry still in the ring (the caller checked it was not overwritten)."""
        entry = self._ring[index % self.size]
        assert entry is not None
        return entry

    def joined(self, cursor: int) -> tuple[bytes, int]:
        """Every entry from `cursor` to the head as one chunk, and how many; Overrun if overwritten.

        Built once per (cursor, head): a sweep hands the same bytes to every
        unfiltered client at that cursor (docs/architecture.md, "Fan-out").
        """
        head = self.head
        if head - cursor == 1:
            return self.entry(cursor).payload, 1
        cached = self._joined
        if cached[0] == cursor and cached[1] == head:
            return cached[2], cached[3]
        payloads = [entry.payload for entry in self.entries(cursor)]
        self._joined = (cursor, head, b"".join(payloads), len(payloads))
        return self._joined[2], self._joined[3]

    def entries(self, cursor: int) -> Iterator[Entry]:
        """Entries from `cursor` to the head; Overrun if some were overwritten."""
        if self.head - cursor > self.size:
            raise Overrun(f"{self.head - cursor} events behind")
        ring, size = self._ring, self.size
        for index in range(cursor, self.head):
            entry = ring[index % size]
            assert entry is not None
            yield entry

    def seqs_through(self, position: IdKey) -> HighWater:
        """The highest seq per sensor among ring entries up to `position`.

        What a client resuming from `position` already has: a reading
        re-sent after a failover lost it comes back with a newer stream id
        but its old seq, and must not reach that client twice.
        """
        seqs = HighWater()
        for index in range(max(self.head - self.size, 0), self.head):
            entry = self._ring[index % self.size]
            if entry is None or entry.key is None or entry.seq is None or entry.key > position:
                continue
            seqs.advance((entry.source, entry.sensor), entry.seq)
        return seqs

    def join(self) -> int:
        """Count a new client (metrics); its starting cursor."""
        self.stats.clients += 1
        return self.head

    def leave(self) -> None:
        """A client counted by `join` has gone."""
        self.stats.clients -= 1

    @contextmanager
    def client(self) -> Iterator[int]:
        """A client for the length of a `with` block; yields its starting cursor."""
        cursor = self.join()
        try:
            yield cursor
        finally:
            self.leave()
