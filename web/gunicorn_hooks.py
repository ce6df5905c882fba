"""gunicorn hooks: start the hub in each worker, drain its clients on shutdown."""

from __future__ import annotations

import logging
from typing import Any

import gevent

logger = logging.getLogger(__name__)


def post_worker_init(worker: Any) -> None:
    """Start the worker's hub at once, and watch for the shutdown signal."""
    services = worker.wsgi.extensions["sensor_display"]
    hub = services.hub()
    gevent.spawn(_drain_on_exit, worker, hub)


def _drain_on_exit(worker: Any, hub: Any) -> None:
    # gunicorn flips `alive` on SIGTERM and then waits for open requests;
    # streams never end on their own, so tell them to reconnect elsewhere.
    while worker.alive:
        gevent.sleep(0.5)
    logger.info(
        "worker %s shutting down: telling %d clients to reconnect", worker.pid, hub.stats.clients
    )
    hub.stop()


def worker_exit(server: Any, worker: Any) -> None:
    """Stop the hub if the worker exits some other way."""
    services = getattr(worker, "wsgi", None)
    if services is not None and hasattr(services, "extensions"):
        hub = services.extensions["sensor_display"]._hub
        if hub is not None:
            hub.stop()
