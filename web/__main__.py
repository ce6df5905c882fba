"""`python -m web`: gunicorn with gevent workers, the command the web image runs."""

from __future__ import annotations

# Patch before gunicorn imports ssl and the worker imports redis: gevent
# cannot fix modules that were imported unpatched.
from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from gunicorn.app.base import BaseApplication  # noqa: E402

from shared.logs import startup  # noqa: E402
from shared.settings import Settings  # noqa: E402
from web import gunicorn_hooks  # noqa: E402
from web.gunicorn_worker import SSEWorker  # noqa: E402

logger = logging.getLogger(__name__)


class WebServer(BaseApplication):
    """gunicorn configured from Settings; the app is built in each worker."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from web import create_app

        return create_app()


def options(settings: Settings) -> dict[str, Any]:
    """gunicorn settings for many long-lived SSE connections."""
    return {
        "bind": f"{settings.bind}:{settings.port}",
        "workers": settings.web_workers,
        "worker_class": SSEWorker,
        # gunicorn's default of 1,000 connections per worker caps the clients.
        "worker_connections": 50_000,
        "backlog": 4096,
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 75,
        "accesslog": None,  # a line per stream reconnect is noise; errors still log
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "sensor-display-web",
        # Several replicas share a host (and a read-only root in containers).
        "control_socket_disable": True,
        "post_worker_init": gunicorn_hooks.post_worker_init,
        "worker_exit": gunicorn_hooks.worker_exit,
    }


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one: one fd per client."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def main() -> int:
    """Run the server until SIGTERM/SIGINT."""
    settings = startup("sensor-display web")
    limit = raise_fd_limit()
    logger.info(
        "web on http://%s:%s, %d gevent workers, fd limit %d",
        settings.bind,
        settings.port,
        settings.web_workers,
        limit,
    )
    WebServer(options(settings)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
