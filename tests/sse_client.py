"""The tests' one SSE client: one block parser, driven two ways.

`SSEStream` is synchronous (http.client, HTTP/1.1 as browsers and proxies
speak it): open /stream, read blocks, events or bytes up to a marker, and
reconnect with `Last-Event-ID`. `SSEClient` is a thread that behaves like a
browser's EventSource under load: HTTP/1.0 on a raw socket (a close-delimited
body, cheap to read for many clients), honours `retry:`, and reconnects with
`Last-Event-ID`, moving to the next replica each time, as a browser behind a
load balancer would. Every reading it receives is kept with its arrival time,
so a test can check exactly-once delivery and latency.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# A browser gives up on nothing; neither do we, but a cap keeps a test short.
MAX_RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class Block:
    """One SSE block as EventSource reads it (comments dropped)."""

    event: str = "message"
    data: str | None = None
    id: str | None = None
    retry_ms: int | None = None
    comments: tuple[str, ...] = ()


def parse_block(lines: list[str]) -> Block:
    """The fields of one block, by the SSE rules (one leading space dropped)."""
    event, data, event_id, retry, comments = "message", [], None, None, []
    for line in lines:
        if line.startswith(":"):
            comments.append(line[1:])
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event_id = value
        elif name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "retry" and value.isdigit():
            retry = int(value)
    return Block(event, "\n".join(data) if data else None, event_id, retry, tuple(comments))


class SSEStream:
    """One /stream request at a time, read synchronously; reconnects with Last-Event-ID."""

    def __init__(self, url: str, path: str = "/stream", timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path, self.timeout = path, timeout
        self.last_id: str | None = None
        self.conn: http.client.HTTPConnection | None = None
        self.response: http.client.HTTPResponse | None = None
        self.text = ""  # read but not yet returned by read_until

    def connect(self, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        """Open the stream (sending Last-Event-ID when there is one); the response, any status."""
        self.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        sent = {"Accept": "text/event-stream", **(headers or {})}
        if self.last_id is not None:
            sent["Last-Event-ID"] = self.last_id
        self.conn.request("GET", self.path, headers=sent)
        self.response = self.conn.getresponse()
        self.text = ""
        return self.response

    def close(self) -> None:
        """Drop the connection, if any."""
        if self.conn is not None:
            self.conn.close()
        self.conn = self.response = None

    def _line(self) -> str | None:
        """The next line of the body without its end; None at EOF."""
        assert self.response is not None, "connect() first"
        try:
            raw = self.response.readline()
        except http.client.IncompleteRead:
            raw = b""
        return raw.decode().rstrip("\r\n") if raw else None

    def next_block(self) -> list[str]:
        """The lines of the next SSE block (up to a blank line); [] at EOF."""
        lines: list[str] = []
        while (line := self._line()) is not None:
            if line:
                lines.append(line)
            elif lines:
                return lines
        return []

    def next_event(self) -> dict | None:
        """The next `reading` event's data (comments skipped); None at EOF."""
        while block := self.next_block():
            parsed = parse_block(block)
            if parsed.id is not None:
                self.last_id = parsed.id
            if parsed.event == "reading" and parsed.data is not None:
                return json.loads(parsed.data)
        return None

    def read_until(self, marker: str, timeout: float | None = None) -> str:
        """The body up to and including `marker`; TimeoutError (what was read is kept)."""
        assert self.conn is not None, "connect() first"
        assert self.conn.sock is not None, "connect() first"
        self.conn.sock.settimeout(timeout or self.timeout)
        try:
            while marker not in self.text:
                line = self._line()
                if line is None:
                    raise ConnectionError(
                        f"the stream ended before {marker!r}: {self.text[-300:]!r}"
                    )
                self.text += line + "\n"
        finally:
            self.conn.sock.settimeout(self.timeout)
        head, _, self.text = self.text.partition(marker)
        return head + marker

    def __enter__(self) -> SSEStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class Received:
    """One `event: reading` as the client got it."""

    event_id: str | None
    source: str
    sensor: str
    seq: int
    ts: float
    at: float  # arrival, time.time()
    server: str

    @property
    def key(self) -> tuple[str, str]:
        """The (source, sensor) the reading belongs to."""
        return self.source, self.sensor

    @property
    def latency(self) -> float:
        """Seconds from measurement to arrival."""
        return self.at - self.ts


@dataclass(eq=False)  # a thread must stay hashable
class SSEClient(threading.Thread):
    """One EventSource: connects, parses, reconnects until `stop()`."""

    urls: list[str]
    name: str = "sse"
    heartbeat: float = 1.0
    start_index: int = 0
    query: str = ""
    live: list[Received] = field(default_factory=list)  # events with an id
    snapshot: list[Received] = field(default_factory=list)  # id-less (connect snapshot)
    connects: int = 0
    resets: int = 0
    errors: list[str] = field(default_factory=list)
    last_id: str | None = None
    max_seq: dict[tuple[str, str], int] = field(default_factory=dict)
    retry_s: float = 2.0
    waits: list[float] = field(default_factory=list)  # seconds waited before each reconnect

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, name=self.name, daemon=True)
        self._stop_event = threading.Event()
        self._sock: socket.socket | None = None

    # -- lifecycle ---------------------------------------------------------

    def run(self) -> None:
        """Connect, read, reconnect with Last-Event-ID until stopped."""
        attempt = 0
        while not self._stop_event.is_set():
            server = self.urls[(self.start_index + attempt) % len(self.urls)]
            attempt += 1
            try:
                self._session(server)
            except (OSError, ValueError) as exc:
                self.errors.append(f"{server}: {exc!r}")
            self.waits.append(min(self.retry_s, MAX_RETRY_S))
            self._stop_event.wait(self.waits[-1])

    def stop(self) -> None:
        """Stop and close the connection; join with a deadline."""
        self._stop_event.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self.is_alive():
            self.join(10)

    # -- one connection ----------------------------------------------------

    def _session(self, server: str) -> None:
        parts = urlsplit(server)
        # Three heartbeats of silence: the connection is dead, as a browser decides.
        sock = socket.create_connection((parts.hostname, parts.port), timeout=3 * self.heartbeat)
        self._sock = sock
        try:
            sock.sendall(_request(parts.hostname or "", self.query, self.last_id))
            buffer = self._read_headers(sock)
            self.connects += 1
            while not self._stop_event.is_set():
                blocks = buffer.split(b"\n\n")
                buffer = blocks.pop()
                now = time.time()
                for block in blocks:
                    self._dispatch(block.decode(), now, server)
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
        finally:
            self._sock = None
            sock.close()

    def _read_headers(self, sock: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise ValueError("closed before the headers")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            raise ValueError(f"status {status!r}")
        return rest

    def _dispatch(self, block: str, now: float, server: str) -> None:
        """Apply one SSE block the way EventSource does."""
        parsed = parse_block(block.split("\n"))
        if parsed.retry_ms is not None:
            self.retry_s = parsed.retry_ms / 1000
        if parsed.id is not None:
            self.last_id = parsed.id  # an id-only block moves Last-Event-ID too
        if parsed.event == "reset":
            self.resets += 1
        elif parsed.event == "reading" and parsed.data is not None:
            self._record(json.loads(parsed.data), parsed.id, now, server)

    def _record(self, reading: dict, event_id: str | None, now: float, server: str) -> None:
        got = Received(
            event_id,
            reading["source"],
            reading["sensor"],
            reading["seq"],
            reading["ts"],
            now,
            server,
        )
        (self.live if event_id is not None else self.snapshot).append(got)
        if got.seq > self.max_seq.get(got.key, -1):
            self.max_seq[got.key] = got.seq

    # -- checks ------------------------------------------------------------

    def duplicates(self) -> int:
        """Readings received more than once (by source, sensor, seq)."""
        counts = Counter((r.source, r.sensor, r.seq) for r in self.live)
        return sum(n - 1 for n in counts.values() if n > 1)

    def missing(self, last: dict[tuple[str, str], int]) -> list[tuple[str, str, int]]:
        """Readings absent between the first one received per sensor and `last`."""
        seen: dict[tuple[str, str], set[int]] = {}
        for r in (*self.snapshot, *self.live):
            seen.setdefault(r.key, set()).add(r.seq)
        gaps = []
        for key, final in last.items():
            seqs = seen.get(key)
            if not seqs:
                continue  # joined after that sensor stopped: nothing was owed
            gaps += [(*key, s) for s in range(min(seqs), final + 1) if s not in seqs]
        return gaps

    def caught_up(self, last: dict[tuple[str, str], int]) -> bool:
        """True once every sensor's final seq has arrived."""
        return all(self.max_seq.get(key, -1) >= seq for key, seq in last.items())


def _request(host: str, query: str, last_id: str | None) -> bytes:
    lines = [
        f"GET /stream{'?' + query if query else ''} HTTP/1.0",
        f"Host: {host}",
        "Accept: text/event-stream",
        "Cache-Control: no-cache",
    ]
    if last_id:
        lines.append(f"Last-Event-ID: {last_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class StuckClient:
    """A client that asks for the stream, then never reads: a tiny window, soon zero."""

    def __init__(self, server: str, rcvbuf: int = 4096) -> None:
        parts = urlsplit(server)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect, so the advertised window stays small.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((parts.hostname, parts.port))
        self.local_port = self.sock.getsockname()[1]
        self.sock.sendall(_request(parts.hostname or "", "", None))

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
