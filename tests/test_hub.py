"""The hub fed with canned channel messages, malformed ones included."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import pytest
import redis

from shared.bus import Bus
from shared.events import Event
from shared.reading import Reading
from web.hub import Hub, Overrun
from web.metrics import render


def message(seq: int, *, sensor: str = "demo", event_id: str | None = None) -> bytes:
    reading = Reading(
        source="pi", sensor=sensor, ts=time.time(), seq=seq, values={"temperature_c": 20.0 + seq}
    )
    msg = {"data": reading.to_dict(), "type": "reading"}
    if event_id:
        msg["id"] = event_id
    return json.dumps(msg).encode()


@pytest.fixture
def hub(redis_client: redis.Redis) -> Hub:
    return Hub(redis_client, Bus(redis_client), ring_size=8)


BAD = [
    b"not json",
    b"{}",
    b'{"data": {"source": "pi"}, "type": "reading"}',
    b'{"data": {"source":"pi","sensor":"x","ts":1763712000,"values":{"t_c":NaN}}}',
    b'{"data": {"source":"pi","sensor":"x","ts":1763712000,"values":{"t_c":1}}, "type":"x"}',
    b"\xff\xfe",
]


def test_bad_messages_are_dropped_and_counted(hub: Hub) -> None:
    for data in BAD:
        assert hub.accept_message(data) == 0
    assert hub.accept_message(message(1, event_id="5-0")) == 1
    assert hub.stats.rejected == len(BAD)
    assert hub.head == 1


def test_an_event_is_encoded_once_with_its_id(hub: Hub) -> None:
    hub.accept_message(message(1, event_id="1763712000000-0"))
    [entry] = list(hub.entries(0))
    assert entry.payload.startswith(b"event:reading\ndata:{")
    assert entry.payload.endswith(b"\nid:1763712000000-0\n\n")


def test_repeats_by_id_or_seq_are_dropped(hub: Hub) -> None:
    assert hub.accept_message(message(1, event_id="10-0")) == 1
    assert hub.accept_message(message(2, event_id="10-0")) == 0  # same stream id
    assert hub.accept_message(message(1, event_id="11-0")) == 0  # same seq, re-sent
    assert hub.accept_message(message(2)) == 1  # stock publisher: no id
    assert hub.stats.duplicates == 2


def test_a_client_that_falls_off_the_ring_is_told(hub: Hub) -> None:
    for seq in range(10):
        hub.accept_message(message(seq, event_id=f"{seq + 1}-0"))
    with pytest.raises(Overrun):
        list(hub.entries(0))
    assert len(list(hub.entries(hub.head - 8))) == 8


def test_max_sensors_bounds_the_live_state(redis_client, caplog) -> None:
    """Past MAX_SENSORS new sensors are refused, logged and counted; known ones go on."""
    hub = Hub(redis_client, Bus(redis_client), ring_size=64, max_sensors=3)
    readings = [
        Reading(source="s", sensor=f"n{i}", ts=time.time(), values={"t_c": 1.0}) for i in range(5)
    ]
    accepted = [hub.accept(Event(None, r)) for r in readings]
    assert accepted == [1, 1, 1, 0, 0]
    assert hub.stats.refused_sensors == 2
    assert hub.stats.sensors == 3
    assert "MAX_SENSORS" in caplog.text
    again = Reading(source="s", sensor="n0", ts=time.time(), values={"t_c": 2.0})
    assert hub.accept(Event(None, again)) == 1
    text = render([asdict(hub.stats)], {}, [])
    assert "sensor_display_refused_sensors_total 2" in text
    assert "sensor_display_sensors_live 3" in text


@pytest.mark.slow
def test_many_made_up_sensors_stay_bounded_in_gunicorn(redis_url: str, tmp_path) -> None:
    """5,000 distinct sensors published: /api/sensors and /metrics stay at MAX_SENSORS."""
    import urllib.request

    from devtools.stack import Stack
    from shared import store

    stack = Stack.create(
        tmp_path, {"REDIS_URL": redis_url, "WEB_WORKERS": "1", "MAX_SENSORS": "100"}
    )
    bus = Bus(redis.Redis.from_url(redis_url))
    try:
        conn = store.connect(stack.env["DATABASE_PATH"])
        store.init_db(conn)
        conn.close()
        base = stack.start_web()
        deadline = time.monotonic() + 30
        while True:  # the worker's subscription is live: nothing published is missed
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
                if "sensor_display_subscriptions_live 1" in response.read().decode():
                    break
            assert time.monotonic() < deadline, "the worker never subscribed"
            time.sleep(0.3)
        for i in range(5000):
            bus.publish(
                Reading(source="flood", sensor=f"s{i}", ts=time.time(), values={"t_c": 1.0})
            )
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
                text = response.read().decode()
            if "sensor_display_refused_sensors_total 4900" in text:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
        assert "sensor_display_sensors_live 100" in text
        with urllib.request.urlopen(f"{base}/api/sensors", timeout=10) as response:
            assert len(json.load(response)["sensors"]) == 100
    finally:
        bus.client.close()
        stack.stop_all()


def test_the_connect_snapshot_is_encoded_once_per_change(redis_client) -> None:
    """Every unfiltered client gets the same bytes until a reading changes them."""
    hub = Hub(redis_client, Bus(redis_client), ring_size=64)
    first = Reading(source="s", sensor="a", ts=time.time(), values={"t_c": 1.0})
    hub.accept(Event("1-1", first))
    one = hub.snapshot()
    assert hub.snapshot() is one
    assert b'"sensor":"a"' in one
    assert one.endswith(b"id:1-1\n\n")
    hub.accept(Event("1-2", Reading(source="s", sensor="b", ts=time.time(), values={"t_c": 2.0})))
    two = hub.snapshot()
    assert two is not one
    assert b'"sensor":"b"' in two


def test_sensors_unseen_for_long_leave_the_live_state(redis_client) -> None:
    """SENSOR_EXPIRY_DAYS: a sensor silent past it is forgotten live; it may come back."""
    hub = Hub(redis_client, Bus(redis_client), ring_size=64, expire_after=3600.0)
    for name in ("old", "new"):
        hub.accept(
            Event(None, Reading(source="s", sensor=name, ts=time.time(), values={"t_c": 1.0}))
        )
    hub.seen_at[("s", "old")] -= 7200
    before = hub.snapshot()
    assert hub.expire() == 1
    assert set(hub.latest) == {("s", "new")}
    assert b'"sensor":"old"' not in hub.snapshot()
    assert hub.snapshot() is not before
    back = Reading(source="s", sensor="old", ts=time.time(), values={"t_c": 3.0})
    assert hub.accept(Event(None, back)) == 1
