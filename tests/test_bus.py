"""The Redis bus on a real redis-server: atomic publish, replay, interop with flask-sse."""

from __future__ import annotations

import json
import time

import pytest
import redis
from flask import Flask
from flask_sse import sse

from shared.bus import Bus, parse_message
from shared.events import stream_id_key
from shared.reading import Reading, ReadingError


def reading(seq: int | None = 1, sensor: str = "demo") -> Reading:
    return Reading(
        source="pi", sensor=sensor, ts=time.time(), seq=seq, values={"temperature_c": 21.5}
    )


def next_message(pubsub: redis.client.PubSub, timeout: float = 5.0) -> dict:
    """Wait with a deadline for the next message (subscribe replies are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message is not None:
            return message
    raise TimeoutError("no message")


def test_publish_puts_the_same_event_on_channel_and_stream(redis_client: redis.Redis) -> None:
    bus = Bus(redis_client)
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("readings")
    event_id = bus.publish(reading())
    message = next_message(pubsub)
    event = parse_message(message["data"])
    assert event.id == event_id
    assert bus.read_after("0-0") == [event]
    assert json.loads(message["data"])["type"] == "reading"


def test_a_repeated_seq_is_published_once(redis_client: redis.Redis) -> None:
    bus = Bus(redis_client)
    assert bus.publish(reading(seq=5)) is not None
    assert bus.publish(reading(seq=5)) is None
    assert bus.publish(reading(seq=4)) is None
    assert bus.publish(reading(seq=6)) is not None
    assert bus.publish(reading(seq=None)) is not None
    assert len(bus.read_after("0-0")) == 3


def test_stream_ids_grow_and_read_after_is_exclusive(redis_client: redis.Redis) -> None:
    bus = Bus(redis_client)
    ids = [bus.publish(reading(seq=i)) for i in range(5)]
    assert sorted(ids, key=stream_id_key) == ids
    assert [e.id for e in bus.read_after(ids[1])] == ids[2:]
    assert bus.first_id() == ids[0]
    assert bus.last_id() == ids[-1]


def test_stock_flask_sse_publish_is_a_valid_message(redis_url: str, redis_client) -> None:
    app = Flask(__name__)
    app.config["REDIS_URL"] = redis_url
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("readings")
    with app.app_context():
        sse.publish(reading(seq=None).to_dict(), type="reading", channel="readings")
    event = parse_message(next_message(pubsub)["data"])
    assert event.id is None
    assert event.reading.sensor == "demo"


GOOD = b'{"source":"a","sensor":"b","ts":1763712000,"values":{"t_c":1}}'


@pytest.mark.parametrize(
    "data",
    [
        b"garbage",
        b'{"data": {"source": "pi"}, "type": "reading"}',
        b'{"data": ' + GOOD + b', "type": "alarm"}',
        b'{"data": ' + GOOD + b', "id": "x-y"}',
        b'{"data": ' + GOOD + b', "channel": "x"}',
        b'"just a string"',
        b"x" * 100_000,
    ],
)
def test_malformed_messages_are_refused(data: bytes) -> None:
    with pytest.raises(ReadingError):
        parse_message(data)


def test_errors_are_reported_and_cleared(redis_client: redis.Redis) -> None:
    bus = Bus(redis_client)
    bus.report_error("pi", "bme280", "no device answers at 0x76", 1.0)
    assert bus.sensor_errors() == {
        ("pi", "bme280"): {"error": "no device answers at 0x76", "ts": 1.0}
    }
    bus.report_error("pi", "bme280", None, 2.0)
    assert bus.sensor_errors() == {}


def test_entries_the_recorder_has_not_read_outlive_the_retention(redis_client) -> None:
    # Trim exactly (small stream nodes), with a 1 s retention and a 60 s hold.
    redis_client.config_set("stream-node-max-entries", 1)
    bus = Bus(redis_client, retention=1, max_retention=60)
    first = bus.publish(reading(seq=1))
    bus.marks.set_hold(stream_id_key(first)[0])
    time.sleep(1.2)  # the retention is the point: let the first entry age past it
    bus.publish(reading(seq=2))
    assert bus.first_id() == first  # held for the recorder
    bus.marks.set_hold(int(time.time() * 1000))
    assert bus.marks.recorded() == {}  # the position is not a sensor's mark
    bus.publish(reading(seq=3))
    assert bus.first_id() != first  # recorded: trimmed at the retention again


def test_sensor_errors_keep_only_small_objects(redis_client) -> None:
    """Non-object JSON, garbage and huge texts in the errors hash never reach /api/sensors."""
    bus = Bus(redis_client)
    redis_client.hset(
        bus.errors_key,
        mapping={
            "a/list": "[1, 2]",
            "a/number": "7",
            "a/garbage": "{not json",
            "a/huge": json.dumps({"error": "x" * 10_000_000, "ts": 1.0}),
            "a/long": json.dumps({"error": "y" * 1000, "ts": 1.0}),
            "a/fine": json.dumps({"error": "i2c timeout", "ts": 1.0}),
        },
    )
    errors = bus.sensor_errors()
    assert set(errors) == {("a", "long"), ("a", "fine")}
    assert errors[("a", "long")]["error"] == "y" * 500
    bus.report_error("a", "told", "z" * 5000, 1.0)
    assert len(bus.sensor_errors()[("a", "told")]["error"]) == 500


def test_a_reading_from_2099_on_the_channel_is_refused() -> None:
    """Stock publishers skip the publish script: the channel check refuses the future too."""
    future = {"source": "s", "sensor": "n", "ts": 4070908800.0, "values": {"t_c": 1.0}}
    with pytest.raises(ReadingError, match="future"):
        parse_message(json.dumps({"data": future, "type": "reading"}))
    future["ts"] = time.time() + 3600
    assert parse_message(json.dumps({"data": future, "type": "reading"})).reading.ts > time.time()
