"""Failed logins per client address, shared by every worker and replica through Redis.

Only failures count, per address (web/peers.py finds the real one behind a
trusted proxy), so one guesser never locks out anyone else, and a correct
token is never refused because of them: it resets its address's count. An
address past MAX_FAILURES in the window is *locked*: its tokens are still
checked, but one per LOCKED_INTERVAL (across workers and replicas); attempts
in between get 429 unchecked. That, not a refusal of the right token, is what
bounds guessing (docs/security.md, "When to turn on `ACCESS_TOKEN`"). While
Redis is unreachable each worker counts in memory instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

import redis

logger = logging.getLogger(__name__)

MAX_FAILURES = 10
FAILURE_WINDOW = 300.0
# A locked address keeps the rate it had before the lock: 10 per 5 minutes.
LOCKED_INTERVAL = FAILURE_WINDOW / MAX_FAILURES
MAX_TRACKED = 10_000


@dataclass(frozen=True)
class Gate:
    """Whether a client's token may be checked now."""

    locked: bool = False  # MAX_FAILURES failures in the window: a wrong token gets 429
    wait: float = 0.0  # > 0: not now (its check in this LOCKED_INTERVAL is taken); 429
    failures: bool = False  # some on record, for a correct token to clear


@dataclass
class FailedLogins:
    """A sliding window of failed attempts per client address, bounded in memory."""

    limit: int = MAX_FAILURES
    window: float = FAILURE_WINDOW
    interval: float = LOCKED_INTERVAL
    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _slots: dict[str, float] = field(default_factory=dict)  # locked address -> its next check
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def blocked_for(self, who: str, now: float | None = None) -> float:
        """Seconds `who` must wait before trying again; 0 if it may try now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._seen.get(who)
            if not times:
                return 0.0
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) < self.limit:
                return 0.0
            return times[0] + self.window - now

    def failed(self, who: str, now: float | None = None) -> None:
        """Record one failed attempt by `who`."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if who not in self._seen and len(self._seen) >= MAX_TRACKED:
                # Forget the quietest address rather than grow without bound.
                self._seen.pop(min(self._seen, key=lambda k: self._seen[k][-1]))
            self._seen.setdefault(who, deque(maxlen=self.limit)).append(now)

    def gate(self, who: str, now: float | None = None) -> Gate:
        """May `who`'s token be checked now? A locked address: once per `interval`."""
        now = time.monotonic() if now is None else now
        if not self.blocked_for(who, now):
            return Gate(failures=bool(self._seen.get(who)))
        with self._lock:
            ready = self._slots.get(who, 0.0)
            if ready > now:
                return Gate(locked=True, wait=ready - now, failures=True)
            if len(self._slots) >= MAX_TRACKED:
                self._slots = {k: v for k, v in self._slots.items() if v > now}
            if len(self._slots) < MAX_TRACKED:
                self._slots[who] = now + self.interval
            return Gate(locked=True, failures=True)

    def succeeded(self, who: str) -> None:
        """A correct token: forget `who`'s failures."""
        with self._lock:
            self._seen.pop(who, None)
            self._slots.pop(who, None)


class SharedLimiter:
    """Failures per address in Redis (a counter that expires with its window)."""

    def __init__(
        self,
        client: redis.Redis,
        channel: str,
        limit: int = MAX_FAILURES,
        window: float = FAILURE_WINDOW,
        interval: float = LOCKED_INTERVAL,
    ) -> None:
        self.client = client
        self.prefix = f"{channel}:auth:fail:"
        self.slot_prefix = f"{channel}:auth:slot:"
        self.limit = limit
        self.window = int(window)
        self.interval = interval
        self.interval_ms = max(int(interval * 1000), 1)
        self.local = FailedLogins(limit, window, interval)

    def gate(self, who: str) -> Gate:
        """May `who`'s token be checked now? A locked address: once per interval, shared."""
        slot = self.slot_prefix + who
        try:
            count = self.client.get(self.prefix + who)
            if count is None or int(count) < self.limit:
                local = self.local.gate(who)
                return replace(local, failures=local.failures or count is not None)
            # SET NX: one check per interval for the address, whichever worker gets it.
            if self.client.set(slot, 1, nx=True, px=self.interval_ms):
                return Gate(locked=True, failures=True)
            wait = self.client.pttl(slot)
        except redis.RedisError as exc:
            logger.warning("login limiter in Redis unavailable (%s); counting per worker", exc)
            return self.local.gate(who)
        return Gate(locked=True, wait=max(wait, 1) / 1000, failures=True)

    def succeeded(self, who: str) -> None:
        """A correct token: forget `who`'s failures everywhere."""
        self.local.succeeded(who)
        try:
            self.client.delete(self.prefix + who, self.slot_prefix + who)
        except redis.RedisError as exc:
            logger.warning("login limiter in Redis unavailable (%s); counting per worker", exc)

    def failed(self, who: str) -> None:
        """Count one failure of `who` for the window."""
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(self.prefix + who).expire(self.prefix + who, self.window, nx=True)
                pipe.execute()
        except redis.RedisError as exc:
            logger.warning("login limiter in Redis unavailable (%s); counting per worker", exc)
            self.local.failed(who)


class Limiter(Protocol):
    """What `check` needs: FailedLogins (one process) or SharedLimiter (Redis)."""

    interval: float

    def gate(self, who: str) -> Gate: ...
    def failed(self, who: str) -> None: ...
    def succeeded(self, who: str) -> None: ...


T = TypeVar("T")


def check(limiter: Limiter, who: str, match: Callable[[], T | None], what: str) -> T | Gate:
    """What `match` finds for a correct token, else the gate to answer with (429 if it waits).

    The one rule for every token (module docstring): a checked correct token
    opens and clears its address's failures; a wrong one counts, and from a
    locked address it is told to wait for the next check.
    """
    gate = limiter.gate(who)
    if gate.wait:
        return gate
    found = match()
    if found is not None:
        if gate.failures:
            limiter.succeeded(who)
        return found
    limiter.failed(who)
    logger.warning("%s from %s%s", what, who, " (locked out)" if gate.locked else "")
    return replace(gate, wait=limiter.interval) if gate.locked else gate
