"""Packing and pruning of the history beside the recorder's ingest.

A thread with a connection of its own packs closed hours of raw rows into
blocks (encoding outside the write lock) and deletes what is past its tier's
retention, one small transaction at a time (one sensor-hour packed, one hour
of blocks or one day of one series deleted), pausing between them so live
ingest never waits for more than one step. SQLite reuses the pages deletes
free, so the file stops growing once the tiers are full. See
docs/architecture.md "History storage".
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared import store

logger = logging.getLogger(__name__)

PAUSE_S = 0.005  # between steps: ingest's turn at the write lock
IDLE_S = 30.0  # nothing left to do: look again after this long
RETRY_S = 5.0  # after a storage error


@dataclass
class Maintenance:
    """Keeps the tiers packed and within their retention."""

    path: Path
    retention: store.Retention
    clock: Callable[[], float] = time.time
    packed: int = 0
    pruned: int = 0
    error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def step(self, conn: sqlite3.Connection) -> int:
        """One pack or prune step; the rows it moved or deleted (0: nothing to do)."""
        now = self.clock()
        packed = store.pack_one(conn, before=now - store.HOT_SECONDS)
        if packed:
            self.packed += packed
            return packed
        pruned = store.prune_one(conn, self.retention, now)
        self.pruned += pruned
        return pruned

    def catch_up(self, conn: sqlite3.Connection) -> int:
        """Step until there is nothing left; the rows handled."""
        total = 0
        while not self._stop.is_set() and (done := self.step(conn)):
            total += done
            time.sleep(PAUSE_S)
        return total

    def start(self) -> None:
        """Run in a daemon thread until stop()."""
        self._thread = threading.Thread(target=self._run, name="history-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the current step and end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        conn = store.connect(self.path)
        try:
            while not self._stop.is_set():
                wait = IDLE_S
                try:
                    self.catch_up(conn)
                    if self.error:
                        logger.info("history maintenance works again")
                    self.error = ""
                except sqlite3.Error as exc:
                    if not self.error:
                        logger.error("history maintenance paused: %s", exc)
                    self.error = str(exc)
                    wait = RETRY_S
                self._stop.wait(wait)
        finally:
            conn.close()
