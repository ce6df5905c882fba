"""The live path with real parts: redis-server, `python -m web` (gunicorn + gevent)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools.stack import Stack
from shared.bus import Bus
from shared.reading import Reading

pytestmark = pytest.mark.slow


def wait_for(check, timeout: float = 10.0, what: str = "condition"):
    """Poll `check` until it returns something truthy, with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} not met within {timeout}s")


OPEN: list[RawStream] = []


@pytest.fixture(autouse=True)
def _close_streams() -> Iterator[None]:
    """Close every stream a test opened, even when it fails half way."""
    yield
    while OPEN:
        OPEN.pop().close()


class RawStream:
    """A bare SSE connection: what a browser sends, bytes as they arrive."""

    def __init__(self, url: str, path: str = "/stream", headers: str = "") -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        OPEN.append(self)
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        self.buffer = b""

    def read_until(self, marker: bytes, timeout: float = 10.0) -> bytes:
        """Everything received up to and including `marker`."""
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError(f"no {marker!r} in {self.buffer[-600:]!r}") from None
            if not chunk:
                raise ConnectionError("server closed the stream")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(marker)
        return head + marker

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def web(tmp_path: Path, redis_url: str) -> Iterator[tuple[str, Stack]]:
    stack = Stack.create(
        tmp_path,
        {"REDIS_URL": redis_url, "WEB_WORKERS": "2", "HEARTBEAT_INTERVAL": "0.5"},
        log_dir=tmp_path / "logs",
    )
    try:
        yield stack.start_web(), stack
    finally:
        stack.stop_all()


def publish(redis_url: str, seq: int, sensor: str = "demo") -> str | None:
    client = redis.Redis.from_url(redis_url)
    try:
        reading = Reading(
            source="lab",
            sensor=sensor,
            ts=time.time(),
            seq=seq,
            values={"temperature_c": 20.0 + seq / 10},
        )
        return Bus(client).publish(reading)
    finally:
        client.close()


def test_stream_opens_at_once_with_the_headers_a_proxy_needs(web) -> None:
    url, _ = web
    stream = RawStream(url)
    head = stream.read_until(b":connected\n\n", timeout=3)
    assert b"HTTP/1.1 200" in head
    assert b"Content-Type: text/event-stream" in head
    assert b"Cache-Control: no-cache" in head
    assert b"X-Accel-Buffering: no" in head
    assert b"retry:2000" in head
    assert stream.read_until(b":hb\n\n", timeout=3)  # heartbeat while idle
    stream.close()


def test_a_published_reading_reaches_a_connected_client(web, redis_url: str) -> None:
    url, _ = web
    stream = RawStream(url)
    stream.read_until(b":connected\n\n")
    sent = time.monotonic()
    event_id = publish(redis_url, 1)
    block = stream.read_until(f"id:{event_id}\n\n".encode())
    elapsed = time.monotonic() - sent
    data = json.loads(block.split(b"data:")[-1].split(b"\n")[0])
    assert data["seq"] == 1
    assert data["values"] == {"temperature_c": 20.1}
    assert elapsed < 2.0
    stream.close()


def test_filters_pick_sensors(web, redis_url: str) -> None:
    url, _ = web
    stream = RawStream(url, "/stream?sensor=cpu")
    stream.read_until(b":connected\n\n")
    publish(redis_url, 1, sensor="demo")
    cpu_id = publish(redis_url, 1, sensor="cpu")
    block = stream.read_until(f"id:{cpu_id}\n\n".encode())
    assert b'"sensor":"demo"' not in block
    stream.close()


def test_bad_filter_is_a_400_naming_the_parameter(web) -> None:
    url, _ = web
    stream = RawStream(url, "/stream?source=no%20spaces")
    head = stream.read_until(b"}", timeout=5)
    assert b"HTTP/1.1 400" in head
    assert b"source" in head
    stream.close()


def metric(url: str, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"sensor_display_{name} "):
                return float(line.split()[-1])
    raise KeyError(name)


def test_a_disconnected_client_is_released(web) -> None:
    url, _ = web
    streams = [RawStream(url) for _ in range(5)]
    for s in streams:
        s.read_until(b":connected\n\n")
    wait_for(lambda: metric(url, "clients") == 5, what="5 clients counted")
    for s in streams:
        s.close()
    # Noticed at the next write at the latest: a heartbeat (0.5 s here).
    wait_for(lambda: metric(url, "clients") == 0, what="clients released")


def test_many_clients_share_one_redis_connection(tmp_path: Path, redis_url: str) -> None:
    stack = Stack.create(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "WEB_WORKERS": "1",
            "HEARTBEAT_INTERVAL": "5",
            "STREAM_MAX_PER_CLIENT": "1000",  # every client is this host
        },
    )
    client = redis.Redis.from_url(redis_url)
    try:
        url = stack.start_web()
        before = len(client.client_list())
        streams = [RawStream(url) for _ in range(200)]
        for s in streams:
            s.read_until(b":connected\n\n")
        event_id = publish(redis_url, 7)
        for s in streams:
            s.read_until(f"id:{event_id}\n\n".encode())
        pubsub = [c for c in client.client_list() if int(c.get("sub", 0))]
        assert len(pubsub) == 1, pubsub
        # The subscription plus at most the worker's metrics/pool connection.
        assert len(client.client_list()) - before <= 2
        for s in streams:
            s.close()
    finally:
        client.close()
        stack.stop_all()


def test_stream_answers_200_while_redis_is_down(tmp_path: Path) -> None:
    from devtools.redis_server import free_port

    stack = Stack.create(
        tmp_path,
        {
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "HEARTBEAT_INTERVAL": "0.5",
            "WEB_WORKERS": "1",
        },
    )
    try:
        url = stack.start_web()
        stream = RawStream(url)
        head = stream.read_until(b":connected\n\n", timeout=5)
        assert b"HTTP/1.1 200" in head
        assert stream.read_until(b":hb\n\n", timeout=5)
        stream.close()
    finally:
        stack.stop_all()
