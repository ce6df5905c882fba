"""web/db.py: history reads run off the gevent hub and stop at their deadline.

The big test is the issue's: many live streams on real gunicorn workers while
worst-case history queries run on a multi-million-row database; no stream may
pause for more than 250 ms.
"""

from __future__ import annotations

import os
import selectors
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools.stack import Stack
from shared import codec, store
from shared.bus import Bus, connect
from shared.events import Event
from shared.reading import Reading
from web import db

ROWS = 2_000_000
SENSORS = 10
SPAN = 30 * 86400
STREAMS = 200
MAX_PAUSE = 0.25


def fill(path: Path, rows: int, span: float = SPAN) -> float:
    """A history of `rows` readings of SENSORS sensors over `span` s up to now; now.

    All in the unpacked raw tier (as after a big import the recorder has not
    packed yet), plus a sensor `quiet` with no readings: a filter on it walked
    every row of the range before the (sid, ts) index (schema version 4).
    """
    conn = store.connect(path)
    store.init_db(conn)
    with conn:
        conn.executemany(
            "INSERT INTO sensors (sid, source, sensor) VALUES (?, 'big', ?)",
            [(i + 1, f"s{i}") for i in range(SENSORS)] + [(SENSORS + 1, "quiet")],
        )
        conn.execute("INSERT INTO metrics (mid, name) VALUES (1, 'temp_c')")
    now = time.time()
    # One statement, no Python per row: every reading has the same value.
    conn.execute(
        "WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < ?1)"
        " INSERT INTO raw_recent (ts, sid, seq, stream_ms, stream_n, body)"
        " SELECT ?3 + n * ?4, 1 + n % ?2, n / ?2 + 1, CAST((?3 + n * ?4) * 1000 AS INTEGER),"
        " n % ?2, ?5 FROM i",
        (rows - 1, SENSORS, now - span, span / rows, codec.pack_values((1,), (21.5,))),
    )
    conn.commit()
    conn.close()
    return now


@pytest.fixture(scope="module")
def big_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-million-row history (10 sensors over 30 days), built once per module."""
    path = tmp_path_factory.mktemp("big") / "dashboard.sqlite3"
    fill(path, ROWS)
    return path


def slow_query(conn: sqlite3.Connection) -> int:
    """A query that runs for minutes unless interrupted."""
    return conn.execute(
        "WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < 1e12)"
        " SELECT count(*) FROM i"
    ).fetchone()[0]


def test_a_read_past_its_deadline_is_interrupted(tmp_path: Path) -> None:
    """The progress handler stops SQLite itself: the call returns at the deadline."""
    path = tmp_path / "h.sqlite3"
    fill(path, 10)
    started = time.monotonic()
    with pytest.raises(db.HistoryTimeout, match=r"longer than 0\.2 s"):
        db.read_at(path, slow_query, 0.2)
    assert time.monotonic() - started < 5


def test_a_missing_database_is_unavailable(tmp_path: Path) -> None:
    """No file yet: a clear 'no history', never a new empty file."""
    with pytest.raises(db.HistoryUnavailable, match="no history yet"):
        db.read_at(tmp_path / "none.sqlite3", store.latest, 1.0)
    assert not (tmp_path / "none.sqlite3").exists()


@pytest.mark.serial  # shares big_history with the stream-pause test
def test_api_answers_503_past_the_deadline(big_history: Path, make_settings) -> None:
    """A month of one sensor's raw readings (this history has no rollups): 503, not a hang.

    (A sensor with no readings was the slow shape until schema version 4's
    (sid, ts) index made it a seek.)
    """
    from web import create_app

    settings = make_settings(DATABASE_PATH=str(big_history), QUERY_TIMEOUT="0.05")
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    since = int(time.time()) - 30 * 86400
    started = time.monotonic()
    response = client.get(f"/api/series?source=big&sensor=s0&metric=temp_c&since={since}")
    assert response.status_code == 503
    assert "longer than 0.05 s" in response.get_json()["error"]
    assert response.headers["Retry-After"].isdigit()
    assert time.monotonic() - started < 5


class Streams:
    """Many raw /stream connections read by one selector thread, every arrival timed."""

    def __init__(self, port: int, count: int) -> None:
        self.selector = selectors.DefaultSelector()
        self.last: dict[socket.socket, float] = {}
        self.worst: dict[socket.socket, float] = {}
        self.measuring = False
        self.closed = 0
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /stream HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
            self.last[sock] = time.monotonic()
            self.worst[sock] = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.selector.select(timeout=0.05):
                sock = key.fileobj
                now = time.monotonic()
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    self.selector.unregister(sock)
                    self.closed += 1
                    continue
                if self.measuring:
                    self.worst[sock] = max(self.worst[sock], now - self.last[sock])
                self.last[sock] = now

    def measure(self) -> None:
        """Start counting pauses from now."""
        now = time.monotonic()
        for sock in self.last:
            self.last[sock] = now
        self.measuring = True

    def max_pause(self) -> float:
        """The longest silence any stream had while measuring (up to now)."""
        now = time.monotonic()
        open_gaps = [now - t for s, t in self.last.items() if s in self.selector.get_map()]
        return max([*self.worst.values(), *open_gaps])

    def close(self) -> None:
        """Stop reading and close every connection."""
        self._stop.set()
        self._thread.join(5)
        for sock in self.last:
            sock.close()
        self.selector.close()


# One request in a process of its own, so the test's stream reader never
# waits for the GIL behind a thread reading a big response.
_REQUEST = """
import http.client, sys, time
port, path, last_id = int(sys.argv[1]), sys.argv[2], sys.argv[3]
started = time.monotonic()
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
conn.request("GET", path, headers={"Last-Event-ID": last_id} if last_id else {})
response = conn.getresponse()
if path.startswith("/stream"):
    line = b"-"
    while line and not line.startswith(b"event:reset"):
        line = response.readline()
else:
    response.read()
print(response.status, time.monotonic() - started)
"""


def start_request(port: int, path: str, last_id: str = "") -> subprocess.Popen:
    """Start one request in a child process; it prints "status seconds"."""
    return subprocess.Popen(
        [sys.executable, "-c", _REQUEST, str(port), path, last_id],
        stdout=subprocess.PIPE,
        text=True,
        # The client's own CPU is not the server's to account for.
        preexec_fn=lambda: os.nice(10),
    )


@pytest.mark.slow
@pytest.mark.serial  # stream pauses are measured
def test_streams_never_pause_while_worst_queries_run(
    big_history: Path, redis_url: str, tmp_path: Path
) -> None:
    """200 streams, 8 worst-case history requests at once: no stream silent > 250 ms.

    On a host so loaded that the streams pause longer with no query at all
    (measured before and after), the limit is twice that idle pause instead;
    a query on the hub stalls its worker for seconds, far beyond either.
    """
    stack = Stack.create(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "DATABASE_PATH": str(big_history),
            "WEB_WORKERS": "2",
            "HEARTBEAT_INTERVAL": "0.1",
            "QUERY_TIMEOUT": "60",
            "STREAM_MAX_PER_CLIENT": "1000",  # every client is this host
        },
        log_dir=tmp_path / "logs",
    )
    bus = Bus(connect(redis_url))
    streams = None
    stop = threading.Event()
    publisher = threading.Thread(target=publish_until, args=(bus, stop), daemon=True)
    try:
        base = stack.start_web()
        port = int(base.rsplit(":", 1)[1])
        streams = Streams(port, STREAMS)
        publisher.start()
        time.sleep(1.0)  # every stream connected and past its snapshot
        # The same streams with no query running: what this machine's load
        # alone costs (a shared CI host can be slower than 250 ms by itself).
        streams.measure()
        time.sleep(3.0)
        baseline = streams.max_pause()
        streams.measure()
        since = int(time.time()) - 30 * 86400
        requests = [
            start_request(port, f"/api/readings?sensor=quiet&since={since}"),
            start_request(port, f"/api/readings?sensor=s3&since={since}&limit=10000"),
            start_request(port, f"/api/export.csv?sensor=quiet&since={since}"),
            start_request(port, f"/api/export.csv?sensor=s7&since={since}&limit=10000"),
            start_request(port, "/stream", "1-0"),
            start_request(port, "/stream", "1-0"),
            start_request(port, f"/api/readings?sensor=quiet&since={since}"),
            start_request(port, f"/api/readings?source=big&since={since}&limit=10000"),
        ]
        results = [proc.communicate(timeout=100)[0].split() for proc in requests]
        time.sleep(0.5)
        pause = streams.max_pause()
        # And once more after: a shared host's load changes over a minute.
        streams.measure()
        time.sleep(3.0)
        baseline = max(baseline, streams.max_pause())
        assert all(status == "200" for status, _ in results), results
        assert streams.closed == 0, "a stream was closed"
        limit = max(MAX_PAUSE, 2 * baseline)
        assert pause <= limit, (
            f"a stream paused {pause:.3f} s (idle baseline {baseline:.3f} s); queries: {results}"
        )
    finally:
        stop.set()
        if publisher.is_alive():
            publisher.join(5)
        if streams is not None:
            streams.close()
        bus.client.close()
        stack.stop_all()


def publish_until(bus: Bus, stop: threading.Event) -> None:
    """Ten readings a second until told to stop."""
    seq = 0
    while not stop.wait(0.1):
        seq += 1
        bus.publish(
            Reading(source="live", sensor="demo", ts=time.time(), seq=seq, values={"temp_c": 1.0})
        )


def event(seq: int, stream_id: str) -> Event:
    reading = Reading(source="pi", sensor="demo", ts=time.time(), seq=seq, values={"t_c": 1.0})
    return Event(stream_id, reading)


def test_without_a_database_the_hub_starts_with_no_snapshot(tmp_path: Path) -> None:
    assert db.latest_events(tmp_path / "missing.sqlite3", 1.0) == []
    assert not (tmp_path / "missing.sqlite3").exists()  # a read-only open never creates it


def test_the_latest_and_what_follows_a_stream_id(tmp_path: Path) -> None:
    path = tmp_path / "dashboard.sqlite3"
    conn = store.connect(path)
    store.init_db(conn)
    store.insert_events(conn, [event(1, "100-0"), event(2, "200-0"), event(3, "300-0")])
    conn.close()
    [latest] = db.latest_events(path, 1.0)
    assert (latest.id, latest.reading.seq) == ("300-0", 3)
    assert [e.id for e in db.events_after(path, "100-0", 10, 1.0)] == ["200-0", "300-0"]
    assert db.events_after(path, "100-0", 1, 1.0) is None  # more than the limit: a reset


def test_history_missing_is_503_with_a_reason(client, settings) -> None:
    settings.database_path.unlink()
    response = client.get("/api/readings")
    assert response.status_code == 503
    assert "recorder" in response.get_json()["error"]
