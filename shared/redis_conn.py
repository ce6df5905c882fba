"""How every process reaches Redis: the REDIS_URL server, or the master Sentinel names.

With REDIS_SENTINELS set, the host and port of REDIS_URL are ignored; its user,
password and database still apply, so each role keeps its own ACL user on
whichever node is master.

No client retries behind its caller's back: redis-py would otherwise
reconnect (and re-subscribe) for seconds, so the hub would skip its stream
catch-up and lose what was published meanwhile, a producer would stop
sampling while it waited, and after a failover the retries keep dialling the
old master (redis-py #3560, #3874). Every caller runs its own backoff loop,
and each new connection asks Sentinel where the master is.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from shared.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# A Sentinel answers from memory; one that takes longer is down, try the next.
SENTINEL_TIMEOUT = 1.0
# With Sentinel, a retry costs one question to it, and a failover ends within
# seconds: retry every second, not after the long backoff a lone server gets.
SENTINEL_RETRY_CAP = 1.0


class BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """A bounded pool on the current master: callers wait for a free connection."""


def _base_options(extra: dict[str, Any]) -> dict[str, Any]:
    """Notice dead connections instead of hanging on them; never retry silently."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 30,
        "retry_on_timeout": False,
        "retry": Retry(NoBackoff(), 0),
    }
    options.update(extra)
    return options


def connect(url: str, **options: Any) -> redis.Redis:
    """A client of the server at `url` itself (tests, benchmarks, one-off tools)."""
    return redis.Redis.from_url(url, **_base_options(options))


def _credentials(url: str) -> dict[str, Any]:
    """User, password and database of a redis:// URL (its host is Sentinel's to choose)."""
    parts = urlsplit(url or DEFAULT_REDIS_URL)
    out: dict[str, Any] = {"db": int(parts.path.strip("/") or 0)}
    if parts.username:
        out["username"] = unquote(parts.username)
    if parts.password:
        out["password"] = unquote(parts.password)
    return out


def sentinel_for(settings: Settings) -> Sentinel:
    """A Sentinel client for REDIS_SENTINELS, authenticated with REDIS_SENTINEL_PASSWORD."""
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
        # redis-py retries a refused connection with backoff (seconds); a
        # dead Sentinel must cost nothing: the next one is asked at once.
        "retry": Retry(NoBackoff(), 0),
    }
    if settings.redis_sentinel_password:
        sentinel_kwargs["password"] = settings.redis_sentinel_password
    return Sentinel(list(settings.redis_sentinels), sentinel_kwargs=sentinel_kwargs)


def client(settings: Settings, **options: Any) -> redis.Redis:
    """A client of the master; `options` as for redis.Redis (socket_timeout, client_name...)."""
    options = _base_options(options)
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.redis_url or DEFAULT_REDIS_URL, **options)
    return sentinel_for(settings).master_for(
        settings.redis_sentinel_master, **_credentials(settings.redis_url), **options
    )


def pooled_client(settings: Settings, max_connections: int, **options: Any) -> redis.Redis:
    """A client whose callers share `max_connections`, waiting up to 5 s for one."""
    options = _base_options({"max_connections": max_connections, "timeout": 5, **options})
    if not settings.redis_sentinels:
        pool = redis.BlockingConnectionPool.from_url(
            settings.redis_url or DEFAULT_REDIS_URL, **options
        )
        return redis.Redis(connection_pool=pool)
    sentinel = sentinel_for(settings)
    return sentinel.master_for(
        settings.redis_sentinel_master,
        connection_pool_class=BlockingSentinelPool,
        **_credentials(settings.redis_url),
        **options,
    )


def retry_cap(client: redis.Redis, cap: float) -> float:
    """The longest wait between reconnects: `cap`, or a second under Sentinel."""
    if isinstance(client.connection_pool, SentinelConnectionPool):
        return min(cap, SENTINEL_RETRY_CAP)
    return cap


def current_master(client: redis.Redis) -> tuple[str, int] | None:
    """The master Sentinel names now; None without Sentinel or mid-failover.

    Asking also drops the pool's idle connections to a former master.
    """
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        return None
    try:
        host, port = pool.get_master_address()
    except MasterNotFoundError:
        return None  # no master right now: keep what we have until there is one
    return host, int(port)


def master_moved(client: redis.Redis, connection: Any) -> bool:
    """True if Sentinel now names another master than the one `connection` talks to.

    A subscription never sends a command, so nothing tells it that its node
    was demoted or paused (redis-py #1500); long-lived readers ask here.
    """
    if connection is None or getattr(connection, "host", None) is None:
        return False
    address = current_master(client)
    current = (connection.host, int(connection.port))
    if address is None or current == address:
        return False
    logger.warning("Sentinel names a new master %s:%s (was %s:%s)", *address, *current)
    return True


def describe(settings: Settings) -> str:
    """Where Redis is, for a log line (no secrets)."""
    if settings.redis_sentinels:
        hosts = ",".join(f"{h}:{p}" for h, p in settings.redis_sentinels)
        return f"master {settings.redis_sentinel_master!r} via Sentinel {hosts}"
    parts = urlsplit(settings.redis_url or DEFAULT_REDIS_URL)
    return f"{parts.hostname}:{parts.port or 6379}"
