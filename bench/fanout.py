"""Fan-out runs: hold N streams, publish R readings/s, count and time every delivery."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass

from bench.clients import ClientPool
from bench.publisher import Background
from bench.servers import Server, time_to_first_byte

WARMUP_RATE = 2.0  # readings/s while streams open: stock sends no headers before one
# New streams opened one at a time during each run of this many clients or
# more, timed to their first byte. Not in smaller runs: opening a stream costs
# the server about a millisecond, which would show in their CPU per delivery.
FIRST_BYTE_PROBES = 100
FIRST_BYTE_FROM = 10_000


@dataclass
class LoadResult:
    """One measured run against one server."""

    server: str
    clients: int
    rate: float
    held: int
    sent: int
    expected: int
    delivered: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    deliveries_per_s: float
    cpu_s: float
    cpu_us_per_event: float | None
    rss_per_conn_kb: float | None
    redis_conns: int
    workers: int
    dropped: int
    client_cpu_s: float
    late_events: int = 0
    workers_replaced: bool = False
    redis_per_conn_kb: float | None = None  # Redis used_memory growth per stream held
    first_byte_p50_ms: float | None = None  # a new stream while this run's load goes on
    first_byte_p99_ms: float | None = None
    first_byte_missed: int = 0  # probes with no byte within 3 s
    load_avg: float | None = None  # the machine's 1-minute load average at the end of the run

    @property
    def client_us_per_event(self) -> float | None:
        """The load client's own CPU per delivered event."""
        return self.client_cpu_s / self.delivered * 1e6 if self.delivered else None

    @property
    def lost(self) -> int:
        """Events expected but not delivered in time."""
        return self.expected - self.delivered

    def ok(self, p99_limit_ms: float) -> bool:
        """Every stream held, nothing lost, p99 under the limit."""
        return (
            self.held == self.clients
            and self.lost == 0
            and self.p99_ms is not None
            and self.p99_ms < p99_limit_ms
        )

    def as_dict(self) -> dict:
        """For the JSON results file."""
        return {**asdict(self), "lost": self.lost}


class FirstByteProbe(threading.Thread):
    """Opens streams one after the other during a run; the time to each one's first byte."""

    def __init__(self, server: Server, count: int, duration: float) -> None:
        super().__init__(daemon=True)
        self.server, self.count, self.gap = server, count, duration / max(count, 1)
        self.times: list[float] = []
        self.missed = 0

    def run(self) -> None:
        """Spread the probes evenly over the run."""
        start = time.monotonic()
        end = start + self.gap * self.count
        for i in range(self.count):
            time.sleep(max(start + i * self.gap - time.monotonic(), 0))
            if time.monotonic() > end:  # slow first bytes (stock): no more than the run
                break
            try:
                ms = time_to_first_byte(self.server.port, self.server.path)
            except OSError:
                ms = None
            if ms is None:
                self.missed += 1
            else:
                self.times.append(ms)

    def percentile(self, q: float) -> float | None:
        """The first-byte time (ms) below which a fraction q of the probes got theirs."""
        if not self.times:
            return None
        ordered = sorted(self.times)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


class Session:
    """One client pool against one server, grown step by step."""

    def __init__(self, server: Server, processes: int) -> None:
        self.server = server
        self.pool = ClientPool("127.0.0.1", server.port, server.path, processes)
        self.held = 0
        self.rss0 = server.rss_bytes()
        self.redis0 = server.redis_memory()

    def ensure(self, clients: int, settle: float = 1.0) -> int:
        """Open streams until `clients` are held (warm-up events flowing); the number held."""
        with Background(self.server.publisher, WARMUP_RATE):
            if clients > self.held:
                self.pool.start_open(clients - self.held)
                self.held = self.pool.wait_open()["open"]
            time.sleep(settle)
        return self.held

    def run(self, clients: int, rate: float, duration: float, drain: float) -> LoadResult:
        """Hold `clients`, publish `rate`/s for `duration` s, wait `drain` s for stragglers."""
        self.ensure(clients)
        rss_per_conn = (self.server.rss_bytes() - self.rss0) / max(self.held, 1) / 1024
        redis_per_conn = (self.server.redis_memory() - self.redis0) / max(self.held, 1) / 1024
        redis_conns = self.server.redis_connections()
        cpu0, client0 = self.server.cpu_seconds(), self.pool.cpu_seconds()
        pids = self.server.worker_pids()
        t0 = time.time()
        self.pool.start_measure(t0, t0 + 86400)
        time.sleep(0.05)  # the command reaches the clients before the first event
        probes = FIRST_BYTE_PROBES if clients >= FIRST_BYTE_FROM else 0
        probe = FirstByteProbe(self.server, probes, duration)
        probe.start()
        sent = self.server.publisher.pace(rate, duration)
        got = self.pool.collect(sent.t1 + drain)
        probe.join()
        cpu = self.server.cpu_seconds() - cpu0
        client_cpu = self.pool.cpu_seconds() - client0
        self.held = got.open
        return LoadResult(
            server=self.server.name,
            clients=clients,
            rate=rate,
            held=got.open + got.closed,
            sent=sent.count,
            expected=sent.count * (got.open + got.closed),
            delivered=got.events,
            p50_ms=got.percentile(0.50),
            p95_ms=got.percentile(0.95),
            p99_ms=got.percentile(0.99),
            max_ms=got.max_ms,
            deliveries_per_s=got.events / max(sent.t1 - sent.t0, 1e-6),
            cpu_s=cpu,
            cpu_us_per_event=cpu / got.events * 1e6 if got.events else None,
            rss_per_conn_kb=rss_per_conn,
            redis_conns=redis_conns,
            workers=self.server.workers_alive(),
            dropped=got.closed,
            client_cpu_s=client_cpu,
            late_events=len(got.late),
            workers_replaced=self.server.worker_pids() != pids,
            redis_per_conn_kb=redis_per_conn,
            first_byte_p50_ms=probe.percentile(0.50),
            first_byte_p99_ms=probe.percentile(0.99),
            first_byte_missed=probe.missed,
            load_avg=os.getloadavg()[0],
        )

    def close(self) -> None:
        """Close the streams, then publish a little so the server notices them gone."""
        self.pool.close()
        with Background(self.server.publisher, 5.0):
            time.sleep(2.0)
