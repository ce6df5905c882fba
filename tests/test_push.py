"""Direct writes (web/push.py) over real socket pairs: framing, a full buffer, a gone peer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from web.hub import Overrun
from web.push import Pusher, Writer, frame


class Chunks:
    """A client's ring cursor stand-in: hands out queued chunks, or raises Overrun."""

    def __init__(self, *chunks: bytes) -> None:
        self.queue = list(chunks)
        self.overrun = False

    def take(self) -> bytes | None:
        if self.overrun:
            raise Overrun("behind")
        return self.queue.pop(0) if self.queue else None


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.setblocking(False)
    try:
        yield server, client
    finally:
        server.close()
        client.close()


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    sock.settimeout(5)
    while len(data) < size:
        got = sock.recv(size - len(data))
        assert got, "peer closed early"
        data += got
    return data


def test_frame_is_an_http_chunk_only_when_chunked() -> None:
    assert frame(b"data:x\n\n", True) == b"8\r\ndata:x\n\n\r\n"
    assert frame(b"a" * 26, True).startswith(b"1A\r\n")
    assert frame(b"data:x\n\n", False) == b"data:x\n\n"


def test_a_client_that_keeps_up_gets_each_batch_without_its_greenlet(pair) -> None:
    server, client = pair
    chunks = Chunks(b"data:1\n\n")
    pusher = Pusher(tick=1.0)
    writer = Writer(server, True, chunks.take, heartbeat=5.0)
    pusher.attach(writer)
    assert read_exactly(client, 13) == b"8\r\ndata:1\n\n\r\n"
    chunks.queue.append(b"data:2\n\n")
    pusher.deliver()
    assert read_exactly(client, 13) == b"8\r\ndata:2\n\n\r\n"
    assert not writer.wake.is_set()  # nothing for the client's greenlet to do
    assert writer.pending is None


def test_a_full_buffer_wakes_the_client_which_drains_then_catches_up(pair) -> None:
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = b"data:" + b"x" * 400_000 + b"\n\n"
    chunks = Chunks(big)
    pusher = Pusher(tick=1.0)
    writer = Writer(server, False, chunks.take, heartbeat=5.0)
    pusher.attach(writer)
    assert writer.pending is not None
    assert writer.wake.is_set()
    chunks.queue.append(b"data:after\n\n")
    pusher.deliver()  # skipped: its greenlet owns the socket until it drains
    assert chunks.queue == [b"data:after\n\n"]
    received: list[bytes] = []
    reader = threading.Thread(
        target=lambda: received.append(read_exactly(client, len(big) + 12)), daemon=True
    )
    reader.start()
    blocking = server.dup()
    blocking.setblocking(True)
    try:
        assert pusher.drain(writer, blocking)
    finally:
        blocking.close()
    reader.join(10)
    assert received == [big + b"data:after\n\n"]  # in order, nothing lost or doubled
    assert writer.pending is None


def test_a_slow_client_past_the_ring_is_ended(pair) -> None:
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = b"data:" + b"x" * 400_000 + b"\n\n"
    chunks = Chunks(big)
    pusher = Pusher(tick=1.0)
    writer = Writer(server, False, chunks.take, heartbeat=5.0)
    pusher.attach(writer)
    chunks.overrun = True  # the ring moved past it while its buffer was full
    reader = threading.Thread(target=read_exactly, args=(client, len(big)), daemon=True)
    reader.start()
    blocking = server.dup()
    blocking.setblocking(True)
    blocking.settimeout(5)
    try:
        drained = pusher.drain(writer, blocking)
    finally:
        blocking.close()
    reader.join(10)
    assert drained is False  # what was refused went out whole, then it was ended


def test_a_gone_peer_ends_the_client_and_leaves_the_others(pair) -> None:
    server, client = pair
    other_server, other_client = socket.socketpair()
    other_server.setblocking(False)
    try:
        pusher = Pusher(tick=1.0)
        gone = Writer(server, False, Chunks().take, heartbeat=5.0)
        fine = Writer(other_server, False, Chunks().take, heartbeat=5.0)
        pusher.attach(gone)
        pusher.attach(fine)
        client.close()
        gone.take = Chunks(b"data:1\n\n").take
        fine.take = Chunks(b"data:1\n\n").take
        pusher.deliver()
        assert gone.failed
        assert gone.wake.is_set()
        assert pusher.writers == {fine}
        assert read_exactly(other_client, 8) == b"data:1\n\n"
    finally:
        other_server.close()
        other_client.close()


def test_heartbeat_only_to_clients_that_would_go_quiet(pair) -> None:
    server, client = pair
    pusher = Pusher(tick=0.25)
    quiet = Writer(server, True, Chunks().take, heartbeat=1.0)
    pusher.attach(quiet)
    pusher.heartbeats()
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(100)  # not due yet
    quiet.due -= 1.0
    pusher.heartbeats()
    assert read_exactly(client, 10) == b"5\r\n:hb\n\n\r\n"
