"""The fault rig: Redis, the recorder, several producers, two web servers, many clients.

Every process is real (`python -m ...`, `redis-server`); the rig knows what
each producer made (its outbox's `seqs` high-water above a first seq seeded
before it started), so a test can count readings lost or duplicated in the
database and at every client.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sse_client import Received, SSEClient
from waiting import wait_for

from devtools.redis_server import RedisServer, free_port
from devtools.stack import ROOT, Stack, wait_http
from faults.proxy import TCPProxy
from producers.outbox import Outbox
from shared import store

SENSOR = "demo"
# Seeded into each outbox so the first seq a producer makes is known exactly.
FIRST_SEQ = 1_000_000
HEARTBEAT = 1.0
ENV = {
    "INTERVAL": "0.1",
    "HEARTBEAT_INTERVAL": str(HEARTBEAT),
    "STREAM_RETENTION": "60",
    "WEB_WORKERS": "1",
    "SENSORS": SENSOR,
    "LOG_LEVEL": "INFO",
}


class LoggedStack(Stack):
    """Stack whose children log to files without leaking the parent's file handle."""

    def start(self, name: str, args: list[str], **extra_env: str) -> subprocess.Popen:
        """Start `python <args>` as `name`, its output appended to logs/<name>.log."""
        assert self.log_dir is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env={**self.env, **extra_env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc


@dataclass
class ProducerProc:
    """One `python -m producers` with its own SOURCE and outbox."""

    name: str
    source: str
    outbox: Path
    proxy: TCPProxy | None = None

    @property
    def key(self) -> tuple[str, str]:
        """Its one (source, sensor)."""
        return self.source, SENSOR

    def last_seq(self) -> int:
        """The last seq it made (FIRST_SEQ - 1 if none)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT seq FROM seqs WHERE source = ?", (self.source,)).fetchone()
        return row[0] if row else FIRST_SEQ - 1

    def unsent(self) -> int:
        """Rows Redis has not accepted yet."""
        with contextlib.closing(sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]


@dataclass
class Rig:
    """The whole system, plus the clients watching it."""

    tmp: Path
    redis: RedisServer
    stack: Stack
    producers: list[ProducerProc] = field(default_factory=list)
    webs: dict[str, str] = field(default_factory=dict)  # stack name -> base URL
    clients: list[SSEClient] = field(default_factory=list)

    @classmethod
    def start(cls, tmp: Path, *, producers: int = 3, clients: int = 30, proxied: int = 0) -> Rig:
        """Redis, recorder, producers (the first `proxied` behind a cuttable proxy), 2 webs."""
        redis = RedisServer().start()
        stack = LoggedStack.create(tmp, {**ENV, "REDIS_URL": redis.url}, log_dir=tmp / "logs")
        rig = cls(tmp, redis, stack)
        try:
            stack.start("recorder", ["-m", "recorder"])
            for i in range(producers):
                rig._start_producer(i, proxied=i < proxied)
            rig._start_webs(2)
            rig._start_clients(clients)
        except BaseException:
            rig.close()
            raise
        return rig

    def _start_producer(self, i: int, *, proxied: bool) -> None:
        outbox = self.tmp / f"outbox-{i}.sqlite3"
        source = f"p{i}"
        seed = Outbox(outbox)
        with seed.conn:
            seed.conn.execute("INSERT INTO seqs VALUES (?, ?, ?)", (source, SENSOR, FIRST_SEQ - 1))
        seed.close()
        url = self.redis.url
        proxy = None
        if proxied:
            proxy = TCPProxy(free_port(), self.redis.port).start()
            url = f"redis://127.0.0.1:{proxy.port}/0"
        name = f"producer-{i}"
        self.stack.start(
            name, ["-m", "producers"], SOURCE=source, OUTBOX_PATH=str(outbox), REDIS_URL=url
        )
        self.producers.append(ProducerProc(name, source, outbox, proxy))

    def _start_webs(self, count: int) -> None:
        for i in range(count):
            port = free_port()
            self.stack.start(f"web-{i}", ["-m", "web"], PORT=str(port))
            self.webs[f"web-{i}"] = f"http://127.0.0.1:{port}"
        for name, url in self.webs.items():
            wait_http(f"{url}/healthz", proc=self.stack.procs[name])

    def _start_clients(self, count: int) -> None:
        urls = list(self.webs.values())
        for i in range(count):
            client = SSEClient(urls, name=f"client-{i}", heartbeat=HEARTBEAT, start_index=i)
            client.start()
            self.clients.append(client)
        wait_for(lambda: all(c.live for c in self.clients), 30, "every client's first event")

    # -- faults ------------------------------------------------------------

    def kill_redis_and_restart_empty(self, down: float) -> None:
        """kill -9 the Redis server, keep it down for `down` s, start an empty one."""
        port = self.redis.port
        assert self.redis.process is not None
        self.redis.process.kill()
        self.redis.process.wait()
        self.redis.stop()  # only removes its directory now
        time.sleep(down)  # the outage is the point
        self.redis = RedisServer(port=port).start()

    def restart(self, name: str, args: list[str], **env: str) -> None:
        """Start a stopped process again under the same name."""
        self.stack.start(name, args, **env)

    # -- the end -----------------------------------------------------------

    def finish(self, timeout: float = 45.0) -> Tally:
        """Stop producers once drained, wait for DB and clients to catch up, count."""
        wait_for(lambda: all(p.unsent() == 0 for p in self.producers), timeout, "outboxes to drain")
        for p in self.producers:
            self.stack.stop(p.name, signal.SIGTERM)
        last = {p.key: p.last_seq() for p in self.producers}
        made = {key: seq - FIRST_SEQ + 1 for key, seq in last.items()}
        wait_for(lambda: self._db_has(last), timeout, "the database to hold every reading")
        for c in self.clients:
            wait_for(lambda c=c: c.caught_up(last), timeout, f"{c.name} to catch up")
        for c in self.clients:
            c.stop()
        return Tally(made=made, last=last, db=self.db_counts(), clients=self.clients)

    def _db_has(self, last: dict[tuple[str, str], int]) -> bool:
        counts = self.db_counts()
        return all(
            all((*key, s) in counts for s in range(FIRST_SEQ, seq + 1)) for key, seq in last.items()
        )

    def db_counts(self) -> Counter[tuple[str, str, int]]:
        """How often each (source, sensor, seq) is in the dashboard database."""
        path = self.stack.env["DATABASE_PATH"]
        with contextlib.closing(store.connect(path, readonly=True)) as db:
            known = store.names(db)
            rows = store.iter_raw(db, sorted(known.keys), 0, 4e9)
            return Counter((*known.keys[sid], seq) for _, sid, seq, _ in rows if seq is not None)

    def logs(self, name: str, lines: int = 40) -> str:
        """The tail of one process's log, for a failure message."""
        path = self.tmp / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        """Stop clients, processes, proxies and Redis."""
        for c in self.clients:
            c.stop()
        self.stack.stop_all()
        for p in self.producers:
            if p.proxy is not None:
                p.proxy.cut()
        self.redis.stop()


@dataclass
class Tally:
    """What was made, stored and delivered: the figures a fault test asserts."""

    made: dict[tuple[str, str], int]
    last: dict[tuple[str, str], int]
    db: Counter[tuple[str, str, int]]
    clients: list[SSEClient]

    @property
    def made_total(self) -> int:
        """Readings the producers made."""
        return sum(self.made.values())

    def db_lost(self) -> int:
        """Made readings the database does not hold."""
        return sum(
            1
            for key, seq in self.last.items()
            for s in range(FIRST_SEQ, seq + 1)
            if (*key, s) not in self.db
        )

    def db_duplicates(self) -> int:
        """Rows beyond the first of any reading."""
        return sum(n - 1 for n in self.db.values() if n > 1)

    def client_figures(self) -> tuple[int, int, int, int]:
        """(delivered, lost, duplicated, resets) summed over clients."""
        delivered = sum(len({(r.key, r.seq) for r in (*c.snapshot, *c.live)}) for c in self.clients)
        lost = sum(len(c.missing(self.last)) for c in self.clients)
        dupes = sum(c.duplicates() for c in self.clients)
        return delivered, lost, dupes, sum(c.resets for c in self.clients)

    def latencies(self, keep: Callable[[SSEClient, Received], bool]) -> list[float]:
        """Latencies of the live events `keep` selects."""
        return sorted(r.latency for c in self.clients for r in c.live if keep(c, r))

    def summary(self, fault: str, others: list[float], baseline: list[float]) -> dict[str, object]:
        """One line of figures for the fault, printed for the closing note."""
        delivered, lost, dupes, resets = self.client_figures()
        base = statistics.median(baseline) if baseline else 0.0
        worst = max(others) if others else 0.0
        figures = {
            "fault": fault,
            "made": self.made_total,
            "db": len(self.db),
            "db_lost": self.db_lost(),
            "db_dup": self.db_duplicates(),
            "clients": len(self.clients),
            "client_deliveries": delivered,
            "client_lost": lost,
            "client_dup": dupes,
            "resets": resets,
            "baseline_p50_ms": round(base * 1000, 1),
            "others_p99_ms": round(percentile(others, 0.99) * 1000, 1),
            "worst_added_ms": round((worst - base) * 1000, 1),
        }
        print("\nFAULT " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
        for c in self.clients:
            if c.missing(self.last) or c.duplicates():
                print(f"  {c.name}: missing {c.missing(self.last)[:10]}, errors {c.errors[-3:]}")
        return figures


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of sorted `values` (0 when empty)."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(q * len(values)))]
