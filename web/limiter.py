"""Failed logins per client address, shared by every worker and replica through Redis.

Only failures count, per address (web/peers.py finds the real one behind a
trusted proxy), so one guesser never locks out anyone else. While Redis is
unreachable each worker counts in memory instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import redis

logger = logging.getLogger(__name__)

MAX_FAILURES = 10
FAILURE_WINDOW = 300.0
MAX_TRACKED = 10_000


@dataclass
class FailedLogins:
    """A sliding window of failed attempts per client address, bounded in memory."""

    limit: int = MAX_FAILURES
    window: float = FAILURE_WINDOW
    _seen: dict[str, deque[float]] = field(default_factory=dict)
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


class SharedLimiter:
    """Failures per address in Redis (a counter that expires with its window)."""

    def __init__(
        self,
        client: redis.Redis,
        channel: str,
        limit: int = MAX_FAILURES,
        window: float = FAILURE_WINDOW,
    ) -> None:
        self.client = client
        self.prefix = f"{channel}:auth:fail:"
        self.limit = limit
        self.window = int(window)
        self.local = FailedLogins(limit, window)

    def blocked_for(self, who: str) -> float:
        """Seconds `who` must wait; 0 if it may try now."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                count, ttl = pipe.get(self.prefix + who).ttl(self.prefix + who).execute()
        except redis.RedisError as exc:
            logger.warning("login limiter in Redis unavailable (%s); counting per worker", exc)
            return self.local.blocked_for(who)
        if count is None or int(count) < self.limit:
            return self.local.blocked_for(who)
        return float(max(ttl, 1))

    def failed(self, who: str) -> None:
        """Count one failure of `who` for the window."""
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(self.prefix + who).expire(self.prefix + who, self.window, nx=True)
                pipe.execute()
        except redis.RedisError as exc:
            logger.warning("login limiter in Redis unavailable (%s); counting per worker", exc)
            self.local.failed(who)
