"""What a gunicorn worker shares between requests: the Redis pool and bus, and the hub.

Settings are read from `current_app.config["SETTINGS"]`; the hub is built
on first use in the worker, never in the gunicorn master
(docs/architecture.md, "Processes").
"""

from __future__ import annotations

from flask import Flask, current_app
from gevent import monkey

from shared import redis_conn
from shared.bus import Bus
from shared.settings import Settings
from web import db
from web.hub import Hub

# Resumes and API calls share a few connections; a burst of them waits
# for one instead of opening a connection per browser (flask-sse's flaw).
REDIS_POOL_SIZE = 8
# Only short commands use the pool (no blocking reads): a master that stops
# answering fails a request after this many seconds instead of never.
SOCKET_TIMEOUT = 5.0


def init_app(app: Flask) -> None:
    """Build the worker's bus on a bounded pool; nothing connects until first used."""
    settings: Settings = app.config["SETTINGS"]
    client = redis_conn.pooled_client(settings, REDIS_POOL_SIZE, socket_timeout=SOCKET_TIMEOUT)
    app.extensions["bus"] = Bus.for_settings(client, settings)
    app.extensions["hub"] = None


def bus() -> Bus:
    """The worker's bus (pooled Redis client)."""
    return current_app.extensions["bus"]


def hub() -> Hub:
    """The worker's hub, built and started on first use."""
    found = current_app.extensions["hub"]
    if found is None:
        found = current_app.extensions["hub"] = _build_hub(current_app)
    return found


def started_hub() -> Hub | None:
    """The hub if a request in this worker built it, else None."""
    return current_app.extensions["hub"]


def _build_hub(app: Flask) -> Hub:
    settings: Settings = app.config["SETTINGS"]
    path = settings.database_path
    # The subscription gets a client of its own so a busy pool can never starve it.
    built = Hub(
        redis_conn.client(settings),
        app.extensions["bus"],
        seed=lambda: db.latest_events(path, settings.query_timeout),
        heartbeat=settings.heartbeat,
        max_sensors=settings.max_sensors,
        expire_after=settings.sensor_expiry_days * 86400,
    )
    # Its greenlets need a gevent-patched worker; in an unpatched process
    # (Flask's test client) they would block the thread.
    if monkey.is_module_patched("socket"):
        built.start()
    return built
