"""The HTTP API over a seeded database: shapes, filters, and 400s that name the parameter."""

from __future__ import annotations

import csv
import io
import time

import pytest

from shared import store
from shared.events import Event
from shared.reading import Reading

NOW = time.time()


@pytest.fixture
def seeded(app, settings):
    conn = store.connect(settings.database_path)
    events = [
        Event(
            f"{int((NOW - 600 + i) * 1000)}-0",
            Reading(
                source="pi",
                sensor=sensor,
                ts=NOW - 600 + i,
                seq=i,
                values={"temperature_c": 20 + i / 100, "humidity_pct": 40.0},
            ),
        )
        for i in range(600)
        for sensor in ("bme280",)
    ]
    events.append(
        Event(
            None,
            Reading(source="server", sensor="hwmon", ts=NOW - 5, values={"k10temp_tctl_c": 45.5}),
        )
    )
    store.insert_events(conn, events)
    conn.close()
    return app


def test_sensors_lists_metrics_units_and_last_values(client, seeded) -> None:
    body = client.get("/api/sensors").get_json()
    by_key = {(s["source"], s["sensor"]): s for s in body["sensors"]}
    pi = by_key[("pi", "bme280")]
    assert pi["metrics"]["temperature_c"] == {"last": pytest.approx(25.99), "unit": "c"}
    assert pi["metrics"]["humidity_pct"]["unit"] == "pct"
    assert pi["last_seen"] == pytest.approx(NOW - 1)
    assert pi["last_error"] is None
    assert by_key[("server", "hwmon")]["metrics"]["k10temp_tctl_c"]["last"] == 45.5


def test_sensors_serves_the_unit_table_the_dashboard_formats_with(client, seeded) -> None:
    from shared.reading import UNIT_SUFFIXES

    units = client.get("/api/sensors").get_json()["units"]
    assert list(units)[:3] == ["c", "f", "k"]  # display order: temperatures first
    assert units["c"] == {"symbol": "°C", "digits": 1, "label": "Temperature"}
    assert {f"_{u}" for u in units} == set(UNIT_SUFFIXES)


def test_sensor_errors_reported_by_producers_show(client, seeded, redis_client) -> None:
    from shared.bus import Bus

    Bus(redis_client).report_error("pi", "bme280", "no device answers at 0x76", NOW)
    [pi] = [s for s in client.get("/api/sensors").get_json()["sensors"] if s["source"] == "pi"]
    assert pi["last_error"] == "no device answers at 0x76"


def test_readings_oldest_first_with_limit(client, seeded) -> None:
    body = client.get(f"/api/readings?sensor=bme280&since={NOW - 100}&limit=3").get_json()
    seqs = [r["seq"] for r in body["readings"]]
    assert seqs == [500, 501, 502]
    assert set(body["readings"][0]) == {"source", "sensor", "ts", "seq", "values"}


def test_readings_accept_iso_times(client, seeded) -> None:
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 60))
    body = client.get(f"/api/readings?source=pi&since={since}").get_json()
    assert 55 <= len(body["readings"]) <= 61


def test_a_valid_name_that_matches_nothing_is_empty(client, seeded) -> None:
    assert client.get("/api/readings?source=nobody").get_json() == {"readings": [], "next": None}
    body = client.get("/api/series?source=nobody&sensor=x&metric=t_c").get_json()
    assert body["buckets"] == []


def test_series_is_downsampled(client, seeded) -> None:
    body = client.get(
        f"/api/series?source=pi&sensor=bme280&metric=temperature_c"
        f"&since={NOW - 600}&until={NOW}&points=10"
    ).get_json()
    assert (body["source"], body["sensor"], body["metric"]) == ("pi", "bme280", "temperature_c")
    assert len(body["buckets"]) == 10
    first = body["buckets"][0]
    assert set(first) == {"t", "min", "avg", "max", "n"}
    assert first["n"] == 60
    assert first["min"] <= first["avg"] <= first["max"]


def test_export_csv(client, seeded) -> None:
    response = client.get(f"/api/export.csv?source=pi&since={NOW - 10}")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {r["metric"] for r in rows} == {"temperature_c", "humidity_pct"}
    assert rows[0]["source"] == "pi"


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/readings?since=yesterday", "since"),
        ("/api/readings?until=2026-13-45", "until"),
        ("/api/readings?limit=-1", "limit"),
        ("/api/readings?limit=100000", "limit"),
        ("/api/readings?limit=ten", "limit"),
        ("/api/readings?source=bad%20name", "source"),
        ("/api/readings?sensor=%3Cscript%3E", "sensor"),
        ("/api/readings?since=100&until=50", "since"),
        ("/api/readings?cursor=yesterday", "cursor"),
        ("/api/export.csv?tier=5m", "tier"),
        ("/api/series?sensor=bme280&metric=temperature_c", "source"),
        ("/api/series?source=pi&metric=temperature_c", "sensor"),
        ("/api/series?source=pi&sensor=bme280", "metric"),
        ("/api/series?source=pi&sensor=bme280&metric=Temp", "metric"),
        ("/api/series?source=pi&sensor=bme280&metric=t_c&points=0", "points"),
        ("/api/series?source=pi&sensor=bme280&metric=t_c&since=nan", "since"),
        ("/api/export.csv?limit=0", "limit"),
        ("/stream?source=a,b%20c", "source"),
        ("/stream?last_event_id=abc", "last_event_id"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    client, seeded, url: str, parameter: str
) -> None:
    response = client.get(url)
    assert response.status_code == 400
    assert parameter in response.get_json()["error"]


def test_unknown_route_is_json_404(client) -> None:
    response = client.get("/api/nothing")
    assert response.status_code == 404
    assert "error" in response.get_json()


def test_pages_carry_strict_security_headers(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert b"data-metric" in response.data or b"<template" in response.data


def test_healthz(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readings_page_through_any_range_with_the_cursor(client, seeded) -> None:
    whole = client.get("/api/readings?since=0&limit=10000").get_json()
    assert whole["next"] is None
    assert len(whole["readings"]) == 601
    pages, cursor = [], ""
    while True:
        body = client.get(f"/api/readings?since=0&limit=250{cursor}").get_json()
        pages.append(body["readings"])
        if body["next"] is None:
            break
        cursor = f"&cursor={body['next']}"
    assert [len(p) for p in pages] == [250, 250, 101]
    assert [r for p in pages for r in p] == whole["readings"]


def test_export_streams_every_page_of_any_range(client, seeded, monkeypatch) -> None:
    from web import api

    monkeypatch.setattr(api, "EXPORT_PAGE", 7)  # many pages, each its own read
    response = client.get("/api/export.csv?since=0")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 600 * 2 + 1
    assert [float(r["ts"]) for r in rows] == sorted(float(r["ts"]) for r in rows)
    limited = client.get("/api/export.csv?since=0&limit=10").get_data(as_text=True)
    assert len(limited.splitlines()) == 1 + 10 * 2


@pytest.mark.parametrize(("tier", "width"), [("1m", 60), ("1h", 3600)])
def test_export_of_a_rollup_tier(client, seeded, tier: str, width: int) -> None:
    response = client.get(f"/api/export.csv?source=pi&since=0&tier={tier}")
    assert f"readings-{tier}.csv" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert set(rows[0]) == {"t", "time_utc", "source", "sensor", "metric", "min", "avg", "max", "n"}
    temperature = [r for r in rows if r["metric"] == "temperature_c"]
    assert sum(int(r["n"]) for r in temperature) == 600
    assert all(float(r["t"]) % width == 0 for r in rows)
    assert all(float(r["min"]) <= float(r["avg"]) <= float(r["max"]) for r in rows)


@pytest.mark.parametrize(("version", "says"), [(0, "the recorder upgrades it"), (99, "newer")])
def test_a_schema_version_web_does_not_know_is_503(client, seeded, settings, version, says) -> None:
    conn = store.connect(settings.database_path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()
    for url in ("/api/readings", "/api/series?source=pi&sensor=bme280&metric=temperature_c"):
        response = client.get(url)
        assert response.status_code == 503
        assert says in response.get_json()["error"]
