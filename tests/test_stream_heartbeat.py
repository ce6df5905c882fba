"""/stream heartbeats are due after the last bytes sent, whatever wakes the client."""

from __future__ import annotations

import json
import time

import gevent
import redis

from shared.bus import Bus
from shared.reading import Reading
from web.hub import Hub
from web.stream import Filter, stream_events


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
