"""What an idle /stream connection costs, byte by byte, in a real gunicorn gevent worker.

`python -m bench.idle --clients 2000` starts Redis and the product (`python -m
web`'s gunicorn options, one worker) with a control port in the worker, opens
N idle streams from a load-client process, and diffs what the worker holds
before and after: tracemalloc (by allocation site), live objects by type,
the worker's RSS, Redis's memory, and the kernel's slab caches for sockets
(both ends of each loopback connection live in this kernel; half is the
server's). `python -m bench` runs it too (`Figure`s in the report).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import socket
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

logger = logging.getLogger("bench.idle")

TRACE_FRAMES = 8
# Kernel caches a TCP connection's socket lives in (/proc/slabinfo names).
SOCKET_SLABS = ("TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq")
WARM_CLIENTS = 100


# -- in the worker -----------------------------------------------------------


class Probe:
    """The worker's side: snapshots on request over a local TCP port."""

    def __init__(self) -> None:
        self.base: tracemalloc.Snapshot | None = None
        self.types: Counter = Counter()
        self.sizes: Counter = Counter()

    def handle(self, sock: Any, _addr: Any) -> None:
        """One command per connection: `base` or `diff N`; the answer as one JSON line."""
        line = sock.makefile("rb").readline().decode().split()
        if line[0] == "base":
            self.base, (self.types, self.sizes) = self._snapshot(), _live_objects()
            answer: dict = {"ok": True}
        else:
            answer = self._diff(int(line[1]))
        sock.sendall((json.dumps(answer) + "\n").encode())
        sock.close()

    def _snapshot(self) -> tracemalloc.Snapshot:
        gc.collect()
        return tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )

    def _diff(self, clients: int) -> dict:
        assert self.base is not None
        after = self._snapshot()
        types, sizes = _live_objects()
        by_site = after.compare_to(self.base, "traceback")
        total = sum(s.size_diff for s in by_site)
        sites = [
            {
                "bytes_per_client": round(s.size_diff / clients, 1),
                "blocks_per_client": round(s.count_diff / clients, 2),
                "where": [
                    f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in s.traceback
                ],
            }
            for s in by_site[:25]
        ]
        objects = [
            {
                "type": name,
                "per_client": round((types[name] - self.types[name]) / clients, 2),
                "bytes_per_client": round((sizes[name] - self.sizes[name]) / clients, 1),
            }
            for name in sorted(types, key=lambda n: -(sizes[n] - self.sizes[n]))[:20]
        ]
        return {
            "traced_bytes_per_client": round(total / clients, 1),
            "sites": sites,
            "objects": objects,
        }


def _live_objects() -> tuple[Counter, Counter]:
    """Live gc-tracked objects (and what they reference directly if untracked) by type."""
    gc.collect()
    counts: Counter = Counter()
    sizes: Counter = Counter()
    for obj in gc.get_objects():
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    return counts, sizes


def serve(control_port: int) -> int:
    """The product's gunicorn server, one worker, with the probe on `control_port`."""
    import web.__main__ as web_main  # isort: skip  # patches with gevent first

    import gevent.server

    from shared.settings import Settings

    settings = Settings.from_env()
    options = web_main.options(settings)
    product_init = options["post_worker_init"]

    def post_worker_init(worker: Any) -> None:
        tracemalloc.start(TRACE_FRAMES)
        product_init(worker)
        probe = Probe()
        gevent.server.StreamServer(("127.0.0.1", control_port), probe.handle).start()

    options["post_worker_init"] = post_worker_init
    options["workers"] = 1
    web_main.raise_fd_limit()
    web_main.WebServer(options).run()
    return 0


# -- the controller ----------------------------------------------------------


def ask(port: int, command: str) -> dict:
    """Send one command to the worker's probe; its JSON answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        sock.sendall(command.encode() + b"\n")
        return json.loads(sock.makefile("rb").readline())


def slab_bytes() -> dict[str, int]:
    """Bytes in use in the socket-related slab caches (empty if /proc/slabinfo is unreadable)."""
    try:
        lines = Path("/proc/slabinfo").read_text().splitlines()[2:]
    except OSError:
        return {}
    out = {}
    for line in lines:
        fields = line.split()
        if fields[0] in SOCKET_SLABS:
            out[fields[0]] = int(fields[1]) * int(fields[3])  # active objects x object size
    return out


def measure(clients: int, tmp: Path) -> dict:
    """Open `clients` idle streams against a probed product worker; every figure per client."""
    import psutil
    import redis

    from bench.clients import ClientPool
    from bench.publisher import ProductPublisher
    from devtools.redis_server import RedisServer, free_port
    from devtools.stack import Stack, wait_http
    from shared.bus import connect

    redis_server = RedisServer(maxclients=100_000).start()
    stack = Stack.create(tmp, {"REDIS_URL": redis_server.url}, log_dir=tmp / "logs")
    port, control = free_port(), free_port()
    env = {"WEB_WORKERS": "1", "HEARTBEAT_INTERVAL": "15", "LOG_LEVEL": "WARNING"}
    env["STREAM_MAX_PER_CLIENT"] = env["STREAM_MAX_CLIENTS"] = "100000"
    proc = stack.start("idle", ["-m", "bench.idle", "serve", str(control)], PORT=str(port), **env)
    pools: list[ClientPool] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        rds = redis.Redis.from_url(redis_server.url)
        publisher = ProductPublisher(connect(redis_server.url, client_name="bench"), "readings")
        worker = psutil.Process(proc.pid).children()[0]
        # Warm up: the first streams build the hub, the snapshot and Flask's lazy parts.
        warm = ClientPool("127.0.0.1", port, "/stream", 1)
        warm.start_open(WARM_CLIENTS)
        warm.wait_open()
        warm.close()
        for _ in range(3):  # the hub notices closed streams at its next write
            publisher.publish_one()
            time.sleep(0.3)
        ask(control, "base")
        rss0, redis0, slab0 = (
            worker.memory_info().rss,
            rds.info("memory")["used_memory"],
            slab_bytes(),
        )
        pool = ClientPool("127.0.0.1", port, "/stream", 1)
        pools.append(pool)
        pool.start_open(clients)
        held = pool.wait_open()["open"]
        publisher.publish_one()  # every client sends once: nothing half-done counts as idle
        time.sleep(2.0)
        diff = ask(control, f"diff {held}")
        rss1, redis1, slab1 = (
            worker.memory_info().rss,
            rds.info("memory")["used_memory"],
            slab_bytes(),
        )
    finally:
        for pool in pools:
            pool.close()
        stack.stop_all()
        redis_server.stop()
    kernel = {k: round((slab1.get(k, 0) - slab0.get(k, 0)) / held, 1) for k in slab1}
    return {
        "clients": held,
        "rss_bytes_per_client": round((rss1 - rss0) / held, 1),
        "redis_bytes_per_client": round((redis1 - redis0) / held, 1),
        "kernel_bytes_per_connection_both_ends": kernel,
        **diff,
    }


def figures(clients: int, tmp: Path) -> list:
    """The idle figures for `python -m bench`'s report."""
    from bench.offline import Figure

    tmp.mkdir(parents=True, exist_ok=True)
    got = measure(clients, tmp)
    cond = f"{got['clients']:,} idle streams, one worker (bench/idle.py)"
    kernel = sum(got["kernel_bytes_per_connection_both_ends"].values())
    top = ", ".join(
        f"{o['type'].rsplit('.', 1)[-1]} {o['bytes_per_client']:.0f}"
        for o in got["objects"]
        if o["per_client"] >= 0.5
    )
    return [
        Figure("idle stream: worker RSS", got["rss_bytes_per_client"], "B/client", cond),
        Figure(
            "idle stream: Python heap (tracemalloc)",
            got["traced_bytes_per_client"],
            "B/client",
            f"{cond}; live objects per client, B: {top}",
        ),
        Figure(
            "idle stream: kernel socket slabs",
            kernel,
            "B/connection",
            f"{cond}; both ends of the loopback connection (the server's is about half)",
        ),
    ]


def print_report(got: dict) -> None:
    """The figures as text."""
    print(f"{got['clients']} idle streams, one worker; per client:")
    print(
        f"  worker RSS {got['rss_bytes_per_client']:,.0f} B,"
        f" traced by tracemalloc {got['traced_bytes_per_client']:,.0f} B,"
        f" Redis {got['redis_bytes_per_client']:,.0f} B"
    )
    kernel = got["kernel_bytes_per_connection_both_ends"]
    both = sum(kernel.values())
    print(f"  kernel slabs, both ends of the loopback connection: {both:,.0f} B {kernel}")
    print("  live objects by type:")
    for o in got["objects"]:
        if o["per_client"] >= 0.5:
            print(f"    {o['per_client']:6.2f} x {o['type']}: {o['bytes_per_client']:,.0f} B")
    print("  allocation sites (tracemalloc):")
    for s in got["sites"]:
        if abs(s["bytes_per_client"]) >= 8:
            where = " <- ".join(reversed(s["where"][-4:]))
            print(
                f"    {s['bytes_per_client']:7.1f} B, {s['blocks_per_client']:.2f} blocks: {where}"
            )


def main(argv: list[str]) -> int:
    """`python -m bench.idle [--clients N] [--json PATH]` (or `serve PORT`, the server side)."""
    if argv[:1] == ["serve"]:
        return serve(int(argv[1]))
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from bench.loadclient import raise_nofile

    raise_nofile()
    with tempfile.TemporaryDirectory(prefix="sensor-display-idle-") as tmp:
        got = measure(args.clients, Path(tmp))
    print_report(got)
    if args.json:
        args.json.write_text(json.dumps(got, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
