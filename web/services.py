"""What a worker holds for every request: settings, the Redis clients, the hub."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import redis
from flask import current_app
from gevent import monkey

from shared import store
from shared.bus import Bus, Event, connect
from shared.settings import Settings
from web import db
from web.hub import Hub

logger = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Resumes and API calls share a few connections; a burst of them waits
# for one instead of opening a connection per browser (flask-sse's flaw).
REDIS_POOL_SIZE = 8


@dataclass
class Services:
    """One per app (so one per gunicorn worker): created in the worker only."""

    settings: Settings
    redis: redis.Redis
    bus: Bus
    _hub: Hub | None = field(default=None, repr=False)

    @classmethod
    def create(cls, settings: Settings) -> Services:
        """Build the clients; nothing connects until first used."""
        url = settings.redis_url or DEFAULT_REDIS_URL
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_POOL_SIZE,
            timeout=5,
            socket_connect_timeout=5,
            socket_keepalive=True,
            health_check_interval=30,
        )
        client = redis.Redis(connection_pool=pool)
        bus = Bus.for_settings(client, settings)
        return cls(settings=settings, redis=client, bus=bus)

    def hub(self) -> Hub:
        """The worker's hub, started on first use (never in the gunicorn master)."""
        if self._hub is None:
            url = self.settings.redis_url or DEFAULT_REDIS_URL
            # The subscription gets a client of its own so a busy pool can
            # never starve it.
            self._hub = Hub(
                connect(url),
                self.bus,
                seed=self.latest_from_db,
                heartbeat=self.settings.heartbeat,
            )
            # Its greenlets need a gevent-patched worker; in an unpatched
            # process (Flask's test client) they would block the thread.
            if not monkey.is_module_patched("socket"):
                return self._hub
            self._hub.start()
            from web.metrics import push_forever

            gevent.spawn(push_forever, self._hub, self.redis, self.settings.redis_channel)
        return self._hub

    @property
    def hub_started(self) -> bool:
        """True once a request in this worker started the hub."""
        return self._hub is not None

    def latest_from_db(self) -> list[Event]:
        """The newest stored reading per sensor (empty if there is no database)."""
        path = Path(self.settings.database_path)
        if not path.exists():
            return []
        return db.read_at(path, store.latest, self.settings.query_timeout)

    def history(self, last_id: str, limit: int) -> list[Event] | None:
        """Stored events after a stream id (None if more than `limit`), off the hub."""

        def query(conn: sqlite3.Connection) -> list[Event] | None:
            # Counting in the index first keeps an ancient id (1-0) from
            # decoding `limit` rows only to be refused.
            if store.more_events_after(conn, last_id, limit):
                return None
            return store.events_after(conn, last_id, limit=limit)

        path = Path(self.settings.database_path)
        return db.read_at(path, query, self.settings.query_timeout)


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["sensor_display"]
