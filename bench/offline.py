"""The benchmarks that need no streams: recorder ingest, /api/series, producer CPU."""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from producers.drivers.demo import DemoDriver
from producers.outbox import Outbox
from producers.runner import Producer, Sensor
from recorder.consumer import Recorder
from shared import store
from shared.bus import Bus
from shared.reading import Reading
from shared.settings import Settings

DAY = 86400


@dataclass
class Figure:
    """One named measurement with its unit and conditions."""

    name: str
    value: float
    unit: str
    conditions: str


def _readings(n: int, sensors: int, start: float) -> list[Reading]:
    """Demo readings (6 metrics) spread over `sensors` sensors, 1 s apart each."""
    driver = DemoDriver(seed=2)
    return [
        Reading(
            source="bench",
            sensor=f"s{i % sensors}",
            ts=start + i // sensors,
            seq=i // sensors,
            values=driver.read(),
        )
        for i in range(n)
    ]


def recorder_ingest(client: redis.Redis, db_path: Path, n: int) -> Figure:
    """Readings/s from a full Redis stream into SQLite through the Recorder (batched)."""
    bus = Bus(client, "bench-recorder", retention=30 * DAY)
    readings = _readings(n, 10, time.time() - DAY)
    pipe = client.pipeline(transaction=False)
    for r in readings:
        pipe.xadd(bus.stream, {"r": r.to_json()})
    pipe.execute()
    conn = store.connect(db_path)
    store.init_db(conn)
    recorder = Recorder(bus, conn)
    recorder.prepare()
    start = time.perf_counter()
    while recorder.inserted < n:
        if not recorder.step(block_ms=100):
            break
    elapsed = time.perf_counter() - start
    conn.close()
    client.delete(bus.stream, bus.marks.recorded_key)
    return Figure(
        "recorder ingest",
        recorder.inserted / elapsed,
        "readings/s",
        f"{n:,} readings of 6 metrics, XREADGROUP batches of 2,000 -> store.insert_events",
    )


def build_history(db_path: Path, days: int) -> int:
    """A history of 4 metrics at 1 Hz for `days`, written directly (raw rows + minute rollup)."""
    conn = store.connect(db_path)
    store.init_db(conn)
    end = int(time.time()) // 60 * 60
    start = end - days * DAY
    metrics = ("temperature_c", "humidity_pct", "pressure_hpa", "cpu_temp_c")
    rng = random.Random(3)
    with conn:
        conn.executemany(
            "INSERT INTO readings (source, sensor, seq, ts, body) VALUES (?, ?, ?, ?, ?)",
            (
                ("bench", "hist", t - start, float(t), _body(metrics, t, rng))
                for t in range(start, end)
            ),
        )
        conn.execute(
            "INSERT INTO rollup_1m SELECT source, sensor, j.key, CAST(ts / 60 AS INTEGER),"
            " min(j.value), max(j.value), sum(j.value), count(*)"
            " FROM readings, json_each(readings.body) AS j WHERE sensor = 'hist'"
            " GROUP BY source, sensor, j.key, CAST(ts / 60 AS INTEGER)"
        )
    conn.close()
    return end


def _body(metrics: tuple[str, ...], t: int, rng: random.Random) -> str:
    day = math.sin(2 * math.pi * t / DAY)
    return json.dumps({m: round(20 + 5 * day + rng.random(), 2) for m in metrics})


def series_query(db_path: Path, days: int, repeats: int) -> Figure:
    """Median ms of GET /api/series over `days` days, 500 points, via the Flask test client."""
    from web import create_app

    end = build_history(db_path, days)
    settings = Settings.from_env({"DATABASE_PATH": str(db_path), "REDIS_URL": "redis://x"})
    client = create_app({"SETTINGS": settings, "TESTING": True}).test_client()
    url = (
        f"/api/series?source=bench&sensor=hist&metric=temperature_c"
        f"&since={end - days * DAY}&until={end}&points=500"
    )
    times, buckets = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        buckets = len(response.get_json()["buckets"])
    return Figure(
        "/api/series",
        statistics.median(times),
        "ms",
        f"{days} d at 1 Hz x 4 metrics ({days * DAY:,} rows), 500 points -> {buckets} buckets,"
        f" median of {repeats}, Flask test client",
    )


def producer_cpu(redis_url: str, outbox_path: Path, n: int) -> Figure:
    """CPU ms per 1,000 readings: demo driver + outbox + Bus.publish, no sleeping."""
    settings = Settings.from_env({"REDIS_URL": redis_url, "SOURCE": "bench-producer"})
    outbox = Outbox(outbox_path)
    producer = Producer(settings, [Sensor("demo", driver=DemoDriver(seed=4))], outbox)
    start = time.process_time()
    for _ in range(n):
        producer.tick()
        producer.flush()
    cpu = time.process_time() - start
    outbox.close()
    return Figure(
        "producer CPU",
        cpu / n * 1000 * 1000,
        "ms per 1,000 readings",
        f"{n:,} ticks of the demo driver (6 metrics): SQLite outbox + Bus.publish (Lua),"
        " producer process CPU only",
    )
