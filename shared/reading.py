"""The reading: one sample of one sensor (docs/architecture.md, "Wire format")."""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
METRIC_MAX = 64
METRIC_RE = re.compile(rf"[a-z][a-z0-9_]{{0,{METRIC_MAX - 1}}}")
MAX_METRICS = 64
# A reading with 64 metrics of long names is about 6 KB; anything far past
# that on the wire is garbage or an attack, refused before json.loads.
MAX_MESSAGE_BYTES = 16384


@dataclass(frozen=True, slots=True)
class Unit:
    """How a person reads a unit: symbol after a value, fraction digits, chart caption."""

    symbol: str
    digits: int
    label: str


# Metric name suffix (without "_") -> Unit, in the order the dashboard sorts
# them (temperatures first). The one unit table: /api/sensors serves it to
# the browser (docs/architecture.md, "Data path").
UNITS: dict[str, Unit] = {
    "c": Unit("°C", 1, "Temperature"),
    "f": Unit("°F", 1, "Temperature"),
    "k": Unit("K", 1, "Temperature"),
    "pct": Unit("%", 1, "Percent"),
    "hpa": Unit("hPa", 1, "Pressure"),
    "pa": Unit("Pa", 0, "Pressure"),
    "rpm": Unit("rpm", 0, "Fan speed"),
    "w": Unit("W", 1, "Power"),
    "mw": Unit("mW", 0, "Power"),
    "v": Unit("V", 3, "Voltage"),
    "mv": Unit("mV", 0, "Voltage"),
    "a": Unit("A", 2, "Current"),
    "ma": Unit("mA", 0, "Current"),
    "hz": Unit("Hz", 0, "Frequency"),
    "mhz": Unit("MHz", 0, "Frequency"),
    "bool": Unit("", 0, "State"),
    "count": Unit("", 0, "Count"),
    "s": Unit("s", 1, "Duration"),
    "ms": Unit("ms", 0, "Duration"),
    "bytes": Unit("B", 0, "Bytes"),
    "lux": Unit("lx", 0, "Illuminance"),
    "ppm": Unit("ppm", 0, "Concentration"),
    "ppb": Unit("ppb", 0, "Concentration"),
    "db": Unit("dB", 1, "Level"),
    "j": Unit("J", 1, "Energy"),
    "kwh": Unit("kWh", 2, "Energy"),
    "m": Unit("m", 2, "Distance"),
    "mm": Unit("mm", 0, "Distance"),
    "ugm3": Unit("µg/m³", 0, "Particulates"),
    "idx": Unit("", 0, "Index"),
}
UNIT_SUFFIXES = tuple(f"_{suffix}" for suffix in UNITS)
_KEYS = frozenset({"source", "sensor", "ts", "seq", "values"})
MIN_TS = 946684800.0  # 2000-01-01: earlier means the clock was never set
MAX_TS = 4102444800.0  # 2100-01-01
MAX_SEQ = 2**63 - 1  # SQLite's INTEGER and Redis's tonumber stop here


class ReadingError(ValueError):
    """A reading that breaks the wire format; the message says which field."""


_BY_LENGTH = tuple(sorted(UNIT_SUFFIXES, key=len, reverse=True))


@functools.lru_cache(maxsize=4096)
def unit_of(metric: str) -> str:
    """The unit suffix of a metric name, without the underscore."""
    # Longest first: "_mw" must not be read as "_w". Cached: every reading
    # on every boundary asks again for the same few names (bounded: names
    # can come from anyone who can publish).
    for suffix in _BY_LENGTH:
        if metric.endswith(suffix):
            return suffix[1:]
    return ""


def check_name(what: str, value: object) -> str:
    """A source or sensor name, or ReadingError naming the field."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ReadingError(f"{what} must be 1-64 characters of [A-Za-z0-9._-]")
    return value


def _check_number(what: str, value: object) -> float:
    # bool is an int in Python; a JSON true is not a measurement.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReadingError(f"{what} must be a number")
    try:
        # float() of a JSON integer with hundreds of digits overflows.
        number = float(value)
    except OverflowError:
        raise ReadingError(f"{what} must be finite") from None
    if not math.isfinite(number):
        raise ReadingError(f"{what} must be finite")
    return number


def _check_values(values: object) -> dict[str, float]:
    if not isinstance(values, dict) or not values:
        raise ReadingError("values must be a non-empty object")
    if len(values) > MAX_METRICS:
        raise ReadingError(f"values has more than {MAX_METRICS} metrics")
    checked: dict[str, float] = {}
    for name, value in values.items():
        # The common case in one test: a finite float under a known-good name.
        if (
            type(value) is float
            and type(name) is str
            and len(name) <= 64
            and math.isfinite(value)
            and not _metric_problem(name)
        ):
            checked[name] = value
            continue
        # Length first: only short names reach the cache, so hostile input
        # cannot make it hold megabytes.
        if not isinstance(name, str) or len(name) > 64:
            raise ReadingError(f"metric name {name!r:.80} must match [a-z][a-z0-9_]{{0,63}}")
        problem = _metric_problem(name)
        if problem:
            raise ReadingError(problem)
        checked[name] = _check_number(f"values.{name}", value)
    return checked


@functools.lru_cache(maxsize=4096)
def _metric_problem(name: str) -> str:
    """Why a metric name is refused, or "" (cached: the same names come every second)."""
    if not METRIC_RE.fullmatch(name):
        return f"metric name {name!r:.80} must match [a-z][a-z0-9_]{{0,63}}"
    if not unit_of(name):
        return f"metric {name} must end in a unit suffix such as _c or _pct"
    return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One sample of one sensor: who measured what, when, in which order."""

    source: str
    sensor: str
    ts: float
    values: dict[str, float] = field(hash=False)
    seq: int | None = None

    def __post_init__(self) -> None:
        check_name("source", self.source)
        check_name("sensor", self.sensor)
        ts = _check_number("ts", self.ts)
        if not MIN_TS <= ts <= MAX_TS:
            raise ReadingError("ts must be Unix seconds between 2000 and 2100")
        object.__setattr__(self, "ts", ts)
        if self.seq is not None and (
            isinstance(self.seq, bool)
            or not isinstance(self.seq, int)
            or not 0 <= self.seq <= MAX_SEQ
        ):
            raise ReadingError("seq must be an integer from 0 to 2**63-1")
        object.__setattr__(self, "values", _check_values(self.values))

    @classmethod
    def from_dict(cls, obj: object) -> Reading:
        """Validate a decoded JSON object; unknown keys are refused."""
        if not isinstance(obj, dict):
            raise ReadingError("a reading must be a JSON object")
        extra = set(obj) - _KEYS
        if extra:
            raise ReadingError(f"unknown key {sorted(map(str, extra))[0]!r:.80}")
        missing = {"source", "sensor", "ts", "values"} - set(obj)
        if missing:
            raise ReadingError(f"missing key {sorted(missing)[0]!r}")
        return cls(
            source=obj["source"],
            sensor=obj["sensor"],
            ts=obj["ts"],
            values=obj["values"],
            seq=obj.get("seq"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Reading:
        """Parse and validate one reading from JSON text."""
        if len(text) > MAX_MESSAGE_BYTES:
            raise ReadingError(f"reading is larger than {MAX_MESSAGE_BYTES} bytes")
        try:
            if isinstance(text, bytes):  # as json.loads does it
                text = text.decode(json.detect_encoding(text), "surrogatepass")
            obj = _DECODER.decode(text)
        except (ValueError, RecursionError) as exc:
            raise ReadingError(f"not JSON: {exc}") from None
        return cls.from_dict(obj)

    def to_dict(self) -> dict[str, Any]:
        """The wire object; `seq` only when known."""
        out: dict[str, Any] = {"source": self.source, "sensor": self.sensor, "ts": self.ts}
        if self.seq is not None:
            out["seq"] = self.seq
        out["values"] = dict(self.values)
        return out

    def to_json(self) -> str:
        """Compact JSON; NaN can never be written."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @property
    def key(self) -> tuple[str, str]:
        """The (source, sensor) pair that `seq` counts within."""
        return (self.source, self.sensor)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for every reading: json.loads with an argument builds a new one
# per call, a fifth of the recorder's time per reading.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
