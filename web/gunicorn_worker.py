"""The gunicorn worker class: gevent's, with one send syscall per SSE chunk.

It swaps `__class__` on gevent's socket, a private detail of gevent checked
against one version by tests/test_private_apis.py (docs/architecture.md,
"Private APIs"): to send with one syscall, and to hand a stream's connection
to the hub (`hand_over`). Importing it does not monkey-patch; `python -m web`
does.
"""

from __future__ import annotations

import errno
from typing import Any

from gevent._socket3 import socket as GeventSocket
from gunicorn.workers.ggevent import GeventWorker


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


class _HandedOver(GeventSocket):
    """A connection the hub writes to now: to gunicorn it looks finished and empty."""

    __slots__ = ()

    def sendall(self, data: bytes, flags: int = 0) -> None:
        """Drop gunicorn's end of the body: the hub ends the response itself."""

    def recv(self, *args: Any) -> bytes:
        """No next request: gunicorn's keep-alive loop ends here."""
        return b""

    def recv_into(self, *args: Any) -> int:
        """No next request (see `recv`)."""
        return 0


def can_hand_over(sock: object) -> bool:
    """True for a client socket of `SSEWorker`, whose connection the hub may take."""
    return type(sock) is _OneSendSocket


def hand_over(sock: GeventSocket) -> None:
    """Give the OS socket under `sock` to the hub; gunicorn's handler then returns.

    The gevent wrapper lets go of the descriptor without closing it (its
    watchers dropped), so the handler greenlet, the request, the environ
    and the response all go when gunicorn's handler returns; the hub, which
    holds the OS socket, closes it (docs/architecture.md, "Fan-out").
    """
    sock.__class__ = _HandedOver
    sock._detach_socket("handed to the hub")


class SSEWorker(GeventWorker):
    """gunicorn's gevent worker with one send syscall per SSE chunk."""

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        """Serve one connection on the cheaper socket class."""
        if type(client) is GeventSocket:
            client.__class__ = _OneSendSocket
        super().handle(listener, client, addr)
