"""Fuzz the reading's validation (shared/reading.py): a Reading or ReadingError, nothing else.

Input counts per test are the `max_examples` below; docs/security.md quotes them.
Run with `--hypothesis-show-statistics` to see how the outcomes split.
"""

from __future__ import annotations

import json
import math
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shared.reading import (
    MAX_MESSAGE_BYTES,
    MAX_METRICS,
    UNIT_SUFFIXES,
    Reading,
    ReadingError,
)

# serial: thousands of inputs against the 120 s timeout; alone, not beside heavy tests.
pytestmark = pytest.mark.serial

# Shared cores in CI: no per-example deadline, and big inputs are the point.
_BASE = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz(examples: int) -> settings:
    """Settings for one fuzz test: `examples` inputs, no deadline."""
    return settings(_BASE, max_examples=examples)


# Alphabets instead of from_regex: the same sets, generated several times faster.
NAME_CHARS = string.ascii_letters + string.digits + "._-"
names = st.text(NAME_CHARS, min_size=1, max_size=64)
metric_names = st.builds(
    lambda first, rest, suffix: first + rest + suffix,
    st.sampled_from(string.ascii_lowercase),
    st.text(string.ascii_lowercase + string.digits + "_", max_size=40),
    st.sampled_from(UNIT_SUFFIXES),
)
finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
timestamps = st.floats(min_value=946684800.0, max_value=4102444800.0)
seqs = st.none() | st.integers(0, 2**63 - 1)


@st.composite
def valid_dicts(draw: st.DrawFn, max_metrics: int = MAX_METRICS) -> dict[str, Any]:
    """A reading that the wire format allows, as a decoded JSON object."""
    out: dict[str, Any] = {
        "source": draw(names),
        "sensor": draw(names),
        "ts": draw(timestamps),
        "values": draw(st.dictionaries(metric_names, finite, min_size=1, max_size=max_metrics)),
    }
    seq = draw(seqs)
    if seq is not None:
        out["seq"] = seq
    return out


# Any JSON value, hostile ones first: huge integers, NaN, Infinity, deep nesting, unicode.
hostile_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(10**300, 10**400)
    | st.floats()
    | st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324])
    | st.text(max_size=80)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
)
json_values = st.recursive(
    hostile_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ("source", "sensor", "ts", "seq", "values")


@st.composite
def mutated_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid reading with one to three fields replaced, dropped, added or renamed."""
    obj = draw(valid_dicts(max_metrics=6))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "drop", "add", "metric"]))
        if action == "replace":
            obj[draw(st.sampled_from(FIELDS))] = draw(json_values)
        elif action == "drop":
            obj.pop(draw(st.sampled_from(FIELDS)), None)
        elif action == "add":
            obj[draw(st.text(max_size=20))] = draw(json_values)
        elif isinstance(obj.get("values"), dict):
            obj["values"][draw(st.text(max_size=70))] = draw(json_values)
    return obj


def _outcome(text: str | bytes) -> Reading | None:
    """Parse; a ReadingError is an outcome, any other exception fails the test."""
    try:
        reading = Reading.from_json(text)
    except ReadingError as exc:
        event(f"rejected: {_reason(exc)}")
        return None
    event("accepted")
    return reading


def _reason(exc: ReadingError) -> str:
    """A short label of why, for hypothesis's statistics."""
    return str(exc).split("'")[0].split(":")[0].split(" must")[0].strip()[:32]


@fuzz(2000)
@given(valid_dicts())
def test_valid_readings_round_trip(obj: dict[str, Any]) -> None:
    """Every reading the format allows is accepted and survives to_json/from_json."""
    reading = Reading.from_json(json.dumps(obj))
    again = Reading.from_json(reading.to_json())
    assert again == reading
    assert again.to_dict() == reading.to_dict()
    assert set(reading.values) == set(obj["values"])


@fuzz(4000)
@given(mutated_dicts())
def test_mutated_readings(obj: dict[str, Any]) -> None:
    """Mutated fields: accepted only if still valid, and then it round-trips."""
    text = json.dumps(obj, allow_nan=True)  # NaN/Infinity literals on purpose
    reading = _outcome(text)
    if reading is not None:
        assert Reading.from_json(reading.to_json()) == reading
        assert all(math.isfinite(v) for v in reading.values.values())


@fuzz(4000)
@given(st.binary(max_size=2048))
def test_raw_bytes(data: bytes) -> None:
    """Arbitrary bytes (invalid UTF-8, UTF-16 BOMs, NULs) never raise anything else."""
    _outcome(data)


@fuzz(3000)
@given(st.text(max_size=512) | st.text('[]{}",:0123456789.eE+-aNIfinity', max_size=300))
def test_raw_text(text: str) -> None:
    """Arbitrary text, and JSON-ish punctuation soup."""
    _outcome(text)


@fuzz(300)
@given(st.integers(1, 50_000), st.sampled_from(["[", '{"a":', '[{"values":']))
def test_deep_nesting(depth: int, opener: str) -> None:
    """Nesting that would blow the parser's stack is a ReadingError, not RecursionError."""
    closer = {"[": "]", '{"a":': "}", '[{"values":': "}]"}[opener]
    _outcome(opener * depth + "1" + closer * depth)


@fuzz(300)
@given(valid_dicts(), st.integers(0, 4 * MAX_MESSAGE_BYTES), st.sampled_from([" ", "é", "😀"]))
def test_oversized(obj: dict[str, Any], pad: int, char: str) -> None:
    """A reading padded past MAX_MESSAGE_BYTES is refused before it is decoded."""
    text = json.dumps(obj) + char * pad
    reading = _outcome(text)
    if len(text) > MAX_MESSAGE_BYTES:
        assert reading is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"source":"a","sensor":"b","ts":1e9,"values":{"x_c":NaN}}', "not JSON"),
        ('{"source":"a","sensor":"b","ts":1e9,"values":{"x_c":-Infinity}}', "not JSON"),
        ('{"source":"a","sensor":"b","ts":1e9,"values":{"x_c":1e999}}', "finite"),
        ('{"source":"a","sensor":"b","ts":1e9,"values":{"x_c":' + "9" * 400 + "}}", "finite"),
        ('{"source":"a","sensor":"b","ts":' + "9" * 400 + ',"values":{"x_c":1}}', "finite"),
        ('{"source":"a","sensor":"b","ts":1e9,"seq":' + "9" * 30 + ',"values":{"x_c":1}}', "seq"),
        ('{"source":"a","sensor":"b","ts":1e9,"seq":-1,"values":{"x_c":1}}', "seq"),
        ('{"source":"a","sensor":"b","ts":1e9,"seq":true,"values":{"x_c":1}}', "seq"),
        ('{"source":"a","sensor":"b","ts":1e9,"values":{"x_c":true}}', "number"),
        ('{"source":"a","sensor":"b","ts":1e9,"values":{"x":1}}', "unit suffix"),
        ('{"source":"a","sensor":"b","ts":1e9,"values":{"X_c":1}}', "metric name"),
        ('{"source":"<img>","sensor":"b","ts":1e9,"values":{"x_c":1}}', "source"),
        ('{"source":"a","sensor":"b\\u0000","ts":1e9,"values":{"x_c":1}}', "sensor"),
        ('{"source":"a","sensor":"b","ts":1e9,"values":{}}', "non-empty"),
        ('{"source":"a","sensor":"b","ts":1,"values":{"x_c":1}}', "between 2000"),
        ('{"source":"a","sensor":"b","ts":1e9,"values":{"x_c":1},"id":"1-0"}', "unknown key"),
        ('{"source":"a","sensor":"b","values":{"x_c":1}}', "missing key"),
        ("[]", "JSON object"),
        (b"\xff\xfe\x00", "not JSON"),
    ],
)
def test_rejections_name_the_field(text: str | bytes, reason: str) -> None:
    """Known-bad readings are refused with a message that says what is wrong."""
    with pytest.raises(ReadingError, match=reason):
        Reading.from_json(text)


def test_too_many_metrics() -> None:
    """65 metrics is one too many."""
    values = {f"m{i}_c": i for i in range(MAX_METRICS + 1)}
    obj = {"source": "a", "sensor": "b", "ts": 1e9, "values": values}
    with pytest.raises(ReadingError, match="more than 64"):
        Reading.from_json(json.dumps(obj))
