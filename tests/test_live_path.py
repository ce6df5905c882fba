"""The live path with real parts: redis-server, `python -m web` (gunicorn + gevent)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sse_client import SSEStream
from waiting import wait_for

from devtools.stack import Stack
from shared.bus import Bus
from shared.reading import Reading

pytestmark = pytest.mark.slow


OPEN: list[SSEStream] = []


@pytest.fixture(autouse=True)
def _close_streams() -> Iterator[None]:
    """Close every stream a test opened, even when it fails half way."""
    yield
    close_streams()


def close_streams() -> None:
    """Close the open streams: before a server stops, or it waits its grace period for them."""
    while OPEN:
        OPEN.pop().close()


def open_stream(url: str, path: str = "/stream") -> SSEStream:
    """A connected stream, closed after the test."""
    stream = SSEStream(url, path)
    OPEN.append(stream)
    stream.connect()
    return stream


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
        close_streams()
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
    stream = open_stream(url)
    response = stream.response
    assert (response.status, response.version) == (200, 11)
    assert response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    assert response.getheader("Cache-Control") == "no-cache"
    assert response.getheader("X-Accel-Buffering") == "no"
    assert "retry:2000" in stream.read_until(":connected\n\n", timeout=3)
    assert stream.read_until(":hb\n\n", timeout=3)  # heartbeat while idle


def test_a_published_reading_reaches_a_connected_client(web, redis_url: str) -> None:
    url, _ = web
    stream = open_stream(url)
    stream.read_until(":connected\n\n")
    sent = time.monotonic()
    event_id = publish(redis_url, 1)
    data = stream.next_event()
    elapsed = time.monotonic() - sent
    assert stream.last_id == event_id
    assert data["seq"] == 1
    assert data["values"] == {"temperature_c": 20.1}
    assert elapsed < 2.0


def test_filters_pick_sensors(web, redis_url: str) -> None:
    url, _ = web
    stream = open_stream(url, "/stream?sensor=cpu")
    stream.read_until(":connected\n\n")
    publish(redis_url, 1, sensor="demo")
    cpu_id = publish(redis_url, 1, sensor="cpu")
    block = stream.read_until(f"id:{cpu_id}\n\n")
    assert '"sensor":"demo"' not in block


def test_bad_filter_is_a_400_naming_the_parameter(web) -> None:
    url, _ = web
    response = open_stream(url, "/stream?source=no%20spaces").response
    assert response.status == 400
    assert "source" in json.loads(response.read())["error"]


def metric(url: str, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"sensor_display_{name} "):
                return float(line.split()[-1])
    raise KeyError(name)


def test_a_disconnected_client_is_released(web) -> None:
    url, _ = web
    streams = [open_stream(url) for _ in range(5)]
    for s in streams:
        s.read_until(":connected\n\n")
    wait_for(lambda: metric(url, "clients") == 5, what="5 clients counted")
    for s in streams:
        s.close()
    # Noticed at the next write at the latest: a heartbeat (0.5 s here).
    wait_for(lambda: metric(url, "clients") == 0, what="clients released")


def test_a_stopping_server_ends_each_idle_stream_with_a_retry_and_a_whole_body(web) -> None:
    url, stack = web
    streams = [open_stream(url) for _ in range(20)]
    for s in streams:
        s.read_until(":connected\n\n")
    stack.stop("web")  # SIGTERM: the hub, which holds the idle streams, ends them
    for s in streams:
        assert s.response is not None
        # http.client undoes the chunks: a body cut short raises IncompleteRead here.
        rest = s.response.read().decode()
        last = re.search(r"retry:(\d+)\n\n$", rest)
        assert last, rest
        assert 500 <= int(last.group(1)) <= 5000  # spread, so they do not all return at once


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
        streams = [open_stream(url) for _ in range(200)]
        for s in streams:
            s.read_until(":connected\n\n")
        event_id = publish(redis_url, 7)
        for s in streams:
            s.read_until(f"id:{event_id}\n\n")
        pubsub = [c for c in client.client_list() if int(c.get("sub", 0))]
        assert len(pubsub) == 1, pubsub
        # The subscription plus at most the worker's metrics/pool connection.
        assert len(client.client_list()) - before <= 2
        for s in streams:
            s.close()
    finally:
        client.close()
        close_streams()
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
        stream = open_stream(url)
        assert stream.response.status == 200
        stream.read_until(":connected\n\n", timeout=5)
        assert stream.read_until(":hb\n\n", timeout=5)
    finally:
        close_streams()
        stack.stop_all()
