"""The two servers under test, started the same way, and what we read off them."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass

import psutil

from bench.publisher import ProductPublisher, Publisher, StockPublisher
from devtools.redis_server import free_port
from devtools.stack import Stack, wait_http
from shared.bus import connect

PRODUCT, STOCK = "product", "stock"


@dataclass
class Server:
    """One gunicorn server under test, its stream path and its publisher."""

    name: str
    port: int
    path: str
    proc: subprocess.Popen
    publisher: Publisher
    redis_port: int

    def tree(self) -> list[psutil.Process]:
        """The gunicorn master and its workers."""
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole tree so far, workers that died included."""
        master, *workers = self.tree()
        t = master.cpu_times()
        # The master reaps dead workers, so their CPU is in its children_* times.
        total = t.user + t.system + t.children_user + t.children_system
        for p in workers:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        return total

    def worker_pids(self) -> set[int]:
        """The workers' process ids (a change means gunicorn replaced one)."""
        return {p.pid for p in self.tree()[1:]}

    def rss_bytes(self) -> int:
        """Resident memory of the whole tree."""
        total = 0
        for p in self.tree():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def redis_connections(self) -> int:
        """TCP connections from this server's processes to Redis."""
        count = 0
        for p in self.tree():
            try:
                conns = p.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            count += sum(1 for c in conns if c.raddr and c.raddr.port == self.redis_port)
        return count

    def redis_memory(self) -> int:
        """Redis's used_memory (bytes): a stock client costs Redis a connection."""
        return int(self.publisher.client.info("memory")["used_memory"])

    def workers_alive(self) -> int:
        """Worker processes right now (gunicorn replaces killed ones)."""
        return len(self.tree()) - 1


def start_servers(stack: Stack, workers: int, heartbeat: float) -> dict[str, Server]:
    """Redis, then the product (`python -m web`) and stock flask-sse, same options."""
    url = stack.start_redis()
    redis_port = int(url.rsplit(":", 1)[1].split("/")[0])
    env = {"WEB_WORKERS": str(workers), "HEARTBEAT_INTERVAL": str(heartbeat)}
    env["LOG_LEVEL"] = "WARNING"
    # Every load client connects from this host: no per-address cap here.
    env["STREAM_MAX_PER_CLIENT"] = env["STREAM_MAX_CLIENTS"] = "100000"
    servers = {}
    port = free_port()
    stack.start_web(PRODUCT, port=port, **env)
    client = connect(url, client_name="bench")
    servers[PRODUCT] = Server(
        PRODUCT,
        port,
        "/stream",
        stack.procs[PRODUCT],
        ProductPublisher(client, "readings"),
        redis_port,
    )
    port = free_port()
    proc = stack.start(STOCK, ["-m", "bench.stock_app"], PORT=str(port), **env)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
    servers[STOCK] = Server(STOCK, port, "/stream", proc, StockPublisher(client, "sse"), redis_port)
    return servers


def time_to_first_byte(port: int, path: str, timeout: float = 3.0) -> float | None:
    """Milliseconds until /stream sends its first byte with nothing published; None if never."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        try:
            if not sock.recv(1):
                return None
        except TimeoutError:
            return None
    return (time.monotonic() - start) * 1000
