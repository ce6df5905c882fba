"""The edges behind the reference nginx (deploy/nginx/): the issue's attempts from outside.

One `python -m web` (two gevent workers) with ACCESS_TOKEN and
TRUSTED_PROXIES=127.0.0.1 behind nginx rendered from npm-like.conf and the
Advanced snippet; clients connect from different loopback addresses, so
nginx's X-Forwarded-For tells them apart as it would internet clients.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nginx_support import NGINX, DnsStub, Nginx, render_nginx

from devtools.redis_server import free_port
from devtools.stack import Stack, wait_http
from web import limiter

pytestmark = pytest.mark.slow

TOKEN = "edge-test-token-0123456789"
GUESSER, FRIEND = "127.0.0.5", "127.0.0.6"


@dataclass
class Edge:
    """nginx's port, in front of one replica."""

    port: int


@pytest.fixture(scope="module")
def edge(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """nginx -> "web" (DNS stub) -> one replica with a token, trusting the proxy."""
    if not Path(NGINX).exists():
        pytest.fail(f"{NGINX} is missing: apt-get install -y nginx-light")
    root = tmp_path_factory.mktemp("edge")
    stack = Stack.create(
        root,
        {
            "REDIS_URL": redis_server.url,
            "WEB_WORKERS": "2",
            "ACCESS_TOKEN": TOKEN,
            "TRUSTED_PROXIES": "127.0.0.1",
            "HEARTBEAT_INTERVAL": "1",
        },
    )
    web_port, nginx_port = free_port(), free_port()
    with DnsStub(["127.0.0.2"]) as dns:
        conf = render_nginx(
            root / "prefix",
            listen=f"127.0.0.1:{nginx_port}",
            resolver=f"127.0.0.1:{dns.port}",
            forward=("web", web_port),
        )
        try:
            proc = stack.start("web", ["-m", "web"], BIND="127.0.0.2", PORT=str(web_port))
            wait_http(f"http://127.0.0.2:{web_port}/healthz", timeout=60, proc=proc)
            with Nginx(conf) as nginx:
                nginx.wait_listening("127.0.0.1", nginx_port)
                yield Edge(nginx_port)
        finally:
            stack.stop_all()


def request(
    edge: Edge, source: str, head: str, body: bytes = b"", timeout: float = 10.0
) -> tuple[int, bytes]:
    """One raw HTTP/1.0 request from `source`; (status, whole response)."""
    sock = socket.create_connection(
        ("127.0.0.1", edge.port), timeout=timeout, source_address=(source, 0)
    )
    try:
        sock.sendall(head.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    return int(data.split()[1]), data


def login(edge: Edge, source: str, token: str, host: str = "127.0.0.1") -> int:
    """POST /login from `source`; the status."""
    body = urllib.parse.urlencode({"token": token}).encode()
    head = (
        f"POST /login HTTP/1.0\r\nHost: {host}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return request(edge, source, head, body)[0]


def test_one_guesser_never_locks_out_another_address(edge: Edge) -> None:
    """18 wrong tokens from one address: that address waits, the next gets in."""
    # Locked out, the right token still gets in, and clears the failures.
    assert [login(edge, GUESSER, "wrong") for _ in range(limiter.MAX_FAILURES)] == [401] * 10
    assert login(edge, GUESSER, TOKEN) == 303
    statuses = [login(edge, GUESSER, "wrong") for _ in range(18)]
    assert statuses[: limiter.MAX_FAILURES] == [401] * limiter.MAX_FAILURES
    assert set(statuses[limiter.MAX_FAILURES :]) == {429}
    assert login(edge, FRIEND, TOKEN) == 303
    bearer = f"GET /api/openapi.json HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    assert request(edge, FRIEND, bearer.replace("Host: x", "Host: 127.0.0.1"))[0] == 200
    # A made-up X-Forwarded-For does not give the guesser a fresh address.
    spoof = (
        "POST /login HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 203.0.113.50\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\n"
    )
    assert request(edge, GUESSER, spoof, b"token=wrong")[0] == 429


def test_a_rebinding_host_is_refused(edge: Edge) -> None:
    """A page on attacker.example resolved to this server: 400, before any token check."""
    head = "GET /api/sensors HTTP/1.0\r\nHost: attacker.example\r\n\r\n"
    status, body = request(edge, FRIEND, head)
    assert status == 400
    assert b"TRUSTED_HOSTS" in body


def test_streams_per_address_are_capped_by_nginx(edge: Edge) -> None:
    """limit_conn in the snippet: the 33rd open stream from one address gets 429."""
    head = f"GET /stream HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    held = []
    try:
        statuses = []
        for _ in range(33):
            sock = socket.create_connection(
                ("127.0.0.1", edge.port), timeout=10, source_address=("127.0.0.7", 0)
            )
            held.append(sock)
            sock.sendall(head.encode())
            statuses.append(int(sock.recv(4096).split()[1]))
        assert statuses[:32] == [200] * 32
        assert statuses[32] == 429
        # Another address is not affected.
        sock = socket.create_connection(
            ("127.0.0.1", edge.port), timeout=10, source_address=("127.0.0.8", 0)
        )
        held.append(sock)
        sock.sendall(head.encode())
        assert int(sock.recv(4096).split()[1]) == 200
    finally:
        for sock in held:
            sock.close()


def test_a_trickled_login_body_is_cut(edge: Edge) -> None:
    """A body that never comes holds the connection 10 s, not minutes."""
    head = (
        "POST /login HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
    )
    started = time.monotonic()
    sock = socket.create_connection(
        ("127.0.0.1", edge.port), timeout=60, source_address=("127.0.0.9", 0)
    )
    try:
        sock.sendall(head.encode() + b"token=")
        while sock.recv(4096):
            pass
    finally:
        sock.close()
    assert time.monotonic() - started < 20
