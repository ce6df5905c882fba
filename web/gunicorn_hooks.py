"""gunicorn hooks: each worker starts its hub and metrics pusher, drains clients on exit."""

from __future__ import annotations

import logging
from typing import Any

import gevent

from web import metrics, worker

logger = logging.getLogger(__name__)


def post_worker_init(gunicorn_worker: Any) -> None:
    """Start the worker's hub and metrics pusher at once, and watch for the shutdown signal."""
    app = gunicorn_worker.wsgi
    with app.app_context():
        hub = worker.hub()
        bus = worker.bus()
    gevent.spawn(metrics.push_forever, hub, bus.client, bus.channel)
    gevent.spawn(_drain_on_exit, gunicorn_worker, hub)


def _drain_on_exit(gunicorn_worker: Any, hub: Any) -> None:
    # gunicorn flips `alive` on SIGTERM and then waits for open requests;
    # streams never end on their own, so tell them to reconnect elsewhere.
    while gunicorn_worker.alive:
        gevent.sleep(0.5)
    logger.info(
        "worker %s shutting down: telling %d clients to reconnect",
        gunicorn_worker.pid,
        hub.stats.clients,
    )
    hub.stop()


def worker_exit(server: Any, gunicorn_worker: Any) -> None:
    """Stop the hub if the worker exits some other way."""
    app = getattr(gunicorn_worker, "wsgi", None)
    extensions = getattr(app, "extensions", None)
    hub = extensions.get("hub") if extensions else None
    if hub is not None:
        hub.stop()
