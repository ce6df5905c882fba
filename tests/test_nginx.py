"""Debian's nginx, configured like NGINX Proxy Manager, in front of three replicas.

The proxy is deploy/nginx/npm-like.conf with NPM's defaults (buffering left
on, gzip on, a global read timeout) plus the Advanced snippet for /stream,
forwarding to the name "web" the way NPM (or the compose nginx service) does
on a Docker network: a DNS stub plays Docker's DNS, answering with three
loopback addresses, one `python -m web` replica on each. The read timeouts are
cut from 90 s / 1 h to 3 s and the heartbeat from 15 s to 1 s so the idle test
takes seconds; the ratio (heartbeat well under the timeout) is the same.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from nginx_support import NGINX, DnsStub, Nginx, render_nginx
from sse_client import SSEStream

from devtools.redis_server import free_port
from devtools.stack import Stack, wait_http
from shared.bus import Bus, connect
from shared.reading import Reading

pytestmark = pytest.mark.slow

REPLICA_IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
READ_TIMEOUT = 3.0
HEARTBEAT = 1.0


@dataclass
class Proxy:
    """The running proxy and what is behind it."""

    host: str
    port: int
    web_port: int
    stack: Stack
    bus: Bus
    nginx: Nginx
    dns_port: int
    replicas: dict[str, str] = field(default_factory=dict)  # ip -> process name


def start_replicas(stack: Stack, ips: list[str], port: int, **env: str) -> dict[str, str]:
    """One `python -m web` per address, all on the same port, as in compose."""
    names = {}
    for n, ip in enumerate(ips):
        name = f"web{n}"
        proc = stack.start(name, ["-m", "web"], BIND=ip, PORT=str(port), **env)
        names[ip] = name
        wait_http(f"http://{ip}:{port}/healthz", timeout=60, proc=proc)
    return names


@pytest.fixture(scope="module")
def proxy(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """nginx -> DNS "web" -> three replicas sharing one Redis and one database."""
    if not Path(NGINX).exists():
        pytest.fail(f"{NGINX} is missing: apt-get install -y nginx-light")
    root = tmp_path_factory.mktemp("nginx")
    client = connect(redis_server.url)
    client.flushall()
    stack = Stack.create(root, {"REDIS_URL": redis_server.url, "WEB_WORKERS": "1"})
    web_port, nginx_port = free_port(), free_port()
    with DnsStub(REPLICA_IPS) as dns:
        conf = render_nginx(
            root / "prefix",
            listen=f"127.0.0.1:{nginx_port}",
            resolver=f"127.0.0.1:{dns.port}",
            forward=("web", web_port),
            read_timeout=f"{READ_TIMEOUT:g}s",
            stream_read_timeout=f"{READ_TIMEOUT:g}s",
        )
        try:
            replicas = start_replicas(
                stack, REPLICA_IPS, web_port, HEARTBEAT_INTERVAL=f"{HEARTBEAT:g}"
            )
            with Nginx(conf) as nginx:
                nginx.wait_listening("127.0.0.1", nginx_port)
                yield Proxy(
                    "127.0.0.1", nginx_port, web_port, stack, Bus(client), nginx, dns.port, replicas
                )
        finally:
            stack.stop_all()
            client.close()


def reading(seq: int, sensor: str = "demo") -> Reading:
    """A reading of a test sensor, numbered."""
    return Reading(
        source="nginx-test", sensor=sensor, ts=time.time(), seq=seq, values={"temp_c": 20.0}
    )


def test_events_arrive_without_waiting_in_a_buffer(proxy: Proxy) -> None:
    """Each event reaches the client through NPM's defaults within a moment."""
    client = SSEStream(f"http://{proxy.host}:{proxy.port}")
    response = client.connect({"Accept-Encoding": "gzip"})
    assert response.status == 200
    try:
        assert response.getheader("Content-Type", "").startswith("text/event-stream")
        assert response.getheader("Content-Encoding") is None, "gzip must not touch SSE"
        assert client.next_block(), "the opening comment is flushed at once"
        base = 1_000
        for n in range(5):
            sent = time.monotonic()
            proxy.bus.publish(reading(base + n))
            data = client.next_event()
            delay = time.monotonic() - sent
            assert data is not None
            assert data["seq"] == base + n
            assert delay < 0.5, f"event {n} took {delay:.2f}s: held in a buffer?"
    finally:
        client.close()


def first_delay(proxy: Proxy, root: Path, seq: int, **render: str) -> float | None:
    """Seconds for one event through a second nginx rendered with `render`; None if held."""
    port = free_port()
    conf = render_nginx(
        root,
        listen=f"127.0.0.1:{port}",
        resolver=f"127.0.0.1:{proxy.dns_port}",
        forward=("web", proxy.web_port),
        **render,
    )
    with Nginx(conf) as nginx:
        nginx.wait_listening("127.0.0.1", port)
        client = SSEStream(f"http://127.0.0.1:{port}", timeout=2.0)
        assert client.connect().status == 200
        try:
            client.next_block()
            sent = time.monotonic()
            proxy.bus.publish(reading(seq, "buffer"))
            try:
                data = client.next_event()
            except TimeoutError:
                return None
            assert data is not None
            return time.monotonic() - sent
        finally:
            client.close()


# An nginx between NPM and the app that eats X-Accel-Buffering (sourcelens#4).
EATS_HEADER = "    proxy_ignore_headers X-Accel-Buffering;"


def test_snippet_alone_keeps_events_flowing(proxy: Proxy, tmp_path: Path) -> None:
    """Without the app's X-Accel-Buffering, the snippet's buffering off still holds."""
    delay = first_delay(proxy, tmp_path / "a", 3_000, extra_http=EATS_HEADER)
    assert delay is not None
    assert delay < 0.5


def test_idle_stream_outlives_the_read_timeout(proxy: Proxy) -> None:
    """Heartbeats keep an idle stream open past nginx's read timeout, many times over."""
    client = SSEStream(f"http://{proxy.host}:{proxy.port}", timeout=READ_TIMEOUT * 2)
    assert client.connect().status == 200
    try:
        deadline = time.monotonic() + READ_TIMEOUT * 3
        heartbeats = 0
        while time.monotonic() < deadline:
            block = client.next_block()
            assert block, "nginx closed an idle stream"
            heartbeats += all(line.startswith(":") for line in block)
        assert heartbeats >= 3 * READ_TIMEOUT / HEARTBEAT - 2
        proxy.bus.publish(reading(2_000))
        data = client.next_event()
        assert data is not None
        assert data["seq"] == 2_000
    finally:
        client.close()


def test_without_heartbeats_nginx_would_cut_the_stream(tmp_path: Path, redis_server) -> None:
    """The control: a heartbeat slower than the read timeout gets the stream closed."""
    stack = Stack.create(tmp_path, {"REDIS_URL": redis_server.url, "WEB_WORKERS": "1"})
    web_port, nginx_port = free_port(), free_port()
    with DnsStub(REPLICA_IPS[:1]) as dns:
        conf = render_nginx(
            tmp_path / "prefix",
            listen=f"127.0.0.1:{nginx_port}",
            resolver=f"127.0.0.1:{dns.port}",
            forward=("web", web_port),
            read_timeout="1s",
            stream_read_timeout="1s",
        )
        try:
            start_replicas(stack, REPLICA_IPS[:1], web_port, HEARTBEAT_INTERVAL="20")
            with Nginx(conf) as nginx:
                nginx.wait_listening("127.0.0.1", nginx_port)
                client = SSEStream(f"http://127.0.0.1:{nginx_port}", timeout=10)
                assert client.connect().status == 200
                started = time.monotonic()
                while client.next_block():
                    pass
                assert time.monotonic() - started < 8, "nginx kept an idle stream open"
                client.close()
        finally:
            stack.stop_all()


def serving_replica(proxy: Proxy) -> str:
    """The address of the replica holding the (only) open stream."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for conn in psutil.net_connections(kind="tcp"):
            if (
                conn.status == psutil.CONN_ESTABLISHED
                and conn.laddr
                and conn.laddr.port == proxy.web_port
                and conn.laddr.ip in proxy.replicas
            ):
                return conn.laddr.ip
        time.sleep(0.05)
    raise AssertionError("no replica holds the stream")


def test_killed_replica_loses_no_event(proxy: Proxy) -> None:
    """SIGKILL the replica serving a client: it reconnects with Last-Event-ID, no gap."""
    client = SSEStream(f"http://{proxy.host}:{proxy.port}")
    assert client.connect().status == 200
    assert client.next_block()
    total, base = 200, 10_000
    received: list[int] = []
    stop = threading.Event()

    def publish() -> None:
        for n in range(total):
            proxy.bus.publish(reading(base + n, "kill"))
            time.sleep(0.01)
        stop.set()

    publisher = threading.Thread(target=publish)
    publisher.start()
    reconnects = 0
    try:
        while len(received) < 20:
            data = client.next_event()
            assert data is not None
            if data["sensor"] == "kill":  # not the other tests' latest values
                received.append(data["seq"])
        victim = serving_replica(proxy)
        proxy.stack.stop(proxy.replicas.pop(victim), sig=signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(received) < total and time.monotonic() < deadline:
            try:
                data = client.next_event()
            except (TimeoutError, OSError):
                data = None
            if data is None:
                reconnects += 1
                assert client.connect().status == 200
                continue
            if data["sensor"] == "kill":
                received.append(data["seq"])
    finally:
        publisher.join()
        client.close()
    assert stop.is_set()
    assert reconnects >= 1, "the killed replica's stream should have ended"
    assert received == list(range(base, base + total)), "a gap or a duplicate"
