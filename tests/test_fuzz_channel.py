"""Fuzz the channel boundary: `parse_message` and `Hub.accept_message`, then real processes.

Whatever arrives on the Redis channel is either a valid Event or a ReadingError;
the hub drops and counts the bad ones and keeps accepting good ones. Input counts
are the `fuzz(...)` figures below; docs/security.md quotes them.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sse_client import SSEStream
from waiting import wait_for

from shared.bus import Bus, parse_message
from shared.events import Event
from shared.reading import MAX_MESSAGE_BYTES, Reading, ReadingError
from tests.test_fuzz_reading import json_values, mutated_dicts, valid_dicts
from web.hub import Hub

# serial: thousands of inputs against the 120 s timeout; alone, not beside heavy tests.
pytestmark = pytest.mark.serial

_BASE = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
GOOD = {"source": "fuzz-src", "sensor": "after", "ts": 1.7e9, "values": {"ok_bool": 1}}


def fuzz(examples: int) -> settings:
    """Settings for one fuzz test: `examples` inputs, no deadline."""
    return settings(_BASE, max_examples=examples)


stream_ids = st.one_of(
    st.builds(lambda ms, n: f"{ms}-{n}", st.integers(0, 2**45), st.integers(0, 99)),
    st.text("0123456789-²١", max_size=20),
    json_values,
)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A flask-sse message around a valid or mutated reading, its envelope mutated too."""
    msg: dict[str, Any] = {"data": draw(valid_dicts(max_metrics=6) | mutated_dicts())}
    if draw(st.booleans()):
        msg["type"] = draw(st.just("reading") | json_values)
    if draw(st.booleans()):
        msg["id"] = draw(stream_ids)
    if draw(st.integers(0, 9)) == 0:
        msg[draw(st.sampled_from(["retry", "channel", "event", ""]))] = draw(json_values)
    if draw(st.integers(0, 9)) == 0:
        msg.pop("data")
    return msg


def _parse(data: str | bytes) -> Event | None:
    """parse_message; ReadingError is an outcome, anything else fails the test."""
    try:
        parsed = parse_message(data)
    except ReadingError as exc:
        event(f"rejected: {str(exc).split(':')[0].split(' must')[0][:40]}")
        return None
    event("accepted")
    return parsed


@fuzz(3000)
@given(messages())
def test_parse_message_structured(msg: dict[str, Any]) -> None:
    """Mutated envelopes and readings: an Event that round-trips, or ReadingError."""
    parsed = _parse(json.dumps(msg, allow_nan=True))
    if parsed is not None:
        assert parsed.reading == Reading.from_dict(msg["data"])
        assert parsed.id == msg.get("id")
        again = json.dumps({"data": parsed.reading.to_dict(), "type": "reading", "id": parsed.id})
        assert parse_message(again) == parsed


@fuzz(3000)
@given(st.binary(max_size=1024) | st.text(max_size=512).map(str.encode))
def test_parse_message_raw(data: bytes) -> None:
    """Raw bytes and text (Redis hands the hub bytes) never raise anything else."""
    _parse(data)


@fuzz(200)
@given(st.integers(MAX_MESSAGE_BYTES - 64, 20 * MAX_MESSAGE_BYTES), st.sampled_from('[{" 9'))
def test_parse_message_huge(size: int, fill: str) -> None:
    """Payloads around and far past the size cap, including deep nesting."""
    body = fill * size
    assert _parse(body) is None
    assert _parse(json.dumps({"data": GOOD, "type": "reading", "pad": body})) is None


@pytest.fixture
def offline_hub() -> Hub:
    """A hub that is never started: accept_message needs no Redis."""
    client = redis.Redis(host="127.0.0.1", port=1)  # never connected
    return Hub(client, Bus(client), ring_size=64)


@fuzz(1500)
@given(
    st.lists(
        messages().map(lambda m: json.dumps(m, allow_nan=True).encode()) | st.binary(max_size=256),
        min_size=1,
        max_size=6,
    )
)
def test_hub_survives_any_batch(offline_hub: Hub, batch: list[bytes]) -> None:
    """Every message is counted; bad ones never stop the next good one."""
    hub = offline_hub
    event(f"batch of {len(batch)}")
    received, rejected, head = hub.stats.received, hub.stats.rejected, hub.head
    added = sum(hub.accept_message(data) for data in batch)
    assert hub.stats.received == received + len(batch)
    assert hub.head == head + added
    assert added + (hub.stats.rejected - rejected) <= len(batch)
    for entry in hub.entries(max(head, hub.head - hub.size)):
        _check_encoded(entry.payload)
    # A stock flask-sse message (no id, no seq) after the batch always gets in.
    good = {**GOOD, "ts": time.time()}
    assert hub.accept_message(json.dumps({"data": good, "type": "reading"})) == 1


def _check_encoded(payload: bytes) -> None:
    """What the hub queued for browsers is one SSE event of valid reading JSON."""
    lines = payload.decode().split("\n")
    assert lines[-2:] == ["", ""]
    data = [line[len("data:") :] for line in lines if line.startswith("data:")]
    assert len(data) == 1
    Reading.from_json(data[0])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b'{"data": 1}',
        b'{"data": {"source": "a"}, "type": "reading"}',
        b'{"data": {"source":"a","sensor":"b","ts":1e9,"values":{"x_c":NaN}}}',
        b'{"data": {"source":"a","sensor":"b","ts":1e9,"values":{"x_c":1e999}}}',
        b'{"data": {"source":"a","sensor":"b","ts":1e9,"values":{"x_c":' + b"9" * 4000 + b"}}}",
        b'{"data": {"source":"a","sensor":"b","ts":1e9,"values":{"x_c":1}}, "id": "\xc2\xb2-1"}',
        b'{"data": {"source":"a","sensor":"b","ts":1e9,"values":{"x_c":1}},'
        b' "id": "99999999999999-0"}',
        b'{"data": {"source":"<script>","sensor":"b","ts":1e9,"values":{"x_c":1}}}',
        b"[" * 100_000,
        b"\xff" * (MAX_MESSAGE_BYTES + 1000),
    ],
)
def test_hub_drops_and_counts(offline_hub: Hub, data: bytes, caplog) -> None:
    """Each known-bad message: one log line, one count, nothing queued."""
    with caplog.at_level("WARNING", logger="web.hub"):
        assert offline_hub.accept_message(data) == 0
    assert offline_hub.stats.rejected == 1
    assert offline_hub.head == 0
    assert len([r for r in caplog.records if r.name == "web.hub"]) == 1


def test_a_future_id_cannot_mute_the_hub(offline_hub: Hub) -> None:
    """An id far ahead would make every real event look like a repeat: refused."""
    far = {"data": GOOD, "type": "reading", "id": f"{int(time.time() * 1000) + 10**11}-0"}
    assert offline_hub.accept_message(json.dumps(far)) == 0
    now = {"data": {**GOOD, "ts": time.time()}, "id": f"{int(time.time() * 1000)}-0"}
    assert offline_hub.accept_message(json.dumps(now)) == 1


GARBAGE = [
    b"",
    b"\x00\xff garbage",
    b"[" * 50_000,
    b'{"data": {"source":"a","sensor":"b","ts":1e9,"values":{"x_c":' + b"9" * 5000 + b"}}}",
    b'{"data": {"source":"a","sensor":"b","ts":1e9,"values":{"x_c":Infinity}}}',
    b'{"data": {"source":"a","sensor":"b","ts":1e9,"values":{"x_c":1}}, "id": "\xd9\xa1-0"}',
    json.dumps({"data": {**GOOD, "values": {f"m{i}_c": i for i in range(100)}}}).encode(),
    b"x" * (1024 * 1024),
]


@pytest.mark.slow
def test_real_worker_survives_garbage(stack) -> None:
    """Garbage on the real channel: the workers keep serving; good readings then arrive."""
    publisher = redis.Redis.from_url(stack.redis_url)
    with SSEStream(stack.url, "/stream?source=fuzz-src") as stream:
        assert stream.connect().status == 200
        stream.read_until("retry:")
        try:
            # Both workers' hubs and the recorder (it records stock publishes too).
            _wait_for_subscribers(stack.url, publisher, 3)
            for _ in range(3):
                for data in GARBAGE:
                    publisher.publish("readings", data)
            # Stock publishes are fire-and-forget: repeat until this worker's
            # hub (started by our request, maybe still subscribing) hears one.
            got, deadline = "", time.monotonic() + 15
            while not got and time.monotonic() < deadline:
                good = {**GOOD, "ts": time.time()}
                publisher.publish("readings", json.dumps({"data": good, "type": "reading"}))
                with contextlib.suppress(TimeoutError):
                    got = stream.read_until('"sensor":"after"', timeout=1)
        finally:
            publisher.close()
        assert '"sensor":"after"' in got
    for _ in range(4):  # both workers still answer
        try:
            urllib.request.urlopen(f"{stack.url}/readyz", timeout=5).close()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"/readyz {exc.code}: {exc.read().decode()}") from None
    log = (stack.stack.log_dir / "web.log").read_text(errors="replace")
    assert log.count("dropped a message") >= len(GARBAGE)
    assert "Traceback" not in log


def _wait_for_subscribers(base_url: str, client: redis.Redis, count: int) -> None:
    """Poke /readyz (it starts a worker's hub) until `count` hubs are subscribed."""

    def subscribed() -> bool:
        with contextlib.suppress(urllib.error.HTTPError):  # 503 until subscribed
            urllib.request.urlopen(f"{base_url}/readyz", timeout=5).close()
        return client.pubsub_numsub("readings")[0][1] >= count

    wait_for(subscribed, 15, "the web workers to subscribe")
