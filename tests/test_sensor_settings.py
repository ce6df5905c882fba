"""Sensor settings: validation, units, storage, and the HTTP API around them."""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from pathlib import Path

import pytest

from shared import sensor_settings, store
from shared.events import Event
from shared.reading import Reading
from shared.sensor_settings import InvalidSettings, SensorSettings, parse

URL = "/api/sensors/pi/bme280/settings"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"name": 5}, "name: must be a string or null"),
        ({"name": "x" * 65}, "name: at most 64 characters"),
        ({"name": "bad\u0000name"}, "name: no control"),
        ({"name": "right\u202eleft"}, "name: no control"),
        ({"hidden": "yes"}, "hidden: must be true or false"),
        ({"order": 1.5}, "order: must be an integer"),
        ({"order": True}, "order: must be an integer"),
        ({"order": 10_001}, "order: must be within"),
        ({"temperature_unit": "k"}, "temperature_unit: must be one of c, f"),
        ({"pressure_unit": "bar"}, "pressure_unit: must be one of hpa, inhg, mmhg"),
        ({"decimals": 7}, "decimals: must be null or an integer 0..6"),
        ({"decimals": -1}, "decimals: must be null or an integer 0..6"),
    ],
)
def test_bad_bodies_name_the_field(body, message) -> None:
    with pytest.raises(InvalidSettings, match=message.replace(".", r"\.")):
        parse(body)


def test_absent_fields_take_defaults_and_names_are_trimmed() -> None:
    chosen = parse({"name": "  Living room  ", "hidden": True})
    assert chosen == SensorSettings(name="Living room", hidden=True)
    assert parse({"name": "   "}).name is None


@pytest.mark.parametrize(
    ("settings", "metric", "stored", "shown", "symbol"),
    [
        ({"temperature_unit": "f"}, "temperature_c", 20.0, 68.0, "°F"),
        ({"temperature_unit": "f"}, "cpu_temp_c", -40.0, -40.0, "°F"),
        ({"pressure_unit": "inhg"}, "pressure_hpa", 1013.25, 29.92, "inHg"),
        ({"pressure_unit": "mmhg"}, "pressure_hpa", 1013.25, 760.0, "mmHg"),
        ({}, "temperature_c", 21.5, 21.5, "°C"),
    ],
)
def test_conversions(settings, metric, stored, shown, symbol) -> None:
    conversion = parse(settings).conversion(metric)
    assert conversion is not None
    assert stored * conversion.scale + conversion.offset == pytest.approx(shown, abs=0.01)
    assert conversion.symbol == symbol


def test_units_without_choices_have_no_conversion() -> None:
    assert parse({"temperature_unit": "f"}).conversion("fan_rpm") is None


def test_display_name_for_alert_messages(db) -> None:
    sensor_settings.save(db, "pi", "bme280", parse({"name": "Living room"}))
    chosen = sensor_settings.load_all(db)
    assert sensor_settings.display_name(chosen, "pi", "bme280") == "Living room"
    assert sensor_settings.display_name(chosen, "pi", "pi_cpu") == "pi_cpu on pi"


def test_a_database_without_the_table_has_defaults() -> None:
    conn = sqlite3.connect(":memory:")
    assert sensor_settings.load(conn, "pi", "bme280") == sensor_settings.DEFAULT


@pytest.fixture
def seeded(app, settings):
    conn = store.connect(settings.database_path)
    now = time.time()
    store.insert_events(
        conn,
        [
            Event(
                None,
                Reading(
                    source="pi",
                    sensor="bme280",
                    ts=now,
                    values={"temperature_c": 20.0, "pressure_hpa": 1013.25, "humidity_pct": 40.0},
                ),
            )
        ],
    )
    conn.close()
    return app


def test_get_put_get(client, seeded) -> None:
    assert client.get(URL).get_json() == {
        "source": "pi",
        "sensor": "bme280",
        **sensor_settings.DEFAULT.to_dict(),
    }
    body = {"name": "Living room", "temperature_unit": "f", "order": -1}
    answer = client.put(URL, json=body)
    assert answer.status_code == 200
    assert answer.get_json()["name"] == "Living room"
    again = client.get(URL).get_json()
    assert again["temperature_unit"] == "f"
    assert again["order"] == -1
    assert again["hidden"] is False


def test_api_sensors_carries_settings_and_display_units(client, seeded) -> None:
    client.put(URL, json={"name": "Living room", "temperature_unit": "f", "decimals": 2})
    (entry,) = client.get("/api/sensors").get_json()["sensors"]
    assert entry["settings"]["name"] == "Living room"
    assert entry["metrics"]["temperature_c"]["display"] == {
        "symbol": "°F",
        "scale": 1.8,
        "offset": 32.0,
        "decimals": 2,
    }
    assert entry["metrics"]["humidity_pct"]["display"] == {"decimals": 2}


@pytest.mark.parametrize(
    ("url", "body", "message"),
    [
        ("/api/sensors/pi/bme280/settings", {"order": "first"}, "order: must be an integer"),
        ("/api/sensors/p%20i/bme280/settings", {}, "parameter 'source'"),
        ("/api/sensors/pi/bme%24/settings", {}, "parameter 'sensor'"),
    ],
)
def test_bad_puts_are_400_naming_the_problem(client, seeded, url, body, message) -> None:
    answer = client.put(url, json=body)
    assert answer.status_code == 400
    assert message in answer.get_json()["error"]
    assert client.get(URL).get_json()["order"] == 0, "nothing was stored"


def test_a_body_that_is_not_json_is_400(client, seeded) -> None:
    answer = client.put(URL, data="name=x", content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 400
    assert "JSON" in answer.get_json()["error"]


def test_no_history_yet_is_503(client, settings) -> None:
    settings.database_path.unlink()
    answer = client.put(URL, json={"name": "x"})
    assert answer.status_code == 503
    assert "no history yet" in answer.get_json()["error"]


def test_csv_as_the_settings_show_it(client, seeded) -> None:
    client.put(URL, json={"name": "Living room", "temperature_unit": "f", "pressure_unit": "inhg"})
    text = client.get("/api/export.csv?source=pi&display=1").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    header = text.splitlines()[0].split(",")
    assert header == [
        "ts",
        "time_utc",
        "source",
        "sensor",
        "name",
        "seq",
        "metric",
        "value",
        "unit",
    ]
    by_metric = {row["metric"]: row for row in rows}
    assert by_metric["temperature_c"]["name"] == "Living room"
    assert float(by_metric["temperature_c"]["value"]) == pytest.approx(68.0)
    assert by_metric["temperature_c"]["unit"] == "°F"
    assert float(by_metric["pressure_hpa"]["value"]) == pytest.approx(29.92, abs=0.01)
    assert by_metric["humidity_pct"]["unit"] == "pct"
    # The plain export stays as stored, so it can be imported again.
    plain = client.get("/api/export.csv?source=pi").get_data(as_text=True)
    assert plain.splitlines()[0] == "ts,time_utc,source,sensor,seq,metric,value"
    assert ",temperature_c,20.0" in plain


def test_csv_leaves_hidden_sensors_out(client, seeded) -> None:
    client.put(URL, json={"hidden": True})
    text = client.get("/api/export.csv?display=1").get_data(as_text=True)
    assert text.splitlines()[1:] == []


def test_csv_display_flag_is_checked(client, seeded) -> None:
    answer = client.get("/api/export.csv?display=maybe")
    assert answer.status_code == 400
    assert "parameter 'display'" in answer.get_json()["error"]


def test_stored_units_show_the_dashboards_symbols() -> None:
    """A sensor nobody edited shows °C and hPa exactly as the dashboard's unit table does."""
    from shared.reading import UNITS

    shown = {suffix: unit.symbol for suffix, unit in UNITS.items()}
    for suffix, choices in sensor_settings.CONVERSIONS.items():
        stored = choices[suffix]
        assert (stored.symbol, stored.scale, stored.offset) == (shown[suffix], 1.0, 0.0)
    # The choices that are units of their own elsewhere agree too (°F is "_f").
    assert sensor_settings.CONVERSIONS["c"]["f"].symbol == shown["f"]


def test_docs_state_the_limits_the_code_has() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "display.md").read_text()
    assert f"1-{sensor_settings.MAX_NAME_CHARS} characters" in docs
    limit = sensor_settings.MAX_ORDER
    assert f"-{limit}..{limit}" in docs
    assert f"0..{sensor_settings.MAX_DECIMALS}" in docs
