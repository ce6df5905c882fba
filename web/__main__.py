"""`python -m web`: gunicorn with gevent workers, the command the web image runs."""

from __future__ import annotations

# Patch before gunicorn imports ssl and the worker imports redis: gevent
# cannot fix modules that were imported unpatched.
from gevent import monkey

monkey.patch_all()

import errno  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from gevent._socket3 import socket as GeventSocket  # noqa: E402
from gunicorn.app.base import BaseApplication  # noqa: E402
from gunicorn.workers.ggevent import GeventWorker  # noqa: E402

from shared.logs import startup  # noqa: E402
from shared.settings import Settings  # noqa: E402
from web import gunicorn_hooks  # noqa: E402

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


class _OneSendSocket(GeventSocket):
    """A client socket whose sendall tries one plain send first."""

    __slots__ = ()

    def sendall(self, data: bytes, flags: int = 0) -> None:
        """Send all of `data`; gevent's own loop only for what the buffer refused."""
        # gevent's sendall asks the kernel for SO_SNDBUF on every call: a
        # second syscall per SSE chunk (11% of a worker under fan-out load,
        # py-spy), though a chunk nearly always fits the socket buffer.
        try:
            try:
                sent = self._sock.send(data, flags)
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                super().sendall(memoryview(data)[sent:], flags)
        except TimeoutError as exc:
            # TCP_USER_TIMEOUT cut a peer that stopped reading: an expected end
            # of a stream, which gunicorn logs quietly as EPIPE, not as a
            # "Socket error" traceback.
            raise BrokenPipeError(errno.EPIPE, f"client stopped reading ({exc})") from None


class SSEWorker(GeventWorker):
    """gunicorn's gevent worker with one send syscall per SSE chunk."""

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        """Serve one connection on the cheaper socket class."""
        if type(client) is GeventSocket:
            client.__class__ = _OneSendSocket
        super().handle(listener, client, addr)


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
