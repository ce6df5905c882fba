"""A lean SSE load client: raw non-blocking sockets on one epoll, one process per core.

Driven by JSON lines on stdin, answering JSON lines on stdout:
``{"open": n}`` opens n more streams, ``{"measure": [t0, t1]}`` starts
counting events whose send time (the reading's ``ts``) lies in [t0, t1),
``{"report_at": t}`` answers with the counts at wall time t; ``{"quit": true}``
closes everything. Per event it only finds ``"ts":`` and parses one float, so
the client is not what is measured.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import select
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

# HTTP/1.0: gunicorn then sends the body raw, without chunked framing to undo.
REQUEST = "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
CONNECT_BATCH = 400  # connects in flight at once: stays under the listen backlog
OPEN_TIMEOUT = 90.0  # answer `open` by then even if some streams never answered
TS_KEY = b'"ts":'
LATE_MS = 250.0


@dataclass(slots=True)
class Conn:
    """One stream: its socket, unparsed tail, and when it started."""

    sock: socket.socket
    started: float
    headers_done: bool = False
    tail: bytes = b""
    first_byte: float = 0.0


@dataclass
class Window:
    """What one measurement counts: events sent in [t0, t1)."""

    t0: float = 0.0
    t1: float = 0.0
    events: int = 0
    outside: int = 0
    # Latency histogram: 0.1 ms buckets, coarser past 100 ms (see `bucket`).
    hist: Counter = field(default_factory=Counter)
    # Deliveries over LATE_MS per event (by send time): one stall or many?
    late: Counter = field(default_factory=Counter)


def bucket(latency_ms: float) -> float:
    """Histogram key: 0.1 ms below 100 ms, 1 ms below 10 s, then 100 ms."""
    if latency_ms < 100:
        return round(latency_ms, 1)
    if latency_ms < 10_000:
        return float(round(latency_ms))
    return float(round(latency_ms, -2))


def raise_nofile() -> int:
    """Lift the open-files limit as far as the kernel allows: one fd per stream."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            want = int(f.read())
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        return want
    except (OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard


class LoadClient:
    """Holds many SSE streams on one epoll and counts what arrives."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.addr = (host, port)
        self.request = REQUEST.format(path=path).encode()
        self.epoll = select.epoll()
        self.conns: dict[int, Conn] = {}
        self.to_open = 0
        self.failed = 0
        self.closed = 0
        self.ttfb: list[float] = []
        self.window = Window()
        self.pending_reply: float | None = None
        self.open_waiting = False
        self.open_deadline = 0.0
        self.pending = 0  # streams whose response headers have not arrived yet
        self.buffer = bytearray(262144)
        self.view = memoryview(self.buffer)

    # -- connections -------------------------------------------------------

    def _start_connects(self) -> None:
        """Keep up to CONNECT_BATCH connects in flight."""
        while self.to_open and self.pending < CONNECT_BATCH:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            err = sock.connect_ex(self.addr)
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                self.failed += 1
            else:
                conn = Conn(sock, time.monotonic())
                self.conns[sock.fileno()] = conn
                self.epoll.register(sock.fileno(), select.EPOLLOUT)
                self.pending += 1
            self.to_open -= 1

    def _on_writable(self, fd: int, conn: Conn) -> None:
        err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._drop(fd, failed=True)
            return
        try:
            conn.sock.send(self.request)
        except OSError:
            self._drop(fd, failed=True)
            return
        self.epoll.modify(fd, select.EPOLLIN)

    def _drop(self, fd: int, *, failed: bool) -> None:
        conn = self.conns.pop(fd)
        self.epoll.unregister(fd)
        conn.sock.close()
        if not conn.headers_done:
            self.pending -= 1
        if failed or not conn.headers_done:
            self.failed += 1
        else:
            self.closed += 1

    # -- reading -----------------------------------------------------------

    def _on_readable(self, fd: int, conn: Conn, now: float) -> None:
        try:
            # recv(n) would allocate n bytes per call (an mmap at this size,
            # half the client's CPU); one shared buffer, then copy what came.
            size = conn.sock.recv_into(self.buffer)
            data = self.view[:size].tobytes()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(fd, failed=False)
            return
        if not data:
            self._drop(fd, failed=False)
            return
        if not conn.headers_done:
            data = self._headers(conn, data)
            if data is None:
                return
        buf = conn.tail + data if conn.tail else data
        end = buf.rfind(b"\n\n")
        if end < 0:
            conn.tail = buf
            return
        conn.tail = buf[end + 2 :]
        if TS_KEY in buf:
            self._count(buf, end, now)

    def _headers(self, conn: Conn, data: bytes) -> bytes | None:
        buf = conn.tail + data
        head, sep, body = buf.partition(b"\r\n\r\n")
        if not sep:
            conn.tail = buf
            return None
        conn.tail = b""
        conn.headers_done = True
        self.pending -= 1
        self.ttfb.append((time.monotonic() - conn.started) * 1000)
        return body if head.startswith(b"HTTP/1.") and b" 200 " in head[:16] else b""

    def _count(self, buf: bytes, end: int, now: float) -> None:
        """Find each event's send time and bin its latency if it is in the window."""
        w = self.window
        pos = buf.find(TS_KEY)
        while 0 <= pos < end:
            comma = buf.find(b",", pos)
            ts = float(buf[pos + 5 : comma])
            if w.t0 <= ts < w.t1:
                w.events += 1
                latency = (now - ts) * 1000
                w.hist[bucket(latency)] += 1
                if latency > LATE_MS:
                    w.late[ts] += 1
            else:
                w.outside += 1
            pos = buf.find(TS_KEY, comma)

    # -- control -----------------------------------------------------------

    def _check_open_done(self) -> None:
        if not self.open_waiting:
            return
        late = time.monotonic() > self.open_deadline
        if late or (not self.to_open and not self.pending):
            self.open_waiting = False
            self._reply_open()

    def _reply_open(self) -> None:
        ttfb = sorted(self.ttfb)
        p50 = ttfb[len(ttfb) // 2] if ttfb else None
        reply(
            {
                "open": len(self.conns),
                "pending": self.pending,
                "failed": self.failed,
                "ttfb_p50_ms": p50,
            }
        )

    def command(self, cmd: dict) -> bool:
        """Act on one control line; False to stop."""
        if cmd.get("quit"):
            return False
        if "open" in cmd:
            self.to_open += int(cmd["open"])
            self.open_waiting = True
            self.open_deadline = time.monotonic() + OPEN_TIMEOUT
            self._start_connects()
            self._check_open_done()
        elif "status" in cmd:
            self.open_waiting = False
            self._reply_open()
        elif "measure" in cmd:
            t0, t1 = cmd["measure"]
            self.window = Window(t0, t1)
            self.closed = 0
        elif "report_at" in cmd:
            self.pending_reply = float(cmd["report_at"])
        return True

    def _reply_measure(self) -> None:
        w = self.window
        reply(
            {
                "events": w.events,
                "outside": w.outside,
                "hist": sorted(w.hist.items()),
                "late": sorted(w.late.items()),
                "open": len(self.conns),
                "closed": self.closed,
                "failed": self.failed,
            }
        )
        self.pending_reply = None

    def run(self) -> None:
        """The event loop: sockets and stdin on one epoll until told to quit."""
        stdin = sys.stdin.fileno()
        self.epoll.register(stdin, select.EPOLLIN)
        pending = b""
        while True:
            timeout = 0.05 if self.to_open else 0.5
            if self.pending_reply is not None:
                timeout = min(timeout, max(self.pending_reply - time.time(), 0))
            events = self.epoll.poll(timeout, 4096)
            now = time.time()
            for fd, mask in events:
                if fd == stdin:
                    chunk = _read_stdin(stdin)
                    if not chunk:
                        return
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        if line.strip() and not self.command(json.loads(line)):
                            return
                    continue
                conn = self.conns.get(fd)
                if conn is None:
                    continue
                if mask & select.EPOLLOUT:
                    self._on_writable(fd, conn)
                elif mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    self._on_readable(fd, conn, now)
            if self.to_open:
                self._start_connects()
            self._check_open_done()
            if self.pending_reply is not None and time.time() >= self.pending_reply:
                self._reply_measure()

    def close(self) -> None:
        """Close every stream."""
        for conn in self.conns.values():
            conn.sock.close()
        self.conns.clear()


def _read_stdin(fd: int) -> bytes:
    return os.read(fd, 65536)


def reply(obj: dict) -> None:
    """One JSON line to the controller."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    """`python -m bench.loadclient HOST PORT PATH`."""
    raise_nofile()
    client = LoadClient(argv[0], int(argv[1]), argv[2])
    try:
        client.run()
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
