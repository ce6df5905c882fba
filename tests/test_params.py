"""Query parameters (web/params.py) and how the routes answer bad ones: 400 naming the parameter."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from web import params

NOW = 1763712000


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, None),
        ({"source": ""}, None),
        ({"source": "  "}, None),
        ({"source": "pi"}, frozenset({"pi"})),
        ({"source": "pi, x300 ,a.b-c_d"}, frozenset({"pi", "x300", "a.b-c_d"})),
    ],
)
def test_names_accepted(args: dict[str, str], expected: frozenset[str] | None) -> None:
    """Comma lists; spaces around commas are fine; empty means no filter."""
    assert params.names(args, "source") == expected


@pytest.mark.parametrize(
    "raw",
    ["a,,b", "a,", ",a", "<script>", "a b", "a\u00a0", "a\x1d", "é", "x" * 65, ",".join("a" * 33)],
)
def test_names_refused(raw: str) -> None:
    """Empty items, other whitespace, markup, long names, more than 32 names."""
    with pytest.raises(params.BadParameter, match="'source'"):
        params.names({"source": raw}, "source")


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1763712000", 1763712000.0),
        ("1763712000.125", 1763712000.125),
        ("2025-11-21", 1763683200.0),
        ("2025-11-21T08:00:00", 1763712000.0),
        ("2025-11-21T08:00:00Z", 1763712000.0),
        ("2025-11-21T10:00:00+02:00", 1763712000.0),
        ("2025-11-21 08:00:00.5", 1763712000.5),
    ],
)
def test_times_accepted(raw: str, value: float) -> None:
    """Unix seconds or ISO 8601; naive is UTC."""
    assert params.timestamp({"t": raw}, "t", 0.0) == value


@pytest.mark.parametrize(
    "raw",
    [
        "nan",
        "inf",
        "1e9",
        "1_000",
        "-5",
        " 5",
        "²",
        "99999999999",
        "2025-13-45",
        "2025-W47-5",
        "0000-01-01",
        "9999-12-31T23:59:59",
        "yesterday",
        "2025-11-21T08:00:00+25:00",
    ],
)
def test_times_refused(raw: str) -> None:
    """Anything float() or fromisoformat() would stretch to, and out of range."""
    with pytest.raises(params.BadParameter, match="'t'"):
        params.timestamp({"t": raw}, "t", 0.0)


@pytest.mark.parametrize("raw", ["0", "10001", "-1", "+5", " 5", "1.0", "²", "١", "9" * 30, "0x10"])
def test_integers_refused(raw: str) -> None:
    """Only plain ASCII digits within the range."""
    with pytest.raises(params.BadParameter, match="'limit'"):
        params.integer({"limit": raw}, "limit", params.Bounds(1000, 1, 10_000))


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(["source", "t", "limit"]), st.text(max_size=80)))
def test_any_text_is_a_value_or_bad_parameter(args: dict[str, str]) -> None:
    """No other exception for any text in any parameter (a 500 otherwise)."""
    for parse in (
        lambda: params.names(args, "source"),
        lambda: params.timestamp(args, "t", 0.0),
        lambda: params.integer(args, "limit", params.Bounds(1, 1, 10_000)),
    ):
        with contextlib.suppress(params.BadParameter):
            parse()


def test_range_is_capped() -> None:
    """One request cannot scan more than max_span seconds."""
    with pytest.raises(params.BadParameter, match="at most 31 days"):
        params.time_range({"since": "0", "until": str(NOW)}, 3600, 31 * 86400)
    with pytest.raises(params.BadParameter, match="before until"):
        params.time_range({"since": str(NOW), "until": str(NOW)}, 3600, 31 * 86400)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("/api/readings?limit=10001", "limit"),
        ("/api/readings?since=1763712000&until=1763711000", "since"),
        ("/api/readings?source=a,,b", "source"),
        ("/api/series?source=pi&sensor=b&metric=t_c&points=5001", "points"),
        ("/api/series?source=pi&sensor=b&metric=t_c&since=1763712000&until=1", "since"),
        ("/api/series?source=%20pi&sensor=b&metric=t_c", "source"),
        ("/api/export.csv?until=1e9", "until"),
        ("/stream?source=%3Cscript%3E", "source"),
        ("/stream?sensor=a%0Ab", "sensor"),
        ("/stream?last_event_id=abc", "last_event_id"),
        ("/stream?last_event_id=%C2%B2-1", "last_event_id"),
        ("/stream?channel=other", "channel"),
        ("/stream?channel=readings:stream", "channel"),
        ("/stream?channel=", "channel"),
    ],
)
def test_routes_answer_400_naming_the_parameter(client, query: str, name: str) -> None:
    """Every route, /stream included, answers a bad parameter with 400 and JSON."""
    response = client.get(query)
    assert response.status_code == 400
    assert f"'{name}'" in response.get_json()["error"]


def test_stream_serves_only_its_channel(client) -> None:
    """?channel= naming the configured channel is accepted (stock flask-sse clients)."""
    with client.get("/stream?channel=readings") as response:
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"


def test_security_headers_on_every_kind_of_response(client) -> None:
    """CSP without inline script, nosniff, no referrer, no framing: page, API, errors."""
    for path in ["/", "/api/readings", "/api/readings?limit=x", "/nowhere", "/healthz"]:
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
