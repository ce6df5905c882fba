"""Packing and pruning beside ingest: the file stops growing once the tiers are full."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from waiting import wait_for

from recorder.prune import Maintenance
from shared import store
from shared.events import Event
from shared.reading import Reading
from shared.settings import Settings

DAY = 86400.0
T0 = 1763712000.0
DEFAULTS = store.Retention.from_settings(Settings.from_env({}))
METRICS = ("temperature_c", "humidity_pct", "pressure_hpa", "cpu_temp_c", "fan_rpm", "power_w")


def day_of_readings(day: int, every: float = 10.0) -> list[Event]:
    start = T0 + day * DAY
    return [
        Event(
            None,
            Reading(
                source="pi",
                sensor="demo",
                ts=start + i * every,
                seq=int(day * DAY / every) + i,
                values={m: round(20 + (i % 97) / 10 + k, 2) for k, m in enumerate(METRICS)},
            ),
        )
        for i in range(int(DAY / every))
    ]


def file_size(path: Path) -> int:
    return os.path.getsize(path) + os.path.getsize(f"{path}-wal")


def test_the_file_stops_growing_once_the_tiers_are_full(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    conn = store.connect(path)
    store.init_db(conn)
    clock = [T0]
    keep = store.Retention(raw_days=1, minute_days=2, hour_days=3)
    maintenance = Maintenance(path, keep, clock=lambda: clock[0])
    sizes = []
    for day in range(9):
        events = day_of_readings(day, every=20)
        for i in range(0, len(events), 2000):
            store.insert_events(conn, events[i : i + 2000])
        clock[0] = T0 + (day + 1) * DAY
        maintenance.catch_up(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes.append(file_size(path))
    # Full from day 4 on (the hour tier keeps 3 days): no more growth after that.
    assert sizes[-1] <= sizes[4] * 1.05, sizes
    assert sizes[-1] > sizes[0]
    # All but the last HOT_SECONDS, which stay unpacked.
    assert maintenance.packed == 9 * 4320 - store.HOT_SECONDS / 20
    # What is left is what the retention promises.
    now = clock[0]
    raw = store.query_readings(conn, since=0, until=4e9, limit=1)[0].ts
    assert now - DAY - 3600 <= raw <= now - DAY + 3600
    hours = conn.execute("SELECT min(t) FROM rollup_1h").fetchone()[0] * 3600
    assert now - 3 * DAY - 3600 <= hours <= now - 3 * DAY + 3600


def test_the_maintenance_process_packs_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    conn = store.connect(path)
    store.init_db(conn)
    store.insert_events(conn, day_of_readings(0, every=60))
    maintenance = Maintenance(path, DEFAULTS, clock=lambda: T0 + 2 * DAY)
    maintenance.start()
    deadline = time.monotonic() + 60
    while (
        store.count_readings(conn) != 1440
        or conn.execute("SELECT count(*) FROM raw_recent").fetchone()[0]
    ):
        assert time.monotonic() < deadline, "nothing was packed"
        time.sleep(0.1)
    maintenance.stop()
    assert maintenance.packed == 1440
    assert not maintenance._process.is_alive()
    assert len(store.query_readings(conn, since=0, until=4e9, limit=5000)) == 1440


PARENT = """
import sys, time
from pathlib import Path

import psutil
from recorder.prune import Maintenance
from shared import store
from shared.settings import Settings

if __name__ == "__main__":
    path = Path(sys.argv[1])
    store.init_db(store.connect(path))
    Maintenance(path, store.Retention.from_settings(Settings.from_env({}))).start()
    print("started", flush=True)
    time.sleep(600)
"""


def test_the_maintenance_process_ends_when_the_recorder_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "history.sqlite3")],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 30
        while not (children := psutil.Process(parent.pid).children()):
            assert time.monotonic() < deadline, "no maintenance process"
            time.sleep(0.1)
        parent.kill()  # SIGKILL: no chance to stop its child
        parent.wait(10)
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, "the maintenance process outlived the recorder"
    finally:
        parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()


def test_sigterm_to_the_recorders_group_stops_it_at_once(redis_url: str, tmp_path: Path) -> None:
    """systemd and a terminal signal the whole group: the maintenance child too."""
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_PATH": str(tmp_path / "h.sqlite3")}
    recorder = subprocess.Popen(
        [sys.executable, "-m", "recorder"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # Once the child has the history open it is (within milliseconds) idle,
        # waiting on its stop event: where dying used to hang the recorder.
        wait_for(lambda: has_open(recorder.pid, env["DATABASE_PATH"]), 30, "maintenance")
        os.killpg(recorder.pid, signal.SIGTERM)
        assert recorder.wait(10) == 0
        assert "recorder stopped after" in recorder.communicate()[1]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(recorder.pid, signal.SIGKILL)
        recorder.wait(10)
        recorder.stderr.close()


def has_open(parent: int, path: str) -> bool:
    """Whether a child of `parent` has `path` open."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(parent).children():
            if any(f.path == path for f in child.open_files()):
                return True
    return False
