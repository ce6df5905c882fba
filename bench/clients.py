"""The controller's side of the load clients: a few processes, one per core."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Delivery:
    """What every client process saw in one measurement window, merged."""

    events: int = 0
    outside: int = 0
    open: int = 0
    closed: int = 0
    failed: int = 0
    hist: Counter = field(default_factory=Counter)
    late: Counter = field(default_factory=Counter)

    def percentile(self, q: float) -> float | None:
        """The latency (ms) below which a fraction q of the events arrived."""
        total = sum(self.hist.values())
        if not total:
            return None
        rank, seen = q * total, 0
        for latency, count in sorted(self.hist.items()):
            seen += count
            if seen >= rank:
                return latency
        return max(self.hist)

    @property
    def max_ms(self) -> float | None:
        """The slowest delivery."""
        return max(self.hist) if self.hist else None


class ClientPool:
    """Load-client processes holding streams to one URL, driven over pipes."""

    def __init__(self, host: str, port: int, path: str, processes: int) -> None:
        cmd = [sys.executable, "-m", "bench.loadclient", host, str(port), path]
        self.procs = [
            subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            for _ in range(processes)
        ]
        self.size = 0

    def _send(self, proc: subprocess.Popen, obj: dict) -> None:
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(obj) + "\n").encode())
        proc.stdin.flush()

    def _recv(self, proc: subprocess.Popen) -> dict:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("a load client exited")
        return json.loads(line)

    def start_open(self, total: int) -> None:
        """Ask for `total` more streams, split evenly; answer with `wait_open`."""
        share, extra = divmod(total, len(self.procs))
        for i, proc in enumerate(self.procs):
            self._send(proc, {"open": share + (1 if i < extra else 0)})
        self.size += total

    def wait_open(self) -> dict:
        """Block until every process has its streams answered (or failed)."""
        replies = [self._recv(p) for p in self.procs]
        ttfb = [r["ttfb_p50_ms"] for r in replies if r["ttfb_p50_ms"] is not None]
        return {
            "open": sum(r["open"] for r in replies),
            "failed": sum(r["failed"] for r in replies),
            "ttfb_p50_ms": max(ttfb) if ttfb else None,
        }

    def start_measure(self, t0: float, t1: float) -> None:
        """Start counting events sent in [t0, t1)."""
        for proc in self.procs:
            self._send(proc, {"measure": [t0, t1]})

    def collect(self, until: float) -> Delivery:
        """The merged counts of what arrived before wall time `until`."""
        for proc in self.procs:
            self._send(proc, {"report_at": until})
        out = Delivery()
        for proc in self.procs:
            r = self._recv(proc)
            out.events += r["events"]
            out.outside += r["outside"]
            out.open += r["open"]
            out.closed += r["closed"]
            out.failed += r["failed"]
            out.hist.update({float(k): v for k, v in r["hist"]})
            out.late.update({float(k): v for k, v in r["late"]})
        return out

    def cpu_seconds(self) -> float:
        """User + system CPU of the load-client processes so far."""
        total = 0.0
        for proc in self.procs:
            t = psutil.Process(proc.pid).cpu_times()
            total += t.user + t.system
        return total

    def close(self) -> None:
        """Tell every process to quit and reap it."""
        for proc in self.procs:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._send(proc, {"quit": True})
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
