"""The producer's outbox: nothing is lost while Redis or the network is away.

Readings are stored before they are published and kept until the recorder's
recorded mark passes them, so even a Redis restart without persistence
loses nothing: what the mark does not cover is sent again (shared/marks.py
rules 1, 3 and 5).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

from shared.marks import RESEND_GRACE, Key, known_to_redis
from shared.reading import Reading

logger = logging.getLogger(__name__)

# MQTT deliveries remembered. A broker redelivers only messages in flight
# (sent, not acknowledged), at most its inflight window (Mosquitto: 20 by
# default), and numbers a session's messages in turn through 65,535 packet
# ids: keeping the last 10,000 covers any window up to that size, and an id
# comes round again only long after its digest is gone, so a new message is
# never taken for an old one (docs/mqtt.md, "Delivery").
MAX_DELIVERIES = 10_000
PRUNE_DELIVERIES_EVERY = 1000


class Outbox:
    """Bounded, ordered, durable queue of readings with per-sensor sequence numbers."""

    def __init__(self, path: str | Path, *, max_rows: int = 1_000_000, max_age: float = 7 * 86400):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One thread uses a connection at a time, but not always the one
        # that opened it (a producer built in one thread may run in another).
        self.conn = sqlite3.connect(str(path), check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        schema = resources.files("producers").joinpath("outbox.sql").read_text()
        self.conn.executescript(schema)
        self.path = path
        self.max_rows = max_rows
        self.max_age = max_age
        self._seqs = dict(
            ((s, n), q) for s, n, q in self.conn.execute("SELECT source, sensor, seq FROM seqs")
        )

    def next_seq(self, source: str, sensor: str) -> int:
        """The seq the next reading of this sensor gets."""
        last = self._seqs.get((source, sensor))
        if last is None:
            # A fresh outbox starts above anything an earlier one could have
            # sent (milliseconds since 1970), so a wiped outbox never makes the
            # recorder drop new readings as repeats of old ones.
            return int(time.time() * 1000)
        return last + 1

    def add(self, reading: Reading) -> None:
        """Store one reading (its seq from next_seq) durably."""
        assert reading.seq is not None
        self.add_all([reading])

    def add_all(self, readings: list[Reading], delivery: bytes | None = None) -> list[Reading]:
        """Store readings in one transaction, numbering those without a seq, as they were stored.

        `delivery` (an MQTT message's digest) is remembered in the same
        transaction, so a redelivered message is either wholly stored or not at all.
        """
        assigned: dict[Key, int] = {}  # this call's seqs, before the cache may know them
        numbered = []
        for reading in readings:
            if reading.seq is None:
                last = assigned.get(reading.key)
                seq = self.next_seq(*reading.key) if last is None else last + 1
                reading = replace(reading, seq=seq)
            assigned[reading.key] = reading.seq
            numbered.append(reading)
        with self.conn:
            for reading in numbered:
                self.conn.execute(
                    "INSERT INTO outbox (source, sensor, seq, ts, body) VALUES (?, ?, ?, ?, ?)",
                    (reading.source, reading.sensor, reading.seq, reading.ts, reading.to_json()),
                )
                self.conn.execute(
                    "INSERT INTO seqs VALUES (?, ?, ?)"
                    " ON CONFLICT DO UPDATE SET seq = excluded.seq",
                    (reading.source, reading.sensor, reading.seq),
                )
            if delivery is not None:
                self._remember(delivery)
        self._seqs.update(assigned)
        return numbered

    def _remember(self, delivery: bytes) -> None:
        """Record a delivery as the newest; now and then forget all but the last MAX_DELIVERIES."""
        self.conn.execute("DELETE FROM deliveries WHERE digest = ?", (delivery,))
        row_id = self.conn.execute(
            "INSERT INTO deliveries (digest) VALUES (?)", (delivery,)
        ).lastrowid
        if row_id % PRUNE_DELIVERIES_EVERY == 0:
            self.conn.execute("DELETE FROM deliveries WHERE id <= ?", (row_id - MAX_DELIVERIES,))

    def delivered(self, delivery: bytes) -> bool:
        """Whether a message with this digest was stored (among the last MAX_DELIVERIES)."""
        found = self.conn.execute("SELECT 1 FROM deliveries WHERE digest = ?", (delivery,))
        return found.fetchone() is not None

    def unsent(self, limit: int = 500) -> list[tuple[int, Reading]]:
        """The oldest readings Redis has not accepted yet, in order."""
        rows = self.conn.execute(
            "SELECT id, body FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?", (limit,)
        )
        return [(row_id, Reading.from_json(body)) for row_id, body in rows]

    def mark_sent(self, row_ids: list[int]) -> None:
        """Redis accepted these."""
        now = time.time()
        with self.conn:
            self.conn.executemany(
                "UPDATE outbox SET sent_at = ? WHERE id = ?", [(now, i) for i in row_ids]
            )

    def published_marks(self) -> dict[Key, int]:
        """Our copy of the published marks: per sensor, the highest seq Redis accepted."""
        rows = self.conn.execute(
            "SELECT source, sensor, max(seq) FROM outbox WHERE sent_at IS NOT NULL"
            " GROUP BY source, sensor"
        )
        return {(source, sensor): seq for source, sensor, seq in rows}

    def requeue_after(self, source: str, sensor: str, seq: int) -> int:
        """Mark this sensor's sent rows above `seq` unsent again; the number re-queued."""
        with self.conn:
            return self.conn.execute(
                "UPDATE outbox SET sent_at = NULL WHERE source = ? AND sensor = ?"
                " AND sent_at IS NOT NULL AND seq > ?",
                (source, sensor, seq),
            ).rowcount

    def settle(
        self,
        recorded: dict[Key, int],
        published: dict[Key, int],
        grace: float = RESEND_GRACE,
    ) -> tuple[int, int]:
        """Drop what the recorder stored, re-queue what Redis lost (marks rule 5): counts."""
        dropped = requeued = 0
        cutoff = time.time() - grace
        with self.conn:
            for (source, sensor), mark in recorded.items():
                assigned = self._last_assigned(source, sensor)
                if assigned is not None and mark > assigned:
                    # A mark above anything this outbox ever numbered proves
                    # nothing about our rows: keep them all, and say so.
                    logger.error(
                        "the recorded mark of %s/%s (%d) is above every seq this producer"
                        " assigned (%d): keeping its readings; is another publisher using"
                        " this name?",
                        source,
                        sensor,
                        mark,
                        assigned,
                    )
                    continue
                dropped += self.conn.execute(
                    "DELETE FROM outbox WHERE source = ? AND sensor = ? AND seq <= ?"
                    " AND sent_at IS NOT NULL",
                    (source, sensor, mark),
                ).rowcount
            # From the rows, not this connection's seq cache: the publisher
            # thread's connection never sees sensors added after it opened.
            stale = self.conn.execute(
                "SELECT DISTINCT source, sensor FROM outbox"
                " WHERE sent_at IS NOT NULL AND sent_at < ?",
                (cutoff,),
            ).fetchall()
            for source, sensor in stale:
                # Sent a while ago, not recorded, and Redis no longer knows it
                # was published: Redis restarted empty, so send it again.
                known = known_to_redis(published, (source, sensor))
                requeued += self.conn.execute(
                    "UPDATE outbox SET sent_at = NULL WHERE source = ? AND sensor = ?"
                    " AND sent_at IS NOT NULL AND sent_at < ? AND seq > ?",
                    (source, sensor, cutoff, known),
                ).rowcount
        if requeued:
            logger.warning(
                "re-sending %d readings that Redis lost before they were recorded", requeued
            )
        return dropped, requeued

    def _last_assigned(self, source: str, sensor: str) -> int | None:
        row = self.conn.execute(
            "SELECT seq FROM seqs WHERE source = ? AND sensor = ?", (source, sensor)
        ).fetchone()
        return None if row is None else row[0]

    def enforce_bounds(self) -> int:
        """Drop the oldest rows beyond the size or age limit; the number dropped."""
        with self.conn:
            by_age = self.conn.execute(
                "DELETE FROM outbox WHERE ts < ?", (time.time() - self.max_age,)
            ).rowcount
            count = self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
            by_size = 0
            if count > self.max_rows:
                by_size = self.conn.execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                    (count - self.max_rows,),
                ).rowcount
        if by_age or by_size:
            logger.warning(
                "outbox full: dropped the %d oldest readings (%d by OUTBOX_MAX_AGE, %d by "
                "OUTBOX_MAX_ROWS)",
                by_age + by_size,
                by_age,
                by_size,
            )
        return by_age + by_size

    def pending_count(self) -> int:
        """Readings not yet accepted by Redis."""
        return self.conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]

    def reopen(self) -> Outbox:
        """Another connection to the same file, for another thread."""
        return Outbox(self.path, max_rows=self.max_rows, max_age=self.max_age)

    def close(self) -> None:
        """Close the database."""
        self.conn.close()
