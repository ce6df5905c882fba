"""Direct writes: the hub owns its idle clients and sends each batch to their sockets itself.

Waking one greenlet per client per batch (a switch, the generator, gunicorn's
write, then the send) made a worker's sweep grow with its clients, and a
greenlet waiting in gunicorn's handler kept its stack, the request and the
environ alive for the life of a stream (docs/architecture.md, "Fan-out").
Here gunicorn serves the request and the stream's first chunk, then hands
the connection over: a client is a `Writer` (its raw socket and its cursor)
and costs one non-blocking `send` per batch from the hub's greenlet. A client
whose socket buffer is full gets a write watcher on the event loop until it
drains and catches up from the ring, or is dropped as slow; the hub ends
each response itself (the last chunk, then close).
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable, Iterator

import gevent

from web.sse import encode_comment, encode_retry

logger = logging.getLogger(__name__)

# The last chunk of an HTTP/1.1 chunked body.
LAST_CHUNK = b"0\r\n\r\n"
_WRITE = 2  # libev/libuv: wait until writable
# Longest a sweep runs before the hub lets the rest of the worker run (seconds).
SLICE_S = 0.002


class Overrun(Exception):
    """The client's cursor fell off the ring's tail: it was too slow."""


# The client's next chunk from the ring (None: nothing for it); raises Overrun.
Take = Callable[[], bytes | None]


def frame(chunk: bytes, chunked: bool) -> bytes:
    """The bytes on the wire: an HTTP/1.1 chunk when gunicorn chunks the response."""
    return b"%X\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk


def reconnect_later() -> bytes:
    """The last event of a stream whose worker stops: reconnect, spread over a few seconds."""
    return encode_retry(random.randint(500, 5000))


def _sliced(writers: set[Writer]) -> Iterator[Writer]:
    """Every writer (as they were at the start), pausing for the loop every SLICE_S seconds."""
    start = time.monotonic()
    for count, writer in enumerate(list(writers), 1):
        if not count & 63 and time.monotonic() - start > SLICE_S:
            # New streams (accept, their first chunk) and the ticker run
            # between slices instead of after a whole sweep. idle() polls I/O
            # without blocking and resumes once the rest is done; sleep(0)
            # resumes before the loop polls, and a timer sleeps a whole
            # millisecond of epoll_wait (half of each slice).
            gevent.idle()
            start = time.monotonic()
        yield writer


class Writer:
    """One client the hub writes to: its raw socket and where it stands."""

    __slots__ = ("chunked", "due", "ended", "heartbeat", "pending", "sock", "take", "watcher")

    def __init__(
        self,
        sock: socket.socket,
        chunked: bool,
        take: Take,
        heartbeat: float,
        ended: Callable[[], None] | None = None,
    ) -> None:
        self.sock: socket.socket | None = sock  # non-blocking; None once ended
        self.chunked = chunked
        self.take = take
        self.heartbeat = heartbeat
        self.due = time.monotonic() + heartbeat
        self.ended = ended  # run once when the hub lets the client go
        self.pending: memoryview | None = None  # what the socket buffer refused
        self.watcher: object | None = None  # the loop's write watcher while pending


class Pusher:
    """The writers of one hub's clients."""

    def __init__(self, tick: float, left: Callable[[], None] | None = None) -> None:
        self.tick = tick
        self.left = left  # told each time a client ends (the hub's count)
        self.writers: set[Writer] = set()

    def attach(self, writer: Writer) -> None:
        """Own this client from now on; first send what it has waiting."""
        self.writers.add(writer)
        self.flush(writer)

    def deliver(self) -> None:
        """One non-blocking send per client that keeps up, yielding to the loop every slice."""
        now = time.monotonic()
        # Unfiltered clients at the head share one chunk object: frame it once.
        last: bytes | None = None
        framed = b""
        for writer in _sliced(self.writers):
            if writer.pending is not None or writer.sock is None:
                continue
            chunk = self._take(writer)
            if chunk is None:
                continue
            writer.due = now + writer.heartbeat  # a sweep late at most: within a tick
            if writer.chunked:
                if chunk is not last:
                    last, framed = chunk, frame(chunk, True)
                self._send(writer, framed)
            else:
                self._send(writer, chunk)

    def flush(self, writer: Writer) -> None:
        """Send the client's next chunk, if it has one."""
        chunk = self._take(writer)
        if chunk is not None:
            writer.due = time.monotonic() + writer.heartbeat
            self._send(writer, frame(chunk, writer.chunked))

    def heartbeats(self) -> None:
        """A comment to each client that would otherwise go a heartbeat without bytes."""
        now = time.monotonic()
        beats: dict[bool, bytes] = {}
        for writer in _sliced(self.writers):
            if writer.pending is None and writer.sock is not None and now >= writer.due - self.tick:
                beat = beats.get(writer.chunked)
                if beat is None:
                    beat = beats[writer.chunked] = frame(encode_comment("hb"), writer.chunked)
                writer.due = now + writer.heartbeat
                self._send(writer, beat)

    def close_all(self) -> None:
        """The worker stops: tell every client to reconnect elsewhere, end each response."""
        for writer in list(self.writers):
            sock = writer.sock
            if sock is None:
                continue
            data = frame(reconnect_later(), writer.chunked)
            if writer.chunked:
                data += LAST_CHUNK
            if writer.pending is not None:
                data = bytes(writer.pending) + data
            try:
                sock.send(data)  # what does not fit is lost: the client reconnects anyway
            except OSError as exc:
                logger.debug("could not tell a client to reconnect: %s", exc)
            self.end(writer)

    def end(self, writer: Writer) -> None:
        """Let the client go: close its connection, give back what it held."""
        sock = writer.sock
        if sock is None:
            return
        writer.sock = None
        self.writers.discard(writer)
        self._unwatch(writer)
        writer.pending = None
        try:
            sock.close()
        except OSError as exc:
            logger.debug("closing a stream: %s", exc)
        if writer.ended is not None:
            ended, writer.ended = writer.ended, None
            ended()
        if self.left is not None:
            self.left()

    def _take(self, writer: Writer) -> bytes | None:
        try:
            return writer.take()
        except Exception as exc:  # see _take_failed
            self._take_failed(writer, exc)
        return None

    def _take_failed(self, writer: Writer, exc: Exception) -> None:
        if not isinstance(exc, Overrun):  # Overrun: dropped as slow, counted and logged by take
            # A bug in one client's filter must not stop the hub's loop.
            logger.error("ended a stream whose next chunk failed", exc_info=exc)
        self.end(writer)

    def _send(self, writer: Writer, data: bytes) -> None:
        try:
            sent = writer.sock.send(data)  # type: ignore[union-attr]
        except BlockingIOError:
            sent = 0
        except OSError as exc:  # the peer is gone
            logger.debug("stream write failed: %s", exc)
            self.end(writer)
            return
        if sent < len(data):
            writer.pending = memoryview(data)[sent:]
            self._watch(writer)

    def _watch(self, writer: Writer) -> None:
        """Finish the refused write when the socket takes more; until then skip this client."""
        if writer.watcher is None and writer.sock is not None:
            watcher = gevent.get_hub().loop.io(writer.sock.fileno(), _WRITE)
            writer.watcher = watcher
            watcher.start(self._writable, writer)

    def _unwatch(self, writer: Writer) -> None:
        watcher, writer.watcher = writer.watcher, None
        if watcher is not None:
            watcher.stop()  # type: ignore[attr-defined]
            watcher.close()  # type: ignore[attr-defined]

    def _writable(self, writer: Writer) -> None:
        """On the loop: send what was refused, then catch up from the ring; or end the client."""
        try:
            while writer.pending is not None and writer.sock is not None:
                pending = writer.pending
                try:
                    sent = writer.sock.send(pending)
                except BlockingIOError:
                    return
                except OSError as exc:  # gone, or cut by TCP_USER_TIMEOUT (stopped reading)
                    logger.debug("stream write failed: %s", exc)
                    self.end(writer)
                    return
                if sent < len(pending):
                    writer.pending = pending[sent:]
                    return
                writer.pending = None
                chunk = self._take(writer)  # dropped as slow if the ring moved past it
                if chunk is not None:
                    writer.due = time.monotonic() + writer.heartbeat
                    writer.pending = memoryview(frame(chunk, writer.chunked))
            self._unwatch(writer)
        except Exception:  # never let one client's error reach the event loop
            logger.exception("ended a stream whose write failed")
            self.end(writer)
