"""Pure decoders: one MQTT message of a firmware becomes readings (docs/mqtt.md).

Each firmware is a function and a table of the fields it knows. A field
with no known unit is reported in `Decoded.unknown`, never guessed; a
message (or a sensor of it) that cannot be read is reported in
`Decoded.errors` as a `Refusal`: a reason from `REASONS`, counted in
/metrics, and a sentence for the log.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import NamedTuple

from producers.mqtt.units import SUFFIX_OF_SYMBOL
from shared.reading import Reading, ReadingError, unit_of

# Tasmota and Zigbee2MQTT messages are a few KB; far more is garbage or an attack.
MAX_PAYLOAD_BYTES = 65536
# Fields looked at in one message (all sensors of a Tasmota together).
MAX_FIELDS = 256
# Readings in one message of our own JSON.
MAX_READINGS = 1000
# A device clock further than this from ours is wrong (unset, another zone):
# the time of arrival is used instead.
MAX_SKEW = 300.0
# Discovery configs remembered (ESPHome entities); beyond this, new ones are refused.
MAX_ENTITIES = 10_000
# Our own topics: readings in, Home Assistant states out.
OUR_ROOT = "sensor-display"


# Why a message or part of one was refused: the label of its /metrics counter.
REASONS = (
    "too_large",
    "not_json",
    "wrong_shape",
    "too_many_fields",
    "bad_name",
    "not_a_number",
    "invalid_reading",
    "too_many_entities",
    "bad_topic",
)


class DecodeError(ValueError):
    """A message that cannot be read; `reason` is one of REASONS, the text says why."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason


class Refusal(NamedTuple):
    """A message or one of its sensors refused: the reason (REASONS) and a sentence."""

    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class Route:
    """A subscription and the firmware whose messages arrive on it."""

    firmware: str
    filter: str

    @property
    def base(self) -> str:
        """The filter's fixed prefix ("zigbee2mqtt" for "zigbee2mqtt/#")."""
        return self.filter.removesuffix("#").removesuffix("/")


@dataclass(frozen=True, slots=True)
class Entity:
    """An ESPHome sensor, as its discovery config describes it."""

    state_topic: str
    node: str
    metric: str | None  # None when its unit is not one we know
    label: str  # what the logs call it: "<object> [<unit>]"


@dataclass
class Decoded:
    """What one message gave: readings, fields dropped for want of a unit, errors."""

    readings: list[Reading] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    errors: list[Refusal] = field(default_factory=list)
    ignored: bool = False


@dataclass
class Context:
    """What decoding may depend on besides the message: the time and ESPHome's configs."""

    now: float
    tz: tzinfo | None = None  # the zone of device clocks without an offset; None: ours
    entities: Entities = field(default_factory=lambda: Entities())


class Entities:
    """ESPHome entities by config topic and by state topic, bounded."""

    def __init__(self) -> None:
        self.by_config: dict[str, Entity] = {}
        self.by_state: dict[str, Entity] = {}

    def learn(self, config_topic: str, entity: Entity | None) -> None:
        """Remember (or, with None, forget) the entity a config topic describes."""
        old = self.by_config.pop(config_topic, None)
        if old is not None:
            self.by_state.pop(old.state_topic, None)
        if entity is None:
            return
        if len(self.by_config) >= MAX_ENTITIES:
            raise DecodeError("too_many_entities", f"more than {MAX_ENTITIES} discovery configs")
        self.by_config[config_topic] = entity
        self.by_state[entity.state_topic] = entity


def load_json(payload: bytes) -> object:
    """Parse a JSON payload; DecodeError if too large, not JSON, or holding NaN."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError("too_large", f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        return json.loads(payload, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise DecodeError("not_json", f"payload is not JSON: {str(exc)[:80]}") from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A device or friendly name made fit for a source or sensor name."""
    name = _UNSAFE.sub("_", text).strip("_")[:64].strip("_")
    if not name:
        raise DecodeError("bad_name", f"name {text[:40]!r} has no usable character")
    return name


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_METRIC = re.compile(r"[^a-z0-9]+")


def metric_name(text: str, suffix: str) -> str:
    """A firmware's field name with our unit suffix: ("DewPoint", "c") -> "dew_point_c"."""
    base = _NOT_METRIC.sub("_", _CAMEL.sub("_", text[:64]).lower()).strip("_")
    if not base or not base[0].isalpha():
        base = f"m_{base}".rstrip("_")
    if unit_of(base) == suffix and base.endswith("_" + suffix):
        base = base[: -len(suffix) - 1]  # "cpu_temp_c" already says its unit
    return f"{base[: 63 - len(suffix)].rstrip('_')}_{suffix}"


def _number(value: object) -> float | None:
    """A JSON number as a finite float, or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _device_ts(raw: object, ctx: Context) -> float:
    """A device's ISO time as Unix seconds, or the time of arrival if it is unusable."""
    if not isinstance(raw, str) or len(raw) > 40:
        return ctx.now
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return ctx.now
    if when.tzinfo is None:
        when = when.replace(tzinfo=ctx.tz) if ctx.tz else when.astimezone()
    ts = when.timestamp()
    return ts if abs(ts - ctx.now) <= MAX_SKEW else ctx.now


def _reading(source: str, sensor: str, ts: float, values: dict[str, float], out: Decoded) -> None:
    if not values:
        return
    try:
        out.readings.append(Reading(source=source, sensor=sensor, ts=ts, values=values))
    except ReadingError as exc:
        out.errors.append(Refusal("invalid_reading", f"{source}/{sensor}: {exc}"))


# Tasmota field -> (metric base, suffix); "@temp" and "@pressure" take the
# unit the message itself names (TempUnit, PressureUnit).
TASMOTA_FIELDS: dict[str, tuple[str, str]] = {
    "Temperature": ("temperature", "@temp"),
    "DewPoint": ("dew_point", "@temp"),
    "Humidity": ("humidity", "pct"),
    "Pressure": ("pressure", "@pressure"),
    "SeaPressure": ("sea_pressure", "@pressure"),
    "Illuminance": ("illuminance", "lux"),
    "CarbonDioxide": ("co2", "ppm"),
    "eCO2": ("eco2", "ppm"),
    "TVOC": ("tvoc", "ppb"),
    "Power": ("power", "w"),
    "Voltage": ("voltage", "v"),
    "Current": ("current", "a"),
    "Frequency": ("frequency", "hz"),
    "Total": ("energy_total", "kwh"),
    "Today": ("energy_today", "kwh"),
    "Yesterday": ("energy_yesterday", "kwh"),
    "PM2.5": ("pm2_5", "ugm3"),
    "PM10": ("pm10", "ugm3"),
    "PM1": ("pm1", "ugm3"),
}
TASMOTA_TEMP_UNITS = {"C": "c", "F": "f", "K": "k"}
# mmHg and inHg (SetOption24 and friends) have no suffix of ours: dropped.
TASMOTA_PRESSURE_UNITS = {"hPa": "hpa"}


def decode_tasmota(route: Route, topic: str, payload: bytes, ctx: Context) -> Decoded:
    """`tele/<device>/SENSOR`: each object-valued key is a sensor of source <device>."""
    levels = topic.split("/")
    if len(levels) < 2 or levels[-1] != "SENSOR":
        return Decoded(ignored=True)
    source = safe_name(levels[-2])
    obj = load_json(payload)
    if not isinstance(obj, dict):
        raise DecodeError("wrong_shape", "a Tasmota SENSOR message must be a JSON object")
    sensors = [(key, fields) for key, fields in obj.items() if isinstance(fields, dict)]
    if len(obj) + sum(len(fields) for _, fields in sensors) > MAX_FIELDS:
        raise DecodeError("too_many_fields", f"more than {MAX_FIELDS} fields")
    units = {
        "@temp": TASMOTA_TEMP_UNITS.get(str(obj.get("TempUnit", "C"))),
        "@pressure": TASMOTA_PRESSURE_UNITS.get(str(obj.get("PressureUnit", "hPa"))),
    }
    ts, out = _device_ts(obj.get("Time"), ctx), Decoded()
    for key, fields in sensors:
        values = {}
        for name, value in fields.items():
            number = _number(value)
            if number is None:
                continue  # Ids, switch states, arrays: not a measurement
            base, suffix = TASMOTA_FIELDS.get(name, ("", None))
            suffix = units.get(suffix, suffix) if suffix else None
            if suffix is None:
                out.unknown.append(f"{key[:64]}.{name[:64]}")
                continue
            values[metric_name(base, suffix)] = number
        try:
            _reading(source, safe_name(key).lower(), ts, values, out)
        except DecodeError as exc:
            out.errors.append(Refusal(exc.reason, str(exc)))
    return out


# Zigbee2MQTT property -> metric. `voltage` is left out on purpose: battery
# devices report millivolts and plugs volts under the same name.
ZIGBEE_FIELDS: dict[str, str] = {
    "temperature": "temperature_c",
    "device_temperature": "device_temperature_c",
    "local_temperature": "local_temperature_c",
    "humidity": "humidity_pct",
    "soil_moisture": "soil_moisture_pct",
    "pressure": "pressure_hpa",
    "battery": "battery_pct",
    "illuminance_lux": "illuminance_lux",
    "co2": "co2_ppm",
    "voc": "voc_ppb",
    "pm25": "pm25_ugm3",
    "power": "power_w",
    "current": "current_a",
    "energy": "energy_kwh",
}
# Topics below a device that are commands or status, not state.
ZIGBEE_IGNORED_LEVELS = frozenset({"set", "get", "availability"})


def decode_zigbee2mqtt(route: Route, topic: str, payload: bytes, ctx: Context) -> Decoded:
    """`zigbee2mqtt/<friendly name>`: numeric properties of one device."""
    prefix = route.base + "/" if route.base else ""
    name = topic.removeprefix(prefix)
    levels = name.split("/")
    if levels[0] in ("", "bridge") or ZIGBEE_IGNORED_LEVELS.intersection(levels[1:]):
        return Decoded(ignored=True)
    sensor = safe_name(name)
    obj = load_json(payload)
    if not isinstance(obj, dict):
        raise DecodeError("wrong_shape", "a Zigbee2MQTT device message must be a JSON object")
    if len(obj) > MAX_FIELDS:
        raise DecodeError("too_many_fields", f"more than {MAX_FIELDS} fields")
    out, values = Decoded(), {}
    for key, value in obj.items():
        number = _number(value)
        if number is None:
            continue  # occupancy, contact, update info: numbers only
        metric = ZIGBEE_FIELDS.get(key)
        if metric is None:
            out.unknown.append(key[:64])
            continue
        values[metric] = number
    last_seen = obj.get("last_seen")
    ts = _device_ts(last_seen, ctx) if isinstance(last_seen, str) else ctx.now
    _reading(safe_name(route.base or "zigbee2mqtt"), sensor, ts, values, out)
    return out


# Home Assistant's abbreviations that ESPHome uses in its discovery configs.
_ABBREVIATIONS = {
    "stat_t": "state_topic",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}


def decode_esphome(route: Route, topic: str, payload: bytes, ctx: Context) -> Decoded:
    """`<node>/sensor/<object>/state` (plain number) or its discovery config."""
    if topic.endswith("/config"):
        return _esphome_config(topic, payload, ctx)
    if topic.startswith(OUR_ROOT + "/"):
        return Decoded(ignored=True)  # our own Home Assistant states
    entity = ctx.entities.by_state.get(topic)
    if entity is None or entity.metric is None:
        label = entity.label if entity else f"{topic.removesuffix('/state')[:128]} (no config)"
        return Decoded(unknown=[label])
    text = payload[:64].decode("ascii", "replace").strip()
    try:
        value = float(text) if len(payload) <= 64 else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DecodeError("not_a_number", f"{entity.label}: state {text[:20]!r} is not a number")
    out = Decoded()
    _reading(entity.node, "esphome", ctx.now, {entity.metric: value}, out)
    return out


def _esphome_config(topic: str, payload: bytes, ctx: Context) -> Decoded:
    if not payload:  # an empty retained config: the entity was removed
        ctx.entities.learn(topic, None)
        return Decoded(ignored=True)
    obj = load_json(payload)
    if not isinstance(obj, dict):
        raise DecodeError("wrong_shape", "a discovery config must be a JSON object")
    config = _expand(obj)
    state_topic = config.get("state_topic")
    if not isinstance(state_topic, str) or not 0 < len(state_topic) <= 256:
        raise DecodeError("wrong_shape", "a discovery config needs a state_topic")
    if state_topic.startswith(OUR_ROOT + "/") or "value_template" in config:
        return Decoded(ignored=True)  # ours, or JSON states that are not ESPHome's
    object_id = topic.split("/")[-2] if topic.count("/") >= 2 else "value"
    node = safe_name(state_topic.split("/")[0])
    unit = config.get("unit_of_measurement")
    suffix = SUFFIX_OF_SYMBOL.get(unit) if isinstance(unit, str) else None
    metric = metric_name(object_id, suffix) if suffix else None
    label = f"{node}/{object_id[:64]} [{str(unit)[:16]}]"
    ctx.entities.learn(topic, Entity(state_topic, node, metric, label))
    return Decoded(ignored=True)


def _expand(config: dict[str, object]) -> dict[str, object]:
    """Full key names, and the "~" base topic substituted (Home Assistant's rules)."""
    out = {_ABBREVIATIONS.get(key, key): value for key, value in config.items()}
    base = out.get("~")
    if isinstance(base, str):
        for key, value in out.items():
            if key != "~" and isinstance(value, str):
                if value.startswith("~"):
                    out[key] = base + value[1:]
                elif value.endswith("~"):
                    out[key] = value[:-1] + base
    return out


def decode_readings(route: Route, topic: str, payload: bytes, ctx: Context) -> Decoded:
    """Our own wire format (docs/architecture.md): one reading or an array of them."""
    obj = load_json(payload)
    items = obj if isinstance(obj, list) else [obj]
    if len(items) > MAX_READINGS:
        raise DecodeError("too_many_fields", f"more than {MAX_READINGS} readings")
    out = Decoded()
    for i, item in enumerate(items):
        try:
            out.readings.append(Reading.from_dict(item))
        except ReadingError as exc:
            out.errors.append(Refusal("invalid_reading", f"reading {i}: {exc}"))
    return out


Decoder = Callable[[Route, str, bytes, Context], Decoded]
DECODERS: dict[str, Decoder] = {
    "tasmota": decode_tasmota,
    "zigbee2mqtt": decode_zigbee2mqtt,
    "esphome": decode_esphome,
    "readings": decode_readings,
}


def default_routes(discovery_prefix: str = "homeassistant") -> tuple[Route, ...]:
    """What the bridge subscribes to unless MQTT_TOPICS says otherwise."""
    return (
        Route("tasmota", "tele/+/SENSOR"),
        Route("zigbee2mqtt", "zigbee2mqtt/#"),
        # Configs first: retained, they arrive before the states they describe.
        Route("esphome", f"{discovery_prefix}/sensor/+/+/config"),
        Route("esphome", "+/sensor/+/state"),
        Route("readings", f"{OUR_ROOT}/readings"),
    )


def parse_routes(text: str) -> tuple[Route, ...]:
    """MQTT_TOPICS: comma-separated `firmware=filter`; ValueError naming a bad entry."""
    routes = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        firmware, sep, topic_filter = (part.strip() for part in entry.partition("="))
        if not sep or firmware not in DECODERS:
            raise ValueError(
                f"MQTT_TOPICS entry {entry!r} must be firmware=filter, firmware one of "
                + ", ".join(DECODERS)
            )
        if not _valid_filter(topic_filter):
            raise ValueError(f"MQTT_TOPICS entry {entry!r}: {topic_filter!r} is not a topic filter")
        routes.append(Route(firmware, topic_filter))
    if not routes:
        raise ValueError("MQTT_TOPICS names no subscription")
    return tuple(routes)


def _valid_filter(topic_filter: str) -> bool:
    levels = topic_filter.split("/")
    if not topic_filter or len(topic_filter.encode()) > 65535 or "\0" in topic_filter:
        return False
    return (
        all(level in ("+", "#") or ("+" not in level and "#" not in level) for level in levels)
        and "#" not in levels[:-1]
    )


def decode(route: Route, topic: str, payload: bytes, ctx: Context) -> Decoded:
    """Decode one message with its route's firmware; never raises for bad input."""
    try:
        return DECODERS[route.firmware](route, topic, payload, ctx)
    except DecodeError as exc:
        return Decoded(errors=[Refusal(exc.reason, str(exc))])
