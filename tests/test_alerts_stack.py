"""Alerts end to end, as real processes: recorder, 3 web replicas, a local notification receiver.

One notification per transition however many replicas run and however often
the stream is replayed; `make run` with a rules file notifies when the demo's
CPU temperature crosses a rule, then when it is back.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from devtools.redis_server import free_port
from devtools.stack import ROOT, Stack, wait_http
from shared.bus import Bus
from shared.reading import Reading
from tests.alert_receiver import Receiver, receiver
from tests.test_alerts_recorder import RULES  # the same rule, on the real stack

pytestmark = pytest.mark.slow


class AlertListener(threading.Thread):
    """Reads one replica's /stream (HTTP/1.0, close-delimited) and keeps every `event: alert`."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.host = parts.netloc
        self.alerts: list[dict] = []
        self.connected = threading.Event()

    def run(self) -> None:
        self.sock.sendall(f"GET /stream HTTP/1.0\r\nHost: {self.host}\r\n\r\n".encode())
        block: list[str] = []
        with contextlib.suppress(OSError, ValueError), self.sock.makefile("rb") as lines:
            for raw in lines:
                line = raw.decode().strip()
                if line.startswith(":"):
                    self.connected.set()  # the opening comment: the client is registered
                elif line:
                    block.append(line)
                else:
                    fields = dict(x.split(":", 1) for x in block if ":" in x)
                    if fields.get("event") == "alert":
                        self.alerts.append(json.loads(fields["data"]))
                    block = []

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self.is_alive():
            self.join(5)


def publish_trace(bus: Bus, t0: float) -> None:
    """10 min at 70, 15 min at 85, 10 min at 70, one reading every 10 s (time-stamped, sent now)."""
    values = [70.0] * 60 + [85.0] * 90 + [70.0] * 60
    for i, value in enumerate(values):
        reading = Reading(
            source="pi", sensor="pi_cpu", ts=t0 + i * 10, seq=i + 1, values={"cpu_temp_c": value}
        )
        bus.publish(reading)


def transitions(database: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT kind FROM alert_transitions ORDER BY id")]
    finally:
        conn.close()


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(RULES)
    return path


@pytest.fixture
def notified() -> Iterator[Receiver]:
    with receiver() as rec:
        yield rec


def test_three_replicas_and_a_replayed_stream_give_one_notification_each(
    tmp_path: Path, redis_url: str, rules_file: Path, notified: Receiver
) -> None:
    stack = Stack.create(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "ALERTS_FILE": str(rules_file),
            "ALERT_URLS": notified.json_url("s3cret-pw"),
            "WEB_WORKERS": "2",
            "HEARTBEAT_INTERVAL": "1",
        },
        log_dir=tmp_path / "logs",
    )
    listeners: list[AlertListener] = []
    try:
        stack.start("recorder", ["-m", "recorder"])
        urls = [stack.start_web(f"web{i}") for i in range(3)]
        listeners = [AlertListener(u) for u in urls]
        for listener in listeners:
            listener.start()
            assert listener.connected.wait(10)
        client = redis.Redis.from_url(redis_url)
        bus = Bus(client)
        publish_trace(bus, time.time() - 3600)
        got = notified.wait_for(2, timeout=30)
        assert [r.title for r in got] == ["FIRING: pi-hot", "RESOLVED: pi-hot"]
        wait_until(lambda: all(len(x.alerts) >= 2 for x in listeners), 10, "alert events")
        # Replay: the recorder's group is moved back to the start of the stream,
        # so it reads every reading again; and a producer re-sends some.
        client.xgroup_setid(bus.stream, "recorder", "0")
        for seq in (100, 150, 151):
            r = Reading(
                source="pi", sensor="pi_cpu", ts=time.time(), seq=seq, values={"cpu_temp_c": 90}
            )
            assert bus.publish(r) is None  # the bus itself drops a repeated seq
        wait_until(
            lambda: (
                not client.xpending(bus.stream, "recorder")["pending"]
                and client.xinfo_groups(bus.stream)[0]["lag"] == 0
            ),
            30,
            "the recorder to read the stream again",
        )
        time.sleep(1.5)  # a notification or event would have gone out by now
        client.close()
    finally:
        for listener in listeners:
            listener.stop()
        stack.stop_all()
    assert notified.titles() == ["FIRING: pi-hot", "RESOLVED: pi-hot"]
    assert transitions(Path(stack.env["DATABASE_PATH"])) == ["firing", "resolved"]
    for listener in listeners:
        assert [(a["rule"], a["kind"]) for a in listener.alerts] == [
            ("pi-hot", "firing"),
            ("pi-hot", "resolved"),
        ]
    log = (tmp_path / "logs" / "recorder.log").read_text()
    assert "sent FIRING: pi-hot" in log
    assert "s3cret-pw" not in log


def test_a_bad_rules_file_stops_the_recorder_with_one_sentence(
    tmp_path: Path, redis_url: str
) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(RULES.replace('for = "5m"', 'for = "five minutes"'))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "ALERTS_FILE": str(path),
        "DATABASE_PATH": str(tmp_path / "db.sqlite3"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "recorder"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"sensor-display recorder: {path}: rule 'pi-hot' field 'for' must be a duration such as"
        " 90s, 5m or 1h (at most 30 days), not 'five minutes'"
    )


MAKE_RUN_RULES = """
[[rule]]
name = "demo-cpu-hot"
metric = "*/demo/cpu_temp_c"
above = 45.0
clear = 42.0
"""


def test_make_run_with_a_rules_file_notifies_firing_then_resolved(
    tmp_path: Path, notified: Receiver
) -> None:
    """`make run`'s program with ALERTS_FILE: the demo's CPU load bursts cross the rule."""
    rules = tmp_path / "alerts.toml"
    rules.write_text(MAKE_RUN_RULES)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        "PORT": str(port),
        "DATA_DIR": str(tmp_path),
        "SENSORS": "demo",
        "INTERVAL": "0.1",
        "ALERTS_FILE": str(rules),
        "ALERT_URLS": notified.ntfy_url("demo"),
        "PUBLIC_URL": f"http://127.0.0.1:{port}/",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, proc=proc)
        got = notified.wait_for(2, timeout=120)
        with urllib_json(f"http://127.0.0.1:{port}/api/alerts") as body:
            assert [r["name"] for r in body["rules"]] == ["demo-cpu-hot"]
            kinds = [t["kind"] for t in body["transitions"]]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)
    assert [r.title for r in got[:2]] == ["FIRING: demo-cpu-hot", "RESOLVED: demo-cpu-hot"]
    assert "/demo/cpu_temp_c is" in got[0].message
    assert got[0].message.endswith(f"http://127.0.0.1:{port}/")
    assert kinds[:2] == ["firing", "resolved"]
    # Every transition notified once: firing and resolved strictly alternate.
    titles = notified.titles()
    assert all(a != b for a, b in itertools.pairwise(titles)), titles


@contextlib.contextmanager
def urllib_json(url: str) -> Iterator[dict]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        yield json.load(response)
