"""The benchmarks that need no streams: recorder ingest and producer CPU (history: history.py)."""

from __future__ import annotations

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
    start, cpu = time.perf_counter(), time.process_time()
    while recorder.inserted < n:
        if not recorder.step(block_ms=100):
            break
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    conn.close()
    client.delete(bus.stream, bus.marks.recorded_key)
    return Figure(
        "recorder ingest",
        recorder.inserted / elapsed,
        "readings/s",
        f"{n:,} readings of 6 metrics, XREADGROUP batches of 2,000 -> store.insert_events;"
        f" {recorder.inserted / cpu:,.0f} per CPU s of the recorder",
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
