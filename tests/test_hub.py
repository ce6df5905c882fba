"""The hub fed with canned channel messages, malformed ones included."""

from __future__ import annotations

import json
import time

import pytest
import redis

from shared.bus import Bus
from shared.reading import Reading
from web.hub import Hub, Overrun


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
