"""Alert notifications through Apprise, off the ingest path (docs/architecture.md, "Alerts").

One thread per target URL, each with its own queue: a slow or failing
service never delays readings nor another target, and a target's messages
arrive in order (a RESOLVED never overtakes its FIRING). A failed delivery
is retried with capped exponential backoff until it succeeds or is a day
old. What is still undelivered is kept in the history database (the
`pending` column of alert_transitions), so a restart sends it too.

URLs carry secrets (tokens, passwords, ntfy topics): only a label
(scheme and host as Apprise prints them privately) ever reaches a log line,
Redis or /metrics, and Apprise's own log lines are captured and redacted.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apprise

from shared import store
from shared.alerts import Transition

logger = logging.getLogger(__name__)


class _Capture(logging.Handler):
    """Apprise's warnings, kept per delivering thread (targets deliver concurrently)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.buffers: dict[int, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        buffer = self.buffers.get(record.thread or 0)
        if buffer is not None:
            buffer.append(record.getMessage())

    @contextlib.contextmanager
    def lines(self) -> Iterator[list[str]]:
        """What Apprise warns about in this thread while the block runs."""
        buffer: list[str] = []
        self.buffers[threading.get_ident()] = buffer
        try:
            yield buffer
        finally:
            self.buffers.pop(threading.get_ident(), None)


# Apprise and urllib3 (under requests) log request details (paths such as
# Telegram's /bot<token>/, payloads) that can hold secrets: their records go
# only to this capture, redacted, never to the process's log. In the
# recorder process only Apprise uses urllib3.
_CAPTURE = _Capture()
for _name in ("apprise", "urllib3"):
    logging.getLogger(_name).propagate = False
    logging.getLogger(_name).setLevel(logging.WARNING)
logging.getLogger("apprise").addHandler(_CAPTURE)

RETRY_FIRST = 1.0  # seconds before the first retry; doubles each time
RETRY_MAX = 300.0
GIVE_UP_AFTER = 86400.0
_SPLIT_RE = re.compile(r"[/:@?&=#,;+%\s]+")


class TargetError(ValueError):
    """An ALERT_URLS entry Apprise cannot use; the message never holds the URL."""


@dataclass
class Target:
    """One notification URL: its plugin, a printable label, the parts to hide."""

    id: str  # stable across restarts, without revealing the URL
    label: str
    plugin: Any
    secrets: tuple[str, ...]

    @classmethod
    def parse(cls, url: str, index: int) -> Target:
        """A target from one URL; TargetError naming its position and scheme only."""
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        scheme = url.partition("://")[0][:20] if "://" in url else "?"
        if plugin is None:
            raise TargetError(
                f"ALERT_URLS entry {index} ({scheme}://...) is not a URL Apprise can send to"
            )
        private = plugin.url(privacy=True)
        host = private.partition("://")[2].split("/")[0].rpartition("@")[2]
        label = f"{scheme}://{host}"
        shown = set(_SPLIT_RE.split(label))
        secrets = {t for t in _SPLIT_RE.split(url) if len(t) >= 3 and t not in shown}
        digest = hashlib.sha256(url.encode()).hexdigest()[:12]
        # Longest first, so a secret containing another is hidden whole.
        return cls(digest, label, plugin, tuple(sorted(secrets, key=len, reverse=True)))

    def redact(self, text: str) -> str:
        """`text` with every secret part of the URL replaced by ***."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def parse_targets(urls: Iterable[str]) -> list[Target]:
    """Every URL of ALERT_URLS as a target; TargetError on the first bad one."""
    return [Target.parse(url, i) for i, url in enumerate(urls, start=1)]


@dataclass
class Job:
    """One transition to deliver to one target."""

    row_id: int
    transition: Transition
    created: float
    attempts: int = 0
    due: float = 0.0


@dataclass
class TargetStatus:
    """What /metrics and the dashboard show about a target."""

    target: str
    ok: bool = True
    sent: int = 0
    failures: int = 0
    given_up: int = 0
    queued: int = 0
    last_error: str = ""
    last_ok: float = 0.0
    last_failure: float = 0.0


@dataclass
class Worker:
    """The queue and thread of one target."""

    target: Target
    status: TargetStatus
    jobs: collections.deque[Job] = field(default_factory=collections.deque)
    wake: threading.Condition = field(default_factory=threading.Condition)
    thread: threading.Thread | None = None


class Notifier:
    """Delivers transitions to every target, retrying, and reports how it goes."""

    def __init__(
        self,
        targets: list[Target],
        database_path: str | Path,
        *,
        public_url: str = "",
        report: Callable[[str, TargetStatus], None] | None = None,
        retry_first: float = RETRY_FIRST,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.targets = targets
        self.workers = [Worker(t, TargetStatus(t.label)) for t in targets]
        self.database_path = database_path
        self.public_url = public_url
        self.report = report
        self.retry_first = retry_first
        self.clock = clock
        self.stopping = False

    @property
    def target_ids(self) -> list[str]:
        """The ids a new transition waits for, as stored in its `pending` column."""
        return [w.target.id for w in self.workers]

    def start(self) -> None:
        """One daemon thread per target."""
        for worker in self.workers:
            worker.thread = threading.Thread(
                target=self._run, args=(worker,), name=f"notify {worker.target.label}", daemon=True
            )
            worker.thread.start()
            self._report(worker)

    def stop(self, timeout: float = 5.0) -> None:
        """Let every thread finish its current attempt; undelivered ones stay in the database."""
        self.stopping = True
        for worker in self.workers:
            with worker.wake:
                worker.wake.notify()
        for worker in self.workers:
            if worker.thread is not None:
                worker.thread.join(timeout)

    def send(self, row_id: int, transition: Transition, only: Iterable[str] | None = None) -> None:
        """Queue a stored transition for every target (or those in `only`)."""
        wanted = None if only is None else set(only)
        for worker in self.workers:
            if wanted is None or worker.target.id in wanted:
                with worker.wake:
                    worker.jobs.append(Job(row_id, transition, self.clock()))
                    worker.status.queued = len(worker.jobs)
                    worker.wake.notify()

    def _run(self, worker: Worker) -> None:
        conn = store.connect(self.database_path)
        try:
            while not self.stopping:
                job = self._next(worker)
                if job is not None:
                    self._attempt(worker, job, conn)
        finally:
            conn.close()

    def _next(self, worker: Worker) -> Job | None:
        """The head of the queue once it is due, or None to look again."""
        with worker.wake:
            if not worker.jobs:
                worker.wake.wait(1.0)
                return None
            job = worker.jobs[0]
            delay = job.due - self.clock()
            if delay > 0:
                worker.wake.wait(min(delay, 1.0))
                return None
            return job

    def _attempt(self, worker: Worker, job: Job, conn: sqlite3.Connection) -> None:
        ok, error = self._deliver(worker.target, job.transition)
        now, status = self.clock(), worker.status
        job.attempts += 1
        if ok:
            status.ok, status.sent, status.last_ok, status.last_error = (
                True,
                status.sent + 1,
                now,
                "",
            )
            logger.info("sent %s to %s", job.transition.title, worker.target.label)
        else:
            status.ok, status.failures, status.last_failure = False, status.failures + 1, now
            status.last_error = error
            logger.warning(
                "could not send %s to %s (attempt %d): %s",
                job.transition.title,
                worker.target.label,
                job.attempts,
                error,
            )
            if now - job.created < GIVE_UP_AFTER:
                job.due = now + min(self.retry_first * 2 ** (job.attempts - 1), RETRY_MAX)
                self._report(worker)
                return
            status.given_up += 1
            logger.error("gave up sending %s to %s", job.transition.title, worker.target.label)
        with worker.wake:
            worker.jobs.popleft()
            status.queued = len(worker.jobs)
        _done(conn, job.row_id, worker.target.id)
        self._report(worker)

    def _deliver(self, target: Target, transition: Transition) -> tuple[bool, str]:
        """One attempt; (sent, why not) with the reason redacted."""
        with _CAPTURE.lines() as captured:
            try:
                ok = bool(
                    target.plugin.notify(
                        title=transition.title, body=transition.body(self.public_url)
                    )
                )
            except Exception as exc:  # a plugin bug must not end the thread
                ok, captured_error = False, f"{type(exc).__name__}: {exc}"
            else:
                captured_error = ""
        if ok:
            return True, ""
        reason = captured_error or (captured[-1] if captured else "")
        # Every target's secrets, not only this one's: a plugin may name another.
        for each in self.targets:
            reason = each.redact(reason)
        return False, (reason or "the service did not accept it")[:300]

    def _report(self, worker: Worker) -> None:
        if self.report is None:
            return
        try:
            self.report(worker.target.id, worker.status)
        except Exception as exc:  # Redis down: the status is a nicety, delivery goes on
            logger.debug("notifier status not published: %s", exc)


def _done(conn: sqlite3.Connection, row_id: int, target_id: str) -> None:
    """Take a target off a transition's pending list (delivered or given up)."""
    with conn:
        conn.execute(
            "UPDATE alert_transitions SET pending = (SELECT json_group_array(value)"
            " FROM json_each(pending) WHERE value != ?) WHERE id = ?",
            (target_id, row_id),
        )


def status_json(status: TargetStatus) -> str:
    """The status as stored in Redis."""
    return json.dumps(status.__dict__, separators=(",", ":"))
