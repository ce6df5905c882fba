"""What a user chose for each sensor: display name, hidden, order, units, decimals.

Stored in the history database, table `sensor_settings` (one JSON body per
source/sensor, so a new field needs no schema change). The web writes this one
table (a PUT is a person editing a name: rare, short, serialised with the
recorder's batches by SQLite's lock); everything else in that file stays the
recorder's. Readers: the web (cards, charts, /display, CSV) and the recorder
(names in alert messages, via `display_name`).
"""

from __future__ import annotations

import json
import sqlite3
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

MAX_NAME_CHARS = 64
MAX_ORDER = 10_000
MAX_DECIMALS = 6


@dataclass(frozen=True, slots=True)
class Conversion:
    """How a value stored in a metric's own unit is shown: value * scale + offset."""

    symbol: str
    scale: float
    offset: float
    decimals: int


# Metric unit suffix -> the units a user may choose for it (the first is the stored one).
CONVERSIONS: dict[str, dict[str, Conversion]] = {
    "c": {
        "c": Conversion("°C", 1.0, 0.0, 1),
        "f": Conversion("°F", 1.8, 32.0, 1),
    },
    "hpa": {
        "hpa": Conversion("hPa", 1.0, 0.0, 1),
        # 1 inHg = 33.8639 hPa, 1 mmHg = 1.333224 hPa
        "inhg": Conversion("inHg", 1 / 33.8639, 0.0, 2),
        "mmhg": Conversion("mmHg", 1 / 1.333224, 0.0, 0),
    },
}
# The setting that picks each suffix's unit, and what a form calls it.
UNIT_FIELDS = {"c": "temperature_unit", "hpa": "pressure_unit"}
UNIT_LABELS = {"temperature_unit": "Temperature in", "pressure_unit": "Pressure in"}


def unit_choices() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """For a form: (field, label, [(value, symbol), ...]) per unit setting."""
    return [
        (field, UNIT_LABELS[field], [(v, c.symbol) for v, c in CONVERSIONS[suffix].items()])
        for suffix, field in UNIT_FIELDS.items()
    ]


class InvalidSettings(ValueError):
    """A settings body that cannot be stored; the message names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorSettings:
    """One sensor's choices; the defaults are what a sensor nobody edited shows."""

    name: str | None = None
    hidden: bool = False
    order: int = 0
    temperature_unit: str = "c"
    pressure_unit: str = "hpa"
    decimals: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of GET/PUT."""
        return asdict(self)

    def conversion(self, metric: str) -> Conversion | None:
        """How this sensor shows `metric`, or None when its unit has no choices."""
        suffix = metric.rsplit("_", 1)[-1]
        choices = CONVERSIONS.get(suffix)
        if choices is None or "_" not in metric:
            return None
        chosen = choices[getattr(self, UNIT_FIELDS[suffix])]
        return chosen if self.decimals is None else replace(chosen, decimals=self.decimals)


DEFAULT = SensorSettings()


def parse(body: object) -> SensorSettings:
    """Validate a PUT body (a JSON object; absent fields take their defaults)."""
    if not isinstance(body, dict):
        raise InvalidSettings("the body must be a JSON object")
    unknown = sorted(set(body) - set(DEFAULT.to_dict()))
    if unknown:
        raise InvalidSettings(f"unknown field {unknown[0]!r}")
    return SensorSettings(
        name=_name(body.get("name")),
        hidden=_flag(body, "hidden"),
        order=_order(body.get("order", 0)),
        temperature_unit=_choice(body, "temperature_unit", "c"),
        pressure_unit=_choice(body, "pressure_unit", "hpa"),
        decimals=_decimals(body.get("decimals")),
    )


def _name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidSettings("name: must be a string or null")
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_NAME_CHARS:
        raise InvalidSettings(f"name: at most {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(c).startswith("C") for c in text):
        raise InvalidSettings("name: no control or invisible format characters")
    return text


def _flag(body: Mapping[str, object], field: str) -> bool:
    value = body.get(field, False)
    if not isinstance(value, bool):
        raise InvalidSettings(f"{field}: must be true or false")
    return value


def _order(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSettings("order: must be an integer")
    if not -MAX_ORDER <= value <= MAX_ORDER:
        raise InvalidSettings(f"order: must be within -{MAX_ORDER}..{MAX_ORDER}")
    return value


def _choice(body: Mapping[str, object], field: str, default: str) -> str:
    value = body.get(field, default)
    suffix = next(s for s, f in UNIT_FIELDS.items() if f == field)
    if value not in CONVERSIONS[suffix]:
        raise InvalidSettings(f"{field}: must be one of {', '.join(CONVERSIONS[suffix])}")
    return str(value)


def _decimals(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DECIMALS:
        raise InvalidSettings(f"decimals: must be null or an integer 0..{MAX_DECIMALS}")
    return value


# The table's DDL, in one place until the history schema's migration list takes it.
DDL = (
    "CREATE TABLE IF NOT EXISTS sensor_settings ("
    " source TEXT NOT NULL, sensor TEXT NOT NULL, body TEXT NOT NULL, updated REAL NOT NULL,"
    " PRIMARY KEY (source, sensor)) WITHOUT ROWID"
)


def ensure_table(conn: sqlite3.Connection) -> None:
    """Create the table if this database has none yet."""
    conn.execute(DDL)


def load_all(conn: sqlite3.Connection) -> dict[tuple[str, str], SensorSettings]:
    """Every sensor's stored settings (none when the table does not exist yet)."""
    try:
        rows = conn.execute("SELECT source, sensor, body FROM sensor_settings").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    out = {}
    for source, sensor, body in rows:
        try:
            out[(source, sensor)] = parse(json.loads(body))
        except (ValueError, InvalidSettings):
            # A row written by a newer version: show the sensor with defaults.
            out[(source, sensor)] = DEFAULT
    return out


def load(conn: sqlite3.Connection, source: str, sensor: str) -> SensorSettings:
    """One sensor's settings, or the defaults."""
    return load_all(conn).get((source, sensor), DEFAULT)


def save(conn: sqlite3.Connection, source: str, sensor: str, settings: SensorSettings) -> None:
    """Store one sensor's settings (replacing what it had), in one transaction."""
    body = json.dumps(settings.to_dict(), separators=(",", ":"), ensure_ascii=False)
    with conn:
        ensure_table(conn)
        conn.execute(
            "INSERT INTO sensor_settings VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " body = excluded.body, updated = excluded.updated",
            (source, sensor, body, time.time()),
        )


Chosen = Mapping[tuple[str, str], SensorSettings]


def display_name(settings: Chosen, source: str, sensor: str) -> str:
    """What people call a sensor: its chosen name, else "sensor on source" (alert messages)."""
    chosen = settings.get((source, sensor), DEFAULT).name
    return chosen or f"{sensor} on {source}"
