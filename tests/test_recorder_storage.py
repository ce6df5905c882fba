"""A history that cannot be written (disk full, read-only): nothing acknowledged, nothing lost."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import redis

from recorder.consumer import Recorder, _publish_status
from shared import store
from shared.bus import RECORDER_GROUP, Bus
from shared.reading import Reading


def reading(seq: int) -> Reading:
    values = {f"m{k}_c": seq + k / 7 for k in range(8)}
    return Reading(source="pi", sensor="demo", ts=time.time() + seq / 1000, seq=seq, values=values)


def publish(bus: Bus, seqs: range) -> None:
    for seq in seqs:
        bus.publish(reading(seq))


def pending(bus: Bus) -> int:
    return bus.client.xpending(bus.stream, RECORDER_GROUP)["pending"]


@pytest.mark.parametrize(
    ("block", "unblock", "says"),
    [
        ("PRAGMA max_page_count = {pages}", "PRAGMA max_page_count = 1073741823", "full"),
        ("PRAGMA query_only = 1", "PRAGMA query_only = 0", "readonly"),
    ],
)
def test_stops_acknowledging_says_so_once_and_catches_up(
    redis_client: redis.Redis, tmp_path: Path, caplog, block: str, unblock: str, says: str
) -> None:
    bus = Bus(redis_client)
    conn = store.connect(tmp_path / "history.sqlite3")
    store.init_db(conn)
    recorder = Recorder(bus, conn)
    recorder.prepare()
    publish(bus, range(1, 51))
    assert recorder.step(block_ms=100) == 50
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(block.format(pages=pages))
    publish(bus, range(51, 1051))
    caplog.set_level(logging.INFO, logger="recorder.consumer")
    for _ in range(3):
        assert recorder.step(block_ms=100) == 0
    # Nothing acknowledged, the marks stay: producers keep their outbox rows.
    assert pending(bus) == 1000
    assert bus.marks.recorded() == {("pi", "demo"): 50}
    assert says in recorder.storage_error
    refusals = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(refusals) == 1
    _publish_status(recorder)
    assert bus.recorder_status()["storage_ok"] == 0
    # Space comes back: it catches up by itself.
    conn.execute(unblock)
    while recorder.step(block_ms=100):
        pass
    assert store.count_readings(conn) == 1050
    assert pending(bus) == 0
    assert bus.marks.recorded() == {("pi", "demo"): 1050}
    assert recorder.storage_error == ""
    assert any("written again" in r.getMessage() for r in caplog.records)
    _publish_status(recorder)
    assert bus.recorder_status()["storage_ok"] == 1


def test_readyz_and_metrics_say_when_the_history_cannot_be_written(
    client, redis_client: redis.Redis, tmp_path: Path
) -> None:
    bus = Bus(redis_client)
    conn = store.connect(tmp_path / "history.sqlite3")
    store.init_db(conn)
    recorder = Recorder(bus, conn)
    recorder.prepare()
    conn.execute("PRAGMA query_only = 1")
    publish(bus, range(1, 3))
    recorder.step(block_ms=100)
    _publish_status(recorder)
    ready = client.get("/readyz").get_json()["recorder"]
    assert ready["history_writable"] is False
    assert "readonly" in ready["history_error"]
    assert "sensor_display_recorder_history_writable 0" in client.get("/metrics").get_data(
        as_text=True
    )
    conn.execute("PRAGMA query_only = 0")
    recorder.step(block_ms=100)
    _publish_status(recorder)
    assert client.get("/readyz").get_json()["recorder"]["history_writable"] is True
    assert "sensor_display_recorder_history_writable 1" in client.get("/metrics").get_data(
        as_text=True
    )
