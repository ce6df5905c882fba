"""The MQTT decoders on payloads shaped as each firmware's documentation shows them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devtools.stack import ROOT
from producers.mqtt.broker import RECONNECT_MAX, RECONNECT_MIN
from producers.mqtt.decoders import (
    MAX_FIELDS,
    MAX_PAYLOAD_BYTES,
    MAX_SKEW,
    REASONS,
    Context,
    Route,
    decode,
    default_routes,
    metric_name,
    parse_routes,
    safe_name,
)
from producers.mqtt.units import SUFFIX_OF_SYMBOL, UNITS, ha_unit
from shared.reading import UNIT_SUFFIXES
from shared.reading import UNITS as READING_UNITS

NOW = datetime(2026, 11, 27, 18, 0, 0, tzinfo=UTC).timestamp()
TASMOTA = Route("tasmota", "tele/+/SENSOR")
ZIGBEE = Route("zigbee2mqtt", "zigbee2mqtt/#")
ESPHOME_CONFIG = Route("esphome", "homeassistant/sensor/+/+/config")
ESPHOME_STATE = Route("esphome", "+/sensor/+/state")
READINGS = Route("readings", "sensor-display/readings")

# Tasmota's BME280 page: one sensor object, units named beside it.
TASMOTA_BME280 = (
    b'{"Time":"2026-11-27T18:00:00","BME280":{"Temperature":24.1,"Humidity":36.7,'
    b'"DewPoint":8.3,"Pressure":1013.5},"PressureUnit":"hPa","TempUnit":"C"}'
)
# Two sensors and TempUnit F (SetOption8 1), as the DS18x20 and AM2301 pages show.
TASMOTA_TWO = (
    b'{"Time":"2026-11-27T18:00:00","DS18B20":{"Id":"01144A0CB2AA","Temperature":72.1},'
    b'"AM2301":{"Temperature":70.5,"Humidity":51.7,"DewPoint":52.3},"TempUnit":"F"}'
)
# A power-monitoring plug (ENERGY), with fields that have no unit of ours.
TASMOTA_ENERGY = (
    b'{"Time":"2026-11-27T18:00:00","ENERGY":{"TotalStartTime":"2026-01-01T10:38:33",'
    b'"Total":12.345,"Yesterday":0.456,"Today":0.123,"Period":0,"Power":42,'
    b'"ApparentPower":50,"ReactivePower":27,"Factor":0.84,"Voltage":230,"Current":0.217}}'
)
# Zigbee2MQTT's page for the Aqara WSDCGQ11LM.
ZIGBEE_AQARA = (
    b'{"battery":100,"humidity":58.84,"linkquality":47,"pressure":1008.45,'
    b'"temperature":23.17,"voltage":3005}'
)
# ESPHome's discovery config (abbreviated keys) and its plain state.
ESPHOME_TEMP_CONFIG = json.dumps(
    {
        "dev_cla": "temperature",
        "unit_of_meas": "°C",
        "stat_cla": "measurement",
        "name": "Living Room Temperature",
        "stat_t": "livingroom/sensor/living_room_temperature/state",
        "avty_t": "livingroom/status",
        "uniq_id": "ESPsensorliving_room_temperature",
        "dev": {"ids": "a4cf12abcdef", "name": "livingroom", "sw": "2024.6.0"},
    }
).encode()


def ctx() -> Context:
    return Context(now=NOW, tz=UTC)


def test_tasmota_bme280() -> None:
    out = decode(TASMOTA, "tele/tasmota_C26D46/SENSOR", TASMOTA_BME280, ctx())
    assert out.errors == []
    assert out.unknown == []
    [reading] = out.readings
    assert (reading.source, reading.sensor, reading.ts) == ("tasmota_C26D46", "bme280", NOW)
    assert reading.values == {
        "temperature_c": 24.1,
        "humidity_pct": 36.7,
        "dew_point_c": 8.3,
        "pressure_hpa": 1013.5,
    }


def test_tasmota_two_sensors_in_fahrenheit() -> None:
    out = decode(TASMOTA, "tele/garage/SENSOR", TASMOTA_TWO, ctx())
    by_sensor = {r.sensor: r.values for r in out.readings}
    assert by_sensor == {
        "ds18b20": {"temperature_f": 72.1},
        "am2301": {"temperature_f": 70.5, "humidity_pct": 51.7, "dew_point_f": 52.3},
    }


def test_tasmota_energy_keeps_known_units_and_reports_the_rest() -> None:
    out = decode(TASMOTA, "tele/plug/SENSOR", TASMOTA_ENERGY, ctx())
    [reading] = out.readings
    assert reading.sensor == "energy"
    assert reading.values == {
        "energy_total_kwh": 12.345,
        "energy_yesterday_kwh": 0.456,
        "energy_today_kwh": 0.123,
        "power_w": 42.0,
        "voltage_v": 230.0,
        "current_a": 0.217,
    }
    assert sorted(out.unknown) == [
        "ENERGY.ApparentPower",
        "ENERGY.Factor",
        "ENERGY.Period",
        "ENERGY.ReactivePower",
    ]


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        ("2026-11-27T17:59:30", NOW - 30),  # local time (here UTC), a little behind
        ("2026-11-27T19:59:30+02:00", NOW - 30),  # SetOption52: with its offset
        ("1970-01-01T00:00:10", NOW),  # clock never set: time of arrival
        ("2026-11-27T13:00:00", NOW),  # another zone: hours off, time of arrival
        ("not a time", NOW),
    ],
)
def test_tasmota_time(time: str, expected: float) -> None:
    payload = json.dumps({"Time": time, "SHT3X": {"Temperature": 20.0}}).encode()
    [reading] = decode(TASMOTA, "tele/x/SENSOR", payload, ctx()).readings
    assert reading.ts == expected


def test_tasmota_pressure_in_mmhg_is_dropped_not_guessed() -> None:
    payload = b'{"BMP280":{"Temperature":20.0,"Pressure":760.0},"PressureUnit":"mmHg"}'
    out = decode(TASMOTA, "tele/x/SENSOR", payload, ctx())
    assert out.readings[0].values == {"temperature_c": 20.0}
    assert out.unknown == ["BMP280.Pressure"]


def test_zigbee2mqtt_device() -> None:
    out = decode(ZIGBEE, "zigbee2mqtt/Living Room/Climate", ZIGBEE_AQARA, ctx())
    [reading] = out.readings
    assert (reading.source, reading.sensor) == ("zigbee2mqtt", "Living_Room_Climate")
    assert reading.values == {
        "battery_pct": 100.0,
        "humidity_pct": 58.84,
        "pressure_hpa": 1008.45,
        "temperature_c": 23.17,
    }
    assert sorted(out.unknown) == ["linkquality", "voltage"]


def test_zigbee2mqtt_numbers_only() -> None:
    payload = b'{"occupancy":true,"illuminance_lux":17,"update":{"state":"idle"},"x":"y"}'
    [reading] = decode(ZIGBEE, "zigbee2mqtt/hall", payload, ctx()).readings
    assert reading.values == {"illuminance_lux": 17.0}


@pytest.mark.parametrize(
    "topic",
    [
        "zigbee2mqtt/bridge/state",
        "zigbee2mqtt/bridge/devices",
        "zigbee2mqtt/hall/set",
        "zigbee2mqtt/hall/set/state",
        "zigbee2mqtt/hall/get",
        "zigbee2mqtt/hall/availability",
    ],
)
def test_zigbee2mqtt_ignores_bridge_and_commands(topic: str) -> None:
    out = decode(ZIGBEE, topic, b'{"temperature": 20}', ctx())
    assert out.ignored
    assert out.readings == []
    assert out.errors == []


def test_esphome_state_takes_its_unit_from_the_discovery_config() -> None:
    context = ctx()
    config_topic = "homeassistant/sensor/livingroom/living_room_temperature/config"
    assert decode(ESPHOME_CONFIG, config_topic, ESPHOME_TEMP_CONFIG, context).ignored
    topic = "livingroom/sensor/living_room_temperature/state"
    [reading] = decode(ESPHOME_STATE, topic, b"21.50", context).readings
    assert (reading.source, reading.sensor) == ("livingroom", "esphome")
    assert reading.values == {"living_room_temperature_c": 21.5}
    # ESPHome publishes "nan" while a sensor has no value: dropped, said why.
    assert "not a number" in decode(ESPHOME_STATE, topic, b"nan", context).errors[0].text
    # An empty retained config removes the entity: its states are no longer understood.
    decode(ESPHOME_CONFIG, config_topic, b"", context)
    assert decode(ESPHOME_STATE, topic, b"21.5", context).unknown


def test_esphome_without_config_or_unit_is_dropped_as_unknown() -> None:
    context = ctx()
    out = decode(ESPHOME_STATE, "node1/sensor/wifi_signal/state", b"-61", context)
    assert out.readings == []
    assert out.unknown == ["node1/sensor/wifi_signal (no config)"]
    config = b'{"unit_of_meas":"dBm","stat_t":"node1/sensor/wifi_signal/state"}'
    decode(ESPHOME_CONFIG, "homeassistant/sensor/node1/wifi_signal/config", config, context)
    out = decode(ESPHOME_STATE, "node1/sensor/wifi_signal/state", b"-61", context)
    assert out.unknown == ["node1/wifi_signal [dBm]"]


def test_esphome_base_topic_and_our_own_configs() -> None:
    context = ctx()
    config = b'{"~":"attic","unit_of_measurement":"%","state_topic":"~/sensor/hum/state"}'
    decode(ESPHOME_CONFIG, "homeassistant/sensor/attic/hum/config", config, context)
    [reading] = decode(ESPHOME_STATE, "attic/sensor/hum/state", b"40", context).readings
    assert reading.values == {"hum_pct": 40.0}
    ours = b'{"unit_of_measurement":"%","state_topic":"sensor-display/pi/bme280/state"}'
    decode(ESPHOME_CONFIG, "homeassistant/sensor/pi_bme280/humidity_pct/config", ours, context)
    assert "sensor-display/pi/bme280/state" not in context.entities.by_state


def test_our_own_json_one_or_many() -> None:
    one = {"source": "esp32", "sensor": "sht31", "ts": NOW, "seq": 7, "values": {"t_c": 1.5}}
    out = decode(READINGS, "sensor-display/readings", json.dumps(one).encode(), ctx())
    [reading] = out.readings
    assert reading.seq == 7
    many = [one, {**one, "seq": 8}, {**one, "values": {"t": 1}}]
    out = decode(READINGS, "sensor-display/readings", json.dumps(many).encode(), ctx())
    assert [r.seq for r in out.readings] == [7, 8]
    assert [e.text for e in out.errors] == [
        "reading 2: metric t must end in a unit suffix such as _c or _pct"
    ]


HOSTILE = [
    pytest.param(
        TASMOTA, "tele/x/SENSOR", b"\x00\xffnot json", "not JSON", "not_json", id="not-json"
    ),
    pytest.param(TASMOTA, "tele/x/SENSOR", b"[" * 100_000, "larger than", "too_large", id="huge"),
    pytest.param(
        ZIGBEE, "zigbee2mqtt/x", b"[" * 60_000 + b"]" * 60_000, "", "too_large", id="deep-huge"
    ),
    pytest.param(
        ZIGBEE, "zigbee2mqtt/x", b"[" * 30_000 + b"]" * 30_000, "not JSON", "not_json", id="deep"
    ),
    pytest.param(ZIGBEE, "zigbee2mqtt/x", b'{"temperature": NaN}', "NaN", "not_json", id="nan"),
    pytest.param(
        TASMOTA, "tele/x/SENSOR", b'{"A":{"Temperature":Infinity}}', "Inf", "not_json", id="inf"
    ),
    pytest.param(
        ZIGBEE, "zigbee2mqtt/x", b'"just a string"', "JSON object", "wrong_shape", id="not-object"
    ),
    pytest.param(
        ZIGBEE, "zigbee2mqtt/\u2603\u2603", b'{"temperature":1}', "usable", "bad_name", id="name"
    ),
    pytest.param(
        TASMOTA, "tele/\u0000/SENSOR", b'{"A":{"Temperature":1}}', "usable", "bad_name", id="ctl"
    ),
    pytest.param(
        ZIGBEE,
        "zigbee2mqtt/x",
        json.dumps({f"f{i}": i for i in range(10_000)}, separators=(",", ":")).encode(),
        "larger than",
        "too_large",
        id="10000-fields",
    ),
    pytest.param(
        ZIGBEE,
        "zigbee2mqtt/x",
        json.dumps({f"f{i}": i for i in range(1_000)}, separators=(",", ":")).encode(),
        "more than",
        "too_many_fields",
        id="1000-fields",
    ),
    pytest.param(
        TASMOTA,
        "tele/x/SENSOR",
        json.dumps({f"S{i}": {"Temperature": 1} for i in range(MAX_FIELDS)}).encode(),
        "more than",
        "too_many_fields",
        id="many-sensors",
    ),
    pytest.param(
        READINGS,
        "sensor-display/readings",
        b"[1]",
        "reading 0",
        "invalid_reading",
        id="bad-reading",
    ),
    pytest.param(
        READINGS,
        "sensor-display/readings",
        b"[" + b"{}," * 1000 + b"{}]",
        "more than",
        "too_many_fields",
    ),
]


@pytest.mark.parametrize(("route", "topic", "payload", "why", "reason"), HOSTILE)
def test_hostile_payloads_are_refused_with_a_reason(
    route: Route, topic: str, payload: bytes, why: str, reason: str
) -> None:
    out = decode(route, topic, payload, ctx())
    assert out.readings == []
    assert out.errors, "a refused message must say why"
    assert why in out.errors[0].text
    assert out.errors[0].reason == reason  # the label /metrics counts it under
    assert reason in REASONS


def test_names_are_made_safe_and_metric_names_carry_the_unit() -> None:
    assert safe_name("Living Room / Sofa") == "Living_Room_Sofa"
    assert safe_name("x" * 100) == "x" * 64
    assert metric_name("DewPoint", "c") == "dew_point_c"
    assert metric_name("cpu_temp_c", "c") == "cpu_temp_c"
    assert metric_name("2nd sensor", "pct") == "m_2nd_sensor_pct"
    assert len(metric_name("a" * 200, "ugm3")) == 64


def test_mqtt_topics_override() -> None:
    routes = parse_routes("tasmota=home/tele/+/SENSOR, zigbee2mqtt=z2m/#")
    assert routes == (Route("tasmota", "home/tele/+/SENSOR"), Route("zigbee2mqtt", "z2m/#"))
    [reading] = decode(routes[1], "z2m/kitchen", b'{"temperature": 20}', ctx()).readings
    assert (reading.source, reading.sensor) == ("z2m", "kitchen")
    for bad in ["tele/+/SENSOR", "nosuch=a/b", "tasmota=a/#/b", "tasmota=a+/b", ""]:
        with pytest.raises(ValueError, match="MQTT_TOPICS"):
            parse_routes(bad)
    firmwares = {r.firmware for r in default_routes()}
    assert firmwares == {"tasmota", "zigbee2mqtt", "esphome", "readings"}


def test_one_unit_table_for_every_suffix_both_ways() -> None:
    assert set(UNITS) == {s[1:] for s in UNIT_SUFFIXES}
    for symbol, suffix in SUFFIX_OF_SYMBOL.items():
        assert UNITS[suffix].symbol in (symbol, None) or symbol not in {
            u.symbol for u in UNITS.values()
        }
    assert ha_unit("humidity_pct").device_class == "humidity"
    assert ha_unit("cpu_load_pct").device_class is None
    assert ha_unit("fan2_rpm").symbol == "rpm"
    assert ha_unit("tctl_c").device_class == "temperature"


def test_docs_state_the_limits_the_code_has() -> None:
    docs = (ROOT / "docs" / "mqtt.md").read_text()
    assert f"larger than {MAX_PAYLOAD_BYTES // 1024} KiB" in docs
    assert f"more than {MAX_FIELDS} fields" in docs
    assert f"within {MAX_SKEW / 60:g} minutes" in docs
    assert f"({RECONNECT_MIN} s doubling to {RECONNECT_MAX} s)" in docs


def test_unit_symbols_agree_with_the_dashboards() -> None:
    """The dashboard (the table /api/sensors serves) and Home Assistant show one symbol."""
    shown = {suffix: unit.symbol for suffix, unit in READING_UNITS.items()}
    assert shown.keys() == UNITS.keys()
    assert {s: UNITS[s].symbol or "" for s in UNITS} == shown
