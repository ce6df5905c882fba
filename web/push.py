"""Direct writes: the hub sends each batch to its clients' sockets itself.

Waking one greenlet per client per batch (a switch, the generator, gunicorn's
write, then the send) made a worker's sweep grow with its clients
(docs/architecture.md, "Fan-out"). Here a client that keeps up costs one
non-blocking `send` per batch from the hub's own greenlet; only a client whose
socket buffer is full gets its greenlet woken, to finish the write with
gevent's blocking `sendall` and catch up from the ring, or be dropped as slow.
gunicorn keeps accept, parsing, the headers (the stream's first chunk goes
through it) and the end of the response.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import gevent.event

from web.sse import encode_comment

logger = logging.getLogger(__name__)


class Overrun(Exception):
    """The client's cursor fell off the ring's tail: it was too slow."""


# The client's next chunk from the ring (None: nothing for it); raises Overrun.
Take = Callable[[], bytes | None]


def frame(chunk: bytes, chunked: bool) -> bytes:
    """The bytes on the wire: an HTTP/1.1 chunk when gunicorn chunks the response."""
    return b"%X\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk


class Writer:
    """One client written to by the hub: its raw socket and where it stands."""

    __slots__ = ("chunked", "due", "failed", "heartbeat", "pending", "sock", "take", "wake")

    def __init__(self, sock: socket.socket, chunked: bool, take: Take, heartbeat: float) -> None:
        self.sock = sock  # the non-blocking socket under gevent's
        self.chunked = chunked
        self.take = take
        self.heartbeat = heartbeat
        self.due = time.monotonic() + heartbeat
        self.wake = gevent.event.Event()  # set when the client's own greenlet has work
        self.pending: memoryview | None = None  # what the socket buffer refused
        self.failed = False


class Pusher:
    """The writers of one hub's clients."""

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.writers: set[Writer] = set()

    def attach(self, writer: Writer) -> None:
        """Start writing to this client; first send what it has waiting."""
        self.writers.add(writer)
        self.flush(writer)

    def detach(self, writer: Writer) -> None:
        """Stop writing to this client."""
        self.writers.discard(writer)

    def deliver(self) -> None:
        """One non-blocking send per client that keeps up."""
        for writer in list(self.writers):
            if writer.pending is None and not writer.failed:
                self.flush(writer)

    def flush(self, writer: Writer) -> None:
        """Send the client's next chunk, if it has one."""
        try:
            chunk = writer.take()
        except Overrun:  # counted and logged by take
            self._fail(writer)
            return
        except Exception:  # a bug in one client's filter must not stop the hub's loop
            logger.exception("ended a stream whose next chunk failed")
            self._fail(writer)
            return
        if chunk is not None:
            writer.due = time.monotonic() + writer.heartbeat
            self._send(writer, frame(chunk, writer.chunked))

    def heartbeats(self) -> None:
        """A comment to each client that would otherwise go a heartbeat without bytes."""
        now = time.monotonic()
        beat = None
        for writer in list(self.writers):
            if writer.pending is None and not writer.failed and now >= writer.due - self.tick:
                beat = beat or encode_comment("hb")
                writer.due = now + writer.heartbeat
                self._send(writer, frame(beat, writer.chunked))

    def wake_all(self) -> None:
        """Have every client's greenlet look at the hub (it is stopping)."""
        for writer in list(self.writers):
            writer.wake.set()

    def drain(self, writer: Writer, blocking: socket.socket) -> bool:
        """In the client's greenlet: finish what the buffer refused, catch up; False to end it."""
        while writer.pending is not None:
            try:
                blocking.sendall(writer.pending)  # waits for this client only
            except OSError:
                return False
            writer.pending = None
            try:
                chunk = writer.take()
            except Overrun:  # dropped as slow (counted and logged by take)
                return False
            if chunk is not None:
                writer.due = time.monotonic() + writer.heartbeat
                writer.pending = memoryview(frame(chunk, writer.chunked))
        return True

    def _send(self, writer: Writer, data: bytes) -> None:
        try:
            sent = writer.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:  # the peer is gone: its greenlet ends the response
            logger.debug("stream write failed: %s", exc)
            self._fail(writer)
            return
        if sent < len(data):
            writer.pending = memoryview(data)[sent:]
            writer.wake.set()

    def _fail(self, writer: Writer) -> None:
        writer.failed = True
        self.writers.discard(writer)
        writer.wake.set()
