"""Reads of the dashboard database: off the gevent hub, each with a deadline.

A gevent worker runs every client on one thread. A SQLite query there holds
that thread (and every live stream of the worker) until it ends, so each read
runs on its own read-only connection in gevent's thread pool, and SQLite's
progress handler interrupts it once its deadline passes: the request gets a
503, the streams never notice (docs/security.md, "No request blocks the event
loop").
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from flask import current_app
from gevent import monkey
from gevent.threadpool import ThreadPool

from shared import migrations, store
from shared.events import Event

T = TypeVar("T")

# SQLite VM instructions between two deadline checks: each check takes the
# GIL from the hub for a Python call; 100,000 instructions are a few ms.
PROGRESS_STEPS = 100_000
# Threads per worker for reads: more would only contend with the hub for the
# GIL (decoding rows is Python work); further reads wait as greenlets.
READ_THREADS = 2
# Niceness of those threads: on a busy host the streams' thread comes first.
READ_NICENESS = 10
_pool: ThreadPool | None = None
_niced: set[int] = set()
# The kernel's id of the running thread (gevent may patch threading's helpers).
_native_id = monkey.get_original("_thread", "get_native_id")
logger = logging.getLogger(__name__)


class HistoryUnavailable(Exception):
    """The recorder has not created the database yet, or it cannot be read."""


class HistoryTimeout(HistoryUnavailable):
    """A read ran past its deadline and was interrupted."""

    retry_after = 5


def read_at(path: Path, query: Callable[[sqlite3.Connection], T], deadline: float) -> T:
    """`query(conn)` on a fresh read-only connection, off the hub, cut after `deadline` s."""
    if monkey.is_module_patched("socket"):
        # The calling greenlet waits; the hub and every other client go on.
        return _threads().apply(_run, (path, query, deadline))
    return _run(path, query, deadline)


def _threads() -> ThreadPool:
    global _pool  # one pool per worker process, made after the fork
    if _pool is None:
        _pool = ThreadPool(READ_THREADS)
    return _pool


def _yield_cpu_to_the_hub() -> None:
    """Lower this read thread's CPU priority once, so the kernel runs the hub first."""
    tid = _native_id()
    if tid in _niced:
        return
    _niced.add(tid)
    try:  # Linux: a thread id is a process id for setpriority
        os.setpriority(os.PRIO_PROCESS, tid, READ_NICENESS)
    except (OSError, AttributeError) as exc:
        logger.debug("read thread keeps its priority: %s", exc)


def read(query: Callable[[sqlite3.Connection], T], deadline: float | None = None) -> T:
    """`read_at` on the configured database with the configured deadline."""
    settings = current_app.config["SETTINGS"]
    return read_at(Path(settings.database_path), query, deadline or settings.query_timeout)


def _run(path: Path, query: Callable[[sqlite3.Connection], T], deadline: float) -> T:
    _yield_cpu_to_the_hub()
    if not path.exists():
        raise HistoryUnavailable(
            f"no history yet: {path.name} does not exist (is the recorder running?)"
        )
    try:
        conn = store.connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise HistoryUnavailable(f"the history cannot be opened: {exc}") from None
    end = time.monotonic() + deadline
    conn.set_progress_handler(lambda: time.monotonic() > end, PROGRESS_STEPS)
    try:
        migrations.check(conn)
        return query(conn)
    except migrations.SchemaError as exc:
        raise HistoryUnavailable(str(exc)) from None
    except sqlite3.OperationalError as exc:
        if time.monotonic() > end:
            raise HistoryTimeout(
                f"the query took longer than {deadline:g} s; ask for a shorter range"
            ) from None
        raise HistoryUnavailable(f"the history cannot be read: {exc}") from None
    finally:
        conn.close()


def latest_events(path: Path, deadline: float) -> list[Event]:
    """The newest stored reading per sensor (empty without a database): the hub's seed."""
    if not path.exists():
        return []
    return read_at(path, store.latest, deadline)


def events_after(path: Path, last_id: str, limit: int, deadline: float) -> list[Event] | None:
    """Stored events after a stream id, None if more than `limit` (resumes past the stream)."""

    def query(conn: sqlite3.Connection) -> list[Event] | None:
        # Counting in the index first keeps an ancient id (1-0) from decoding
        # `limit` rows only to be refused.
        if store.more_events_after(conn, last_id, limit):
            return None
        return store.events_after(conn, last_id, limit=limit)

    return read_at(path, query, deadline)
