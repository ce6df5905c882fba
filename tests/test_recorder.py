"""The recorder on a real Redis: batches, exactly once, resume, marks, stock publishers."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import redis
from waiting import wait_for

from recorder.consumer import Recorder
from shared import store
from shared.bus import Bus
from shared.events import Event
from shared.reading import Reading


def reading(seq: int | None, sensor: str = "demo") -> Reading:
    return Reading(
        source="pi", sensor=sensor, ts=time.time(), seq=seq, values={"temperature_c": 20.0}
    )


def count(conn: sqlite3.Connection) -> int:
    return store.count_readings(conn)


def test_records_each_reading_once_and_moves_the_mark(redis_client: redis.Redis, db) -> None:
    bus = Bus(redis_client)
    for seq in range(1, 101):
        bus.publish(reading(seq))
    recorder = Recorder(bus, db)
    recorder.prepare()
    assert recorder.step(block_ms=100) == 100
    assert recorder.step(block_ms=100) == 0
    assert count(db) == 100
    assert bus.marks.recorded() == {("pi", "demo"): 100}


def test_a_restart_resumes_where_it_stopped(redis_client: redis.Redis, db) -> None:
    bus = Bus(redis_client)
    for seq in range(1, 11):
        bus.publish(reading(seq))
    first = Recorder(bus, db)
    first.prepare()
    # Read but crash before storing: the entries stay pending for the group.
    first._read(">", 100)
    second = Recorder(bus, db)
    second.prepare()
    assert second.step(block_ms=100) == 10
    for seq in range(11, 16):
        bus.publish(reading(seq))
    assert second.step(block_ms=100) == 5
    assert count(db) == 15


def test_marks_are_rebuilt_when_redis_comes_back_empty(redis_client: redis.Redis, db) -> None:
    bus = Bus(redis_client)
    for seq in range(1, 6):
        bus.publish(reading(seq))
    recorder = Recorder(bus, db)
    recorder.prepare()
    recorder.step(block_ms=100)
    redis_client.flushall()
    recorder.prepare()
    assert bus.marks.recorded() == {("pi", "demo"): 5}


def test_malformed_stream_entries_are_skipped_not_fatal(
    redis_client: redis.Redis, db, caplog: pytest.LogCaptureFixture
) -> None:
    bus = Bus(redis_client)
    bus.publish(reading(1))
    redis_client.xadd(bus.stream, {"r": b'{"source": "pi"}'})
    redis_client.xadd(bus.stream, {"junk": b"1"})
    bus.publish(reading(2))
    recorder = Recorder(bus, db)
    recorder.prepare()
    assert recorder.step(block_ms=100) == 2
    assert "skipped stream entry" in caplog.text
    assert recorder.step(block_ms=100) == 0  # acked: not read again


def test_stock_flask_sse_messages_reach_the_history(redis_client: redis.Redis, db) -> None:
    bus = Bus(redis_client)
    recorder = Recorder(bus, db)
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(bus.channel)
    pubsub.get_message(timeout=1)
    data = reading(None, sensor="esp32").to_dict()
    redis_client.publish(bus.channel, json.dumps({"data": data, "type": "reading"}))
    redis_client.publish(bus.channel, b"garbage")
    assert wait_for(lambda: recorder.store_messages(pubsub), 5, "the stock message") == 1
    [row] = store.query_readings(db, sensors=["esp32"], since=0, until=time.time() + 1, limit=9)
    assert row.seq is None
    pubsub.close()


def test_the_recorder_publishes_where_it_stands_so_unread_entries_are_held(
    redis_client: redis.Redis, db
) -> None:
    from recorder.consumer import _publish_status
    from shared.events import stream_id_key

    bus = Bus(redis_client)
    ids = [bus.publish(reading(seq)) for seq in range(1, 4)]
    recorder = Recorder(bus, db)
    recorder.prepare()
    _publish_status(recorder)
    assert bus.marks.hold() == 0  # nothing read yet
    recorder.step(block_ms=100)
    _publish_status(recorder)
    assert bus.marks.hold() == stream_id_key(ids[-1])[0]
    assert bus.marks.recorded() == {("pi", "demo"): 3}


def test_max_sensors_bounds_the_history(
    redis_client: redis.Redis, db, client, caplog: pytest.LogCaptureFixture
) -> None:
    """Past MAX_SENSORS new sensors are refused, named once, counted; the rest go on."""
    from recorder.consumer import _publish_status

    bus = Bus(redis_client)
    recorder = Recorder(bus, db, max_sensors=3)
    recorder.prepare()
    # Interleaved: the known sensors' readings after each refused one still land.
    for seq in range(1, 3):
        for n in range(6):
            bus.publish(reading(seq, sensor=f"s{n}"))
    with caplog.at_level("WARNING"):
        assert recorder.step(block_ms=100) == 6  # s0-s2, two readings each
        for n in range(6):
            bus.publish(reading(3, sensor=f"s{n}"))
        assert recorder.step(block_ms=100) == 3
    assert {e.reading.sensor for e in store.latest(db)} == {"s0", "s1", "s2"}
    assert db.execute("SELECT count(*) FROM sensors").fetchone()[0] == 3
    assert recorder.refused_sensors == 9
    # Each refused sensor named once (then at power-of-two totals only).
    named = [r.getMessage() for r in caplog.records if "MAX_SENSORS" in r.getMessage()]
    assert [m.split()[1] for m in named] == ["pi/s3:", "pi/s4:", "pi/s5:", "pi/s3:", "pi/s4:"]
    assert [int(m.split()[-5]) for m in named][3:] == [4, 8]
    # Acknowledged, so nothing wedges; no mark for what was not stored.
    assert bus.recorder_lag()["lag"] == 0
    assert bus.recorder_lag()["pending"] == 0
    assert bus.marks.recorded() == {("pi", f"s{n}"): 3 for n in range(3)}
    _publish_status(recorder)
    text = client.get("/metrics").get_data(as_text=True).splitlines()
    assert "sensor_display_recorder_refused_sensors_total 9" in text
    assert "sensor_display_recorder_sensors 3" in text


def test_max_sensors_counts_what_the_history_holds_already(redis_client: redis.Redis, db) -> None:
    """A history over the bound (MAX_SENSORS lowered) keeps its sensors and adds none."""
    store.insert_events(db, [Event(None, reading(1, sensor=f"old{n}")) for n in range(4)])
    bus = Bus(redis_client)
    recorder = Recorder(bus, db, max_sensors=2)
    recorder.prepare()
    bus.publish(reading(2, sensor="old3"))
    bus.publish(reading(1, sensor="new"))
    assert recorder.step(block_ms=100) == 1
    assert recorder.refused_sensors == 1
    assert db.execute("SELECT count(*) FROM sensors").fetchone()[0] == 4


def test_a_gap_in_the_seqs_holds_the_mark_then_is_given_up(
    redis_client: redis.Redis, db, caplog: pytest.LogCaptureFixture
) -> None:
    """Marks rule 9 in the recorder: seqs 3-4 missing hold the mark at 2 until GAP_WAIT."""
    from shared import marks

    bus = Bus(redis_client)
    for seq in (1, 2, 5):  # 3 and 4 never reach the stream (trimmed before they were read)
        bus.publish(reading(seq))
    recorder = Recorder(bus, db)
    recorder.prepare()
    assert recorder.step(block_ms=100) == 3
    assert recorder.gaps_found == 1
    assert bus.marks.recorded() == {("pi", "demo"): 2}  # the producer keeps 3 and 4
    assert bus.marks.published() == {("pi", "demo"): 2}  # and is told to re-send them
    recorder.gaps[("pi", "demo")].since -= marks.GAP_WAIT + 1  # nobody re-sent in time
    recorder.expire_gaps()
    assert recorder.seq_lost == 2
    assert bus.marks.recorded() == {("pi", "demo"): 5}
    assert "seqs 3..4 never came back" in caplog.text


@pytest.mark.parametrize("module", ["recorder", "web.recorder"])
def test_both_commands_run_the_recorder(module: str, redis_url: str, tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "dashboard.sqlite3"
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_PATH": str(path)}
    proc = subprocess.Popen([sys.executable, "-m", module], env=env, stderr=subprocess.PIPE)
    try:
        Bus(redis.Redis.from_url(redis_url)).publish(reading(1))
        wait_for(lambda: proc.poll() is not None or _stored(path), 20, "the reading stored")
        assert proc.poll() is None, proc.stderr.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        proc.stderr.close()


def _stored(path) -> dict:
    if not path.exists():
        return {}
    conn = store.connect(path, readonly=True)
    try:
        return store.high_water(conn)
    except sqlite3.OperationalError:  # the recorder has not created the table yet
        return {}
    finally:
        conn.close()
