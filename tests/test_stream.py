"""/stream's body from the hub: opening, snapshot, filters, heartbeats, shutdown."""

from __future__ import annotations

import json
import time

import gevent
import pytest
import redis

from shared.bus import Bus
from shared.reading import Reading
from tests.test_hub import message
from web.hub import Hub
from web.stream import Filter, stream_events


@pytest.fixture
def hub(redis_client: redis.Redis) -> Hub:
    return Hub(redis_client, Bus(redis_client), ring_size=8)


def take(body, n: int) -> list[bytes]:
    return [next(body) for _ in range(n)]


def test_a_new_client_gets_retry_then_snapshot_then_live(hub: Hub) -> None:
    hub.accept_message(message(1, event_id="1-0"))
    hub.accept_message(message(1, sensor="cpu", event_id="2-0"))
    body = stream_events(hub, Filter(), None, heartbeat=0.05, history=None)
    [opening] = take(body, 1)
    assert opening.startswith(b"retry:2000\n\n:connected\n\n")
    assert opening.count(b"event:reading") == 2
    assert opening.endswith(b"id:2-0\n\n")  # resume point for the browser
    hub.accept_message(message(2, event_id="3-0"))
    hub._notify()
    assert next(body).endswith(b"id:3-0\n\n")
    assert next(body) == b":hb\n\n"
    body.close()
    assert hub.stats.clients == 0


def test_filters_apply_to_snapshot_and_live(hub: Hub) -> None:
    hub.accept_message(message(1, sensor="cpu", event_id="1-0"))
    body = stream_events(
        hub, Filter(sensors=frozenset({"demo"})), None, heartbeat=0.05, history=None
    )
    assert b"event:reading" not in next(body)
    hub.accept_message(message(2, sensor="cpu", event_id="2-0"))
    hub.accept_message(message(3, sensor="demo", event_id="3-0"))
    hub._notify()
    chunk = next(body)
    assert b'"sensor":"demo"' in chunk
    assert b'"sensor":"cpu"' not in chunk
    body.close()


def test_stop_tells_clients_to_reconnect(hub: Hub) -> None:
    body = stream_events(hub, Filter(), None, heartbeat=5, history=None)
    next(body)
    hub.stop()
    assert next(body).startswith(b"retry:")
    with pytest.raises(StopIteration):
        next(body)


def cpu_message(seq: int) -> bytes:
    reading = Reading(
        source="pi", sensor="cpu", ts=time.time(), seq=seq, values={"temperature_c": 40.0}
    )
    return json.dumps({"data": reading.to_dict(), "type": "reading", "id": f"{seq}-0"}).encode()


def test_a_filtered_client_gets_heartbeats_while_other_sensors_publish(
    redis_client: redis.Redis,
) -> None:
    hub = Hub(redis_client, Bus(redis_client), ring_size=64)
    body = stream_events(
        hub, Filter(sensors=frozenset({"demo"})), None, heartbeat=0.2, history=None
    )
    next(body)

    def other_sensor() -> None:
        # Wakes the client every 50 ms with events its filter drops.
        for seq in range(1, 41):
            hub.accept_message(cpu_message(seq))
            hub._notify()
            gevent.sleep(0.05)

    noise = gevent.spawn(other_sensor)
    start = time.monotonic()
    try:
        assert next(body) == b":hb\n\n"
        assert time.monotonic() - start < 0.5
    finally:
        noise.kill()
        body.close()


def test_a_reading_resent_after_a_failover_reaches_a_resuming_client_once(
    hub: Hub, redis_client: redis.Redis
) -> None:
    """The new master lost seqs 2-3 and got them again under new ids: a resume skips them."""
    for seq in (1, 2, 3):  # what the hub (and the client) had from the old master
        hub.accept_message(message(seq, event_id=f"{seq}-0"))
    stream = Bus(redis_client).stream
    for seq, entry_id in [(1, "1-0"), (2, "4-0"), (3, "5-0"), (4, "6-0")]:
        reading = Reading(source="pi", sensor="demo", ts=time.time(), seq=seq, values={"t_c": 1.0})
        redis_client.xadd(stream, {"r": reading.to_json()}, id=entry_id)
    assert hub.seqs_through((3, 0)) == {("pi", "demo"): 3}
    body = stream_events(hub, Filter(), "3-0", heartbeat=0.05, history=None)
    replay = b"".join(take(body, 2))
    assert replay.count(b"event:reading") == 1
    assert b'"seq":4' in replay
    body.close()
