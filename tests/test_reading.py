"""The reading's wire format (docs/architecture.md): what is accepted, what is refused."""

from __future__ import annotations

import json

import pytest

from shared.reading import Reading, ReadingError, unit_of

TS = 1763712000.125
GOOD = {
    "source": "pi-livingroom",
    "sensor": "bme280",
    "ts": TS,
    "seq": 4211,
    "values": {"temperature_c": 21.53, "humidity_pct": 40.2, "pressure_hpa": 1013.25},
}


def with_(**changes: object) -> dict:
    out = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if value is ...:
            out.pop(key)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    "obj",
    [
        GOOD,
        with_(seq=...),
        with_(seq=0),
        with_(ts=1763712000),
        with_(source="a" * 64),
        with_(source="A.b_c-9"),
        with_(values={"fan2_rpm": 812}),
        with_(values={f"m{i}_c": float(i) for i in range(64)}),
        with_(values={"throttled_now_bool": 0}),
    ],
)
def test_valid_readings_round_trip(obj: dict) -> None:
    reading = Reading.from_dict(obj)
    assert Reading.from_json(reading.to_json()) == reading
    assert json.loads(reading.to_json())["values"] == {
        k: float(v) for k, v in obj["values"].items()
    }


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (with_(source=""), "source"),
        (with_(source="a" * 65), "source"),
        (with_(source="pi livingroom"), "source"),
        (with_(source="<script>"), "source"),
        (with_(source=5), "source"),
        (with_(sensor="bme/280"), "sensor"),
        (with_(sensor=...), "sensor"),
        (with_(ts="now"), "ts"),
        (with_(ts=True), "ts"),
        (with_(ts=12), "ts"),
        (with_(ts=1e12), "ts"),
        (with_(seq=-1), "seq"),
        (with_(seq=1.5), "seq"),
        (with_(seq="1"), "seq"),
        (with_(values={}), "values"),
        (with_(values=[1, 2]), "values"),
        (with_(values={"Temperature_c": 1}), "metric"),
        (with_(values={"temperature": 1}), "unit suffix"),
        (with_(values={"temp_c": "21"}), "values.temp_c"),
        (with_(values={"temp_c": None}), "values.temp_c"),
        (with_(values={"temp_c": True}), "values.temp_c"),
        (with_(values={f"m{i}_c": 1.0 for i in range(65)}), "more than 64"),
        (with_(extra=1), "unknown key"),
        ([GOOD], "JSON object"),
    ],
)
def test_invalid_readings_name_the_field(obj: object, field: str) -> None:
    with pytest.raises(ReadingError, match=field):
        Reading.from_dict(obj)


@pytest.mark.parametrize(
    "text",
    [
        '{"source":"a","sensor":"b","ts":1763712000,"values":{"t_c":NaN}}',
        '{"source":"a","sensor":"b","ts":1763712000,"values":{"t_c":Infinity}}',
        '{"source":"a","sensor":"b","ts":1763712000,"values":{"t_c":-Infinity}}',
        "not json",
        "",
        "[" * 100000,
        '{"source":"a","sensor":"b","ts":1763712000,"values":{"t_c":1}, "pad":"'
        + "x" * 20000
        + '"}',
    ],
)
def test_json_that_is_not_a_reading_is_refused(text: str) -> None:
    with pytest.raises(ReadingError):
        Reading.from_json(text)


def test_nan_can_never_be_written() -> None:
    with pytest.raises(ReadingError, match="finite"):
        Reading(source="a", sensor="b", ts=TS, values={"t_c": float("nan")})


@pytest.mark.parametrize(
    ("metric", "unit"),
    [
        ("temperature_c", "c"),
        ("humidity_pct", "pct"),
        ("power_mw", "mw"),
        ("cpu_mhz", "mhz"),
        ("in0_mv", "mv"),
        ("fan2_rpm", "rpm"),
        ("ppt_w", "w"),
        ("bogus", ""),
    ],
)
def test_unit_comes_from_the_suffix(metric: str, unit: str) -> None:
    assert unit_of(metric) == unit


@pytest.mark.parametrize("doc", ["docs/architecture.md", "docs/security.md"])
def test_the_docs_state_the_limits_the_code_enforces(doc: str) -> None:
    from pathlib import Path

    from shared.reading import MAX_MESSAGE_BYTES, MAX_METRICS, METRIC_RE, NAME_RE

    text = (Path(__file__).resolve().parent.parent / doc).read_text()
    assert NAME_RE.pattern in text
    assert METRIC_RE.pattern in text
    assert f"1-{MAX_METRICS} metrics" in text
    assert f"{MAX_MESSAGE_BYTES:,} bytes" in text
