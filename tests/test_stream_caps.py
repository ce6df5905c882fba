"""web/stream_caps.py: /stream connections per client address and in all, per worker."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from devtools.stack import Stack
from web import create_app
from web.stream_caps import StreamCaps


def test_caps_count_per_address_and_in_all() -> None:
    """Per address first, then the total; a released slot can be taken again."""
    caps = StreamCaps(per_client=2, total=3)
    assert caps.acquire("a") is None
    assert caps.acquire("a") is None
    assert "per client address" in caps.acquire("a")
    assert caps.acquire("b") is None
    assert "maximum of 3" in caps.acquire("c")
    caps.release("a")
    assert caps.acquire("c") is None
    assert caps.refused == 2
    for who in ("a", "b", "c"):
        caps.release(who)
    assert caps.count == 0
    assert caps.open == {}


def test_a_closed_stream_gives_its_slot_back(make_settings) -> None:
    """Closing the response (even before reading it) frees the slot."""
    settings = make_settings(STREAM_MAX_PER_CLIENT="1")
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    first = client.get("/stream")
    assert first.status_code == 200
    refused = client.get("/stream")
    assert refused.status_code == 429
    assert "per client address" in refused.get_json()["error"]
    assert refused.headers["Retry-After"].isdigit()
    first.close()
    again = client.get("/stream")
    assert again.status_code == 200
    again.close()


def open_stream(port: int, source: str) -> tuple[socket.socket, int]:
    """A raw /stream request from `source` (a loopback address); (socket, status)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.sendall(b"GET /stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, int(head.split()[1])


@pytest.mark.slow
def test_gunicorn_refuses_streams_past_the_caps(redis_url: str, tmp_path: Path) -> None:
    """Real gunicorn: one address gets STREAM_MAX_PER_CLIENT, everyone STREAM_MAX_CLIENTS."""
    stack = Stack.create(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "WEB_WORKERS": "1",
            "STREAM_MAX_PER_CLIENT": "5",
            "STREAM_MAX_CLIENTS": "8",
            "HEARTBEAT_INTERVAL": "0.5",
        },
    )
    held: list[socket.socket] = []
    try:
        port = int(stack.start_web().rsplit(":", 1)[1])
        statuses = []
        for _ in range(6):
            sock, status = open_stream(port, "127.0.0.5")
            held.append(sock)
            statuses.append(status)
        assert statuses == [200] * 5 + [429]
        others = []
        for _ in range(4):
            sock, status = open_stream(port, "127.0.0.6")
            held.append(sock)
            others.append(status)
        assert others == [200, 200, 200, 429]
        # A closed stream frees its slot once a write finds it gone (a heartbeat).
        for sock in held:
            sock.close()
        held.clear()
        deadline = time.monotonic() + 10
        while True:
            sock, status = open_stream(port, "127.0.0.5")
            held.append(sock)
            if status == 200:
                break
            assert time.monotonic() < deadline, "closed streams never gave their slots back"
            time.sleep(0.2)
    finally:
        for sock in held:
            sock.close()
        stack.stop_all()
