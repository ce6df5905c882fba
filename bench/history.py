"""History figures: bytes per sample per tier, steady-state size, /api/series over
the tiers, import and export rates, and the longest ingest stall while pruning.

`python -m bench.history [--quick]` runs them alone and prints the table; `make
bench` includes them. Rates are given per wall-clock second and per CPU second
of the process (the machine is shared: the CPU figure moves less).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from bench.offline import Figure
from producers.drivers.demo import DemoDriver
from recorder import importer
from recorder.prune import Maintenance
from shared import store
from shared.events import Event
from shared.reading import Reading
from shared.settings import Settings

DAY = 86400
YEAR = 365 * DAY
SENSORS, METRICS = 10, 6  # the steady-state example: 10 sensors x 6 metrics at 1 Hz
DEFAULTS = store.Retention.from_settings(Settings.from_env({}))  # the default tiers


@dataclass(frozen=True)
class HistorySizes:
    """How much each figure handles."""

    readings: int  # the tier-size run (the issue asks for 1,000,000)
    import_rows: int
    series_repeats: int
    series_years: int  # of hourly history behind the series queries
    stall_seconds: float


FULL = HistorySizes(
    1_000_000, import_rows=200_000, series_repeats=10, series_years=5, stall_seconds=20
)
QUICK = HistorySizes(20_000, import_rows=5_000, series_repeats=2, series_years=1, stall_seconds=2)


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _rates(n: int, start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clocks()
    return n / max(wall - start[0], 1e-9), n / max(cpu - start[1], 1e-9)


def demo_events(n: int, start: float) -> list[Event]:
    """`n` demo readings (6 metrics) from SENSORS sensors, each at 1 Hz, with stream ids."""
    driver = DemoDriver(seed=2)
    events = []
    for i in range(n):
        ts = start + i // SENSORS + (i % SENSORS) * 0.01 + 0.000123
        reading = Reading(
            source="bench", sensor=f"s{i % SENSORS}", ts=ts, seq=i // SENSORS, values=driver.read()
        )
        events.append(Event(f"{int(ts * 1000)}-{i % SENSORS}", reading))
    return events


def table_bytes(conn: sqlite3.Connection, *tables: str) -> int:
    """Bytes of pages the tables and their indexes use (the dbstat virtual table)."""
    marks = ",".join("?" * len(tables))
    return conn.execute(
        f"SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN ({marks})"
        f" OR name IN (SELECT name FROM sqlite_master WHERE tbl_name IN ({marks}))",
        (*tables, *tables),
    ).fetchone()[0]


def tier_sizes(path: Path, n: int) -> tuple[list[Figure], dict[str, float]]:
    """Insert `n` readings, pack them, and measure each tier; also the store's ingest rate."""
    events = demo_events(n, time.time() - n // SENSORS - 3 * 3600)
    conn = store.connect(path)
    store.init_db(conn)
    start = _clocks()
    for i in range(0, n, 2000):
        store.insert_events(conn, events[i : i + 2000])
    wall, cpu = _rates(n, start)
    maintenance = Maintenance(path, DEFAULTS)
    start = _clocks()
    maintenance.catch_up(conn)
    pack_wall, _ = _rates(maintenance.packed, start)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    samples = sum(len(e.reading.values) for e in events)
    raw = table_bytes(conn, "raw_blocks", "raw_recent")
    rows = {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("rollup_1m", "rollup_1h")
    }
    per_row = {t: table_bytes(conn, t) / max(rows[t], 1) for t in rows}
    hot = table_bytes(conn, "raw_recent") / max(
        conn.execute("SELECT count(*) FROM raw_recent").fetchone()[0], 1
    )
    conn.close()
    per = {
        "raw_sample": raw / samples,
        "raw_reading": raw / n,
        "minute_row": per_row["rollup_1m"],
        "hour_row": per_row["rollup_1h"],
        "hot_reading": hot,
    }
    what = f"{n:,} demo readings (10 sensors x 6 metrics, 1 Hz)"
    return [
        Figure("raw tier", per["raw_sample"], "bytes/sample", f"{what}, packed; indexes included"),
        Figure(
            "minute tier", per["minute_row"], "bytes/row", f"{what}: one row per metric and minute"
        ),
        Figure("hour tier", per["hour_row"], "bytes/row", f"{what}: one row per metric and hour"),
        Figure(
            "store ingest",
            wall,
            "readings/s",
            f"{what}, store.insert_events batches of 2,000; {cpu:,.0f} per CPU s",
        ),
        Figure(
            "packing",
            pack_wall,
            "readings/s",
            "closed hours into blocks (recorder/prune.py code, in-process)",
        ),
    ], per


def steady_state(per: dict[str, float], retention: store.Retention) -> list[Figure]:
    """The file at steady state for SENSORS x METRICS at 1 Hz, scaled from the measured run."""
    raw = per["raw_reading"] * SENSORS * DAY * retention.raw_days
    hot = per["hot_reading"] * SENSORS * store.HOT_SECONDS
    minute = per["minute_row"] * SENSORS * METRICS * 1440 * retention.minute_days
    hour_year = per["hour_row"] * SENSORS * METRICS * 24 * 365
    full = raw + hot + minute + hour_year
    how = (
        f"bytes per reading/row from the run above x 10 sensors x 6 metrics x tier length"
        f" (raw {retention.raw_days:g} d + {store.HOT_SECONDS // 3600} h unpacked,"
        f" minute {retention.minute_days:g} d, hour 1 y)"
    )
    return [
        Figure("steady-state file", full / 1e9, "GB", how),
        Figure(
            "growth after that", hour_year / 1e6, "MB/year", "the hour tier only (kept forever)"
        ),
    ]


def build_series_history(path: Path, end: float, years: int) -> None:
    """One sensor: 2 h raw, 90 d of minutes, `years` of hours (the default tiers' shape)."""
    conn = store.connect(path)
    store.init_db(conn)
    driver = DemoDriver(seed=5)
    events = [
        Event(None, Reading(source="bench", sensor="hist", ts=end - 7200 + i, values=driver.read()))
        for i in range(7200)
    ]
    store.insert_events(conn, events)
    sid = store.names(conn).sids[("bench", "hist")]
    mids = sorted(store.names(conn).metrics)
    rng = random.Random(3)
    with conn:
        for table, size, span in (("rollup_1m", 60, 90 * DAY), ("rollup_1h", 3600, years * YEAR)):
            first = int((end - span) // size)
            rows = (
                (sid, mid, t, v - 1, v + 1, v * n, n)
                for mid in mids
                for t in range(first, int((end - 7200) // size))
                for n in (size,)
                for v in (20 + 5 * math.sin(2 * math.pi * t * size / DAY) + rng.random(),)
            )
            conn.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()


def series_queries(path: Path, repeats: int, years: int) -> list[Figure]:
    """Median ms of GET /api/series at 500 points over 1 h, 30 d, 1 y and 5 y."""
    from web import create_app

    end = time.time()
    build_series_history(path, end, years)
    settings = Settings.from_env({"DATABASE_PATH": str(path), "REDIS_URL": "redis://x"})
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    figures = []
    for label, span in (("1 h", 3600), ("30 d", 30 * DAY), ("1 y", YEAR), ("5 y", 5 * YEAR)):
        url = (
            f"/api/series?source=bench&sensor=hist&metric=temperature_c"
            f"&since={end - span:.0f}&until={end:.0f}&points=500"
        )
        times, cpu, buckets = [], [], 0
        for _ in range(repeats):
            start = _clocks()
            response = client.get(url)
            times.append((time.perf_counter() - start[0]) * 1000)
            cpu.append((time.process_time() - start[1]) * 1000)
            buckets = len(response.get_json()["buckets"])
        figures.append(
            Figure(
                f"/api/series {label}",
                statistics.median(times),
                "ms",
                f"500 points -> {buckets} buckets, median of {repeats}, Flask test client;"
                f" {statistics.median(cpu):.1f} ms CPU; {years} y of hours behind it",
            )
        )
    return figures


def import_rate(tmp: Path, rows: int) -> Figure:
    """The seed fork's sensor_data.db with `rows` rows through `recorder.importer`."""
    path = tmp / "sensor_data.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE sensor_data (DATE DATETIME DEFAULT CURRENT_TIMESTAMP,"
        " TEMPERATURE REAL, fan2 INTEGER, ppt REAL)"
    )
    first = datetime(2024, 1, 1, tzinfo=UTC)
    conn.executemany(
        "INSERT INTO sensor_data VALUES (?, ?, ?, ?)",
        (
            (
                (first + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S"),
                40 + i % 100 / 10,
                700 + i % 50,
                30.25,
            )
            for i in range(rows)
        ),
    )
    conn.commit()
    conn.close()
    db = store.connect(tmp / "import.sqlite3")
    store.init_db(db)
    start = _clocks()
    result = importer.import_file(db, path, importer.Options())
    wall, cpu = _rates(result.added, start)
    db.close()
    return Figure(
        "import",
        wall,
        "readings/s",
        f"seed sensor_data.db, {rows:,} rows of 3 metrics; {cpu:,.0f} per CPU s",
    )


def export_rate(path: Path) -> Figure:
    """GET /api/export.csv of everything in the tier-size database, read chunk by chunk."""
    from web import create_app

    settings = Settings.from_env({"DATABASE_PATH": str(path), "REDIS_URL": "redis://x"})
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    process = psutil.Process()
    base = process.memory_info().rss
    peak, lines = base, 0
    start = _clocks()
    response = client.get("/api/export.csv?since=0", buffered=False)
    for i, chunk in enumerate(response.response):
        lines += chunk.count("\n") if isinstance(chunk, str) else chunk.count(b"\n")
        if i % 50 == 0:
            peak = max(peak, process.memory_info().rss)
    response.close()
    wall, cpu = _rates(lines - 1, start)
    return Figure(
        "export",
        wall,
        "rows/s",
        f"/api/export.csv of all {lines - 1:,} values, streamed; {cpu:,.0f} per CPU s;"
        f" RSS grew {(peak - base) / 1e6:.1f} MB",
    )


def ingest_stall(path: Path, seconds: float) -> Figure:
    """Longest insert_events batch while the maintenance process packs and prunes a backlog.

    Live ingest: 10 sensors at 100 Hz each in batches every 10 ms. Meanwhile the
    tier-size database's hours are packed and, with the clock moved 15 days on,
    everything past retention is deleted.
    """
    conn = store.connect(path)
    late = time.time() + 15 * DAY
    maintenance = Maintenance(path, DEFAULTS, clock=lambda: late)
    events = demo_events(int(seconds * 1000), time.time())
    quiet = _batches(conn, events[: len(events) // 4], seconds / 4)
    maintenance.start()
    busy = _batches(conn, events[len(events) // 4 :], seconds * 3 / 4)
    maintenance.stop()
    conn.close()
    return Figure(
        "longest ingest stall",
        max(busy) * 1000,
        "ms",
        f"batches of 10 readings every 10 ms while packing/pruning ({maintenance.packed:,} packed,"
        f" {maintenance.pruned:,} deleted); p99 {_p99(busy) * 1000:.1f} ms;"
        f" without maintenance: max {max(quiet) * 1000:.1f} ms",
    )


def _batches(conn: sqlite3.Connection, events: list[Event], seconds: float) -> list[float]:
    took = []
    deadline = time.monotonic() + seconds
    for i in range(0, len(events), 10):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        store.insert_events(conn, events[i : i + 10])
        took.append(time.perf_counter() - start)
        time.sleep(0.01)
    return took


def _p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)] if values else 0.0


def figures(
    tmp: Path, sizes: HistorySizes, log: Callable[[str], None] = lambda _: None
) -> list[Figure]:
    """Every history figure, in order."""
    tiers = tmp / "tiers.sqlite3"
    out, per = tier_sizes(tiers, sizes.readings)
    out += steady_state(per, DEFAULTS)
    log("tiers measured")
    out += series_queries(tmp / "series.sqlite3", sizes.series_repeats, sizes.series_years)
    log("series measured")
    out.append(import_rate(tmp, sizes.import_rows))
    out.append(export_rate(tiers))
    log("import and export measured")
    out.append(ingest_stall(tiers, sizes.stall_seconds))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the history figures alone and print them as a Markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="sensor-display-history-") as tmp:
        result = figures(
            Path(tmp), QUICK if args.quick else FULL, lambda m: print(m, file=sys.stderr)
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end: {load}\n")
    print("| what | figure | conditions |\n| --- | --- | --- |")
    for f in result:
        print(f"| {f.name} | {f.value:,.2f} {f.unit} | {f.conditions} |")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
