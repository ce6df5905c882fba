"""Packing and pruning of the history beside the recorder's ingest.

A child process with a connection of its own packs closed hours of raw rows into
blocks (encoding outside the write lock) and deletes what is past its tier's
retention, one small transaction at a time (one sensor-hour packed, one hour
of blocks or one day of one series deleted), pausing between them so live
ingest never waits for more than one step. SQLite reuses the pages deletes
free, so the file stops growing once the tiers are full. See
docs/architecture.md "History storage".
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    _stop: Any = field(default_factory=threading.Event, repr=False)
    _process: Any = field(default=None, repr=False)
    _counts: Any = field(default=None, repr=False)
    _parent: int | None = field(default=None, repr=False)  # in the child: the recorder's pid

    def _stopped(self) -> bool:
        """Asked to stop, or (in the child) the recorder is gone, even killed."""
        return self._stop.is_set() or (self._parent is not None and os.getppid() != self._parent)

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
        while not self._stopped() and (done := self.step(conn)):
            total += done
            if self._counts is not None:
                self._counts[:] = [self.packed, self.pruned]
            time.sleep(PAUSE_S)
        return total

    def start(self) -> None:
        """Run in a child process until stop().

        A process, not a thread: encoding a block is Python work, and a thread
        doing it would hold the GIL the ingest needs between its SQLite calls.
        """
        ctx = multiprocessing.get_context("spawn")
        self._stop, self._counts = ctx.Event(), ctx.Array("q", 2)
        offset = self.clock() - time.time()  # a test's or the bench's moved clock
        self._process = ctx.Process(
            target=_serve,
            args=(self.path, self.retention, offset, self._stop, self._counts, os.getpid()),
            name="history-maintenance",
            daemon=True,
        )
        self._process.start()

    def stop(self) -> None:
        """Finish the current step and end the process."""
        # A child killed while waiting on the event still counts as its
        # sleeper, and set() would wait for it to wake for ever.
        if self._process is None or self._process.is_alive():
            self._stop.set()
        if self._process is not None:
            self._process.join(timeout=30)
            if self._process.is_alive():
                self._process.kill()  # it ignores SIGTERM (see _serve)
            self.packed, self.pruned = self._counts[:]

    def run(self) -> None:
        """Pack and prune until stopped: catch up, then look again every IDLE_S."""
        conn = store.connect(self.path)
        try:
            while not self._stopped():
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
                self._rest(wait)
        finally:
            conn.close()

    def _rest(self, seconds: float) -> None:
        """Wait, waking each second to notice a recorder that died without telling us."""
        until = time.monotonic() + seconds
        while not self._stopped() and (left := until - time.monotonic()) > 0:
            self._stop.wait(min(left, 1.0))


def _serve(
    path: Path, retention: store.Retention, offset: float, stop: Any, counts: Any, parent: int
) -> None:
    """The child process: logs to stderr like its parent, stops on `stop` or when it is gone."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Ctrl-C, and SIGTERM to the whole group (systemd, a terminal), reach the
    # parent too, which stops us; dying here would leave its stop() waiting.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    maintenance = Maintenance(path, retention, clock=lambda: time.time() + offset)
    maintenance._stop, maintenance._counts, maintenance._parent = stop, counts, parent
    maintenance.run()
