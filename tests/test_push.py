"""Direct writes (web/push.py) over real socket pairs: framing, a full buffer, a gone peer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import gevent
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


def wait_until(check, timeout: float = 10.0) -> None:
    """Run gevent's loop (the write watchers) until `check()` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        gevent.sleep(0.01)


class Ended:
    """Counts how often a writer was let go."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_a_client_that_keeps_up_gets_each_batch_from_the_hub(pair) -> None:
    server, client = pair
    chunks = Chunks(b"data:1\n\n")
    pusher = Pusher(tick=1.0)
    writer = Writer(server, True, chunks.take, heartbeat=5.0)
    pusher.attach(writer)
    assert read_exactly(client, 13) == b"8\r\ndata:1\n\n\r\n"
    chunks.queue.append(b"data:2\n\n")
    pusher.deliver()
    assert read_exactly(client, 13) == b"8\r\ndata:2\n\n\r\n"
    assert writer.pending is None
    assert writer.watcher is None  # nothing waits on the loop for it


def test_a_full_buffer_is_finished_on_the_loop_then_the_client_catches_up(pair) -> None:
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = b"data:" + b"x" * 400_000 + b"\n\n"
    chunks = Chunks(big)
    pusher = Pusher(tick=1.0)
    writer = Writer(server, False, chunks.take, heartbeat=5.0)
    pusher.attach(writer)
    assert writer.pending is not None
    assert writer.watcher is not None
    chunks.queue.append(b"data:after\n\n")
    pusher.deliver()  # skipped: its refused write goes first
    assert chunks.queue == [b"data:after\n\n"]
    received: list[bytes] = []
    reader = threading.Thread(
        target=lambda: received.append(read_exactly(client, len(big) + 12)), daemon=True
    )
    reader.start()
    wait_until(lambda: writer.pending is None and not chunks.queue)
    reader.join(10)
    assert received == [big + b"data:after\n\n"]  # in order, nothing lost or doubled
    assert writer.watcher is None
    assert pusher.writers == {writer}


def test_a_slow_client_past_the_ring_is_ended(pair) -> None:
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = b"data:" + b"x" * 400_000 + b"\n\n"
    chunks = Chunks(big)
    ended = Ended()
    left = Ended()
    pusher = Pusher(tick=1.0, left=left)
    writer = Writer(server, False, chunks.take, heartbeat=5.0, ended=ended)
    pusher.attach(writer)
    chunks.overrun = True  # the ring moved past it while its buffer was full
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(_read_to_end(client)), daemon=True)
    reader.start()
    wait_until(lambda: writer.sock is None)
    reader.join(10)
    assert got == [big]  # what was refused went out whole, then the connection closed
    assert (ended.count, left.count) == (1, 1)
    assert not pusher.writers


def _read_to_end(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_gone_peer_ends_the_client_and_leaves_the_others(pair) -> None:
    server, client = pair
    other_server, other_client = socket.socketpair()
    other_server.setblocking(False)
    try:
        ended = Ended()
        pusher = Pusher(tick=1.0)
        gone = Writer(server, False, Chunks().take, heartbeat=5.0, ended=ended)
        fine = Writer(other_server, False, Chunks().take, heartbeat=5.0)
        pusher.attach(gone)
        pusher.attach(fine)
        client.close()
        gone.take = Chunks(b"data:1\n\n").take
        fine.take = Chunks(b"data:1\n\n").take
        pusher.deliver()
        assert gone.sock is None
        assert ended.count == 1
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


def test_closing_tells_each_client_to_reconnect_and_ends_its_response(pair) -> None:
    server, client = pair
    ended = Ended()
    pusher = Pusher(tick=1.0)
    pusher.attach(Writer(server, True, Chunks().take, heartbeat=5.0, ended=ended))
    pusher.close_all()
    body = _read_to_end(client)
    size, _, rest = body.partition(b"\r\n")
    event, _, last = rest.partition(b"\r\n")
    assert event.startswith(b"retry:")
    assert len(event) == int(size, 16)
    assert 500 <= int(event[6:].strip()) <= 5000  # spread, so they do not all come back at once
    assert last == b"0\r\n\r\n"  # the chunked body ends properly
    assert ended.count == 1
    assert not pusher.writers


def test_a_long_sweep_lets_the_rest_of_the_worker_run(pair) -> None:
    server, _client = pair
    order: list[str] = []

    def slow_take() -> None:
        order.append("client")
        end = time.monotonic() + 0.0002  # 400 clients: a sweep of 80 ms or more
        while time.monotonic() < end:
            pass
        return None  # nothing to send: only the sweep's length matters here

    pusher = Pusher(tick=1.0)
    for _ in range(400):
        pusher.writers.add(Writer(server, False, slow_take, heartbeat=5.0))
    other = gevent.spawn(order.append, "new stream")  # ready before the sweep starts
    pusher.deliver()
    other.join(1)
    # Served between slices of the sweep, not after all 400 clients.
    assert "new stream" in order[:-64]
    assert order.count("client") == 400
