"""Our unit suffixes as MQTT devices and Home Assistant spell them (one table, both ways)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.reading import unit_of


@dataclass(frozen=True, slots=True)
class Unit:
    """How Home Assistant shows one of our suffixes."""

    symbol: str | None  # unit_of_measurement; None for dimensionless values
    device_class: str | None = None  # the class every metric of this unit has


# suffix (without "_") -> Unit. Home Assistant's spelling of each unit, and
# the device class that fits every metric of that unit. Energy is left
# without a class: Home Assistant wants state_class total for it, and our
# configs say measurement. A test keeps the keys equal to UNIT_SUFFIXES.
UNITS: dict[str, Unit] = {
    "c": Unit("°C", "temperature"),
    "f": Unit("°F", "temperature"),
    "k": Unit("K", "temperature"),
    "pct": Unit("%"),
    "hpa": Unit("hPa", "pressure"),
    "pa": Unit("Pa", "pressure"),
    "rpm": Unit("rpm"),
    "w": Unit("W", "power"),
    "mw": Unit("mW", "power"),
    "v": Unit("V", "voltage"),
    "mv": Unit("mV", "voltage"),
    "a": Unit("A", "current"),
    "ma": Unit("mA", "current"),
    "hz": Unit("Hz", "frequency"),
    "mhz": Unit("MHz", "frequency"),
    "bool": Unit(None),
    "count": Unit(None),
    "s": Unit("s", "duration"),
    "ms": Unit("ms", "duration"),
    "bytes": Unit("B", "data_size"),
    "lux": Unit("lx", "illuminance"),
    "ppm": Unit("ppm"),
    "ppb": Unit("ppb"),
    "db": Unit("dB", "sound_pressure"),
    "j": Unit("J"),
    "kwh": Unit("kWh"),
    "m": Unit("m", "distance"),
    "mm": Unit("mm", "distance"),
    "ugm3": Unit("µg/m³"),
    "idx": Unit(None),
}

# Percentages and concentrations need the metric's name to pick a class:
# (name prefix, suffix) -> device class.
NAMED_CLASSES: dict[tuple[str, str], str] = {
    ("humidity", "pct"): "humidity",
    ("battery", "pct"): "battery",
    ("moisture", "pct"): "moisture",
    ("soil_moisture", "pct"): "moisture",
    ("co2", "ppm"): "carbon_dioxide",
    ("pm25", "ugm3"): "pm25",
    ("pm2_5", "ugm3"): "pm25",
    ("pm10", "ugm3"): "pm10",
    ("pm1", "ugm3"): "pm1",
}

# What devices write -> our suffix, derived from the table above (plus the
# spellings firmwares use besides Home Assistant's own).
SUFFIX_OF_SYMBOL: dict[str, str] = {
    u.symbol: suffix for suffix, u in UNITS.items() if u.symbol is not None
} | {"℃": "c", "℉": "f", "lux": "lux", "RPM": "rpm", "µg/m3": "ugm3", "μg/m³": "ugm3"}


def ha_unit(metric: str) -> Unit:
    """The unit and device class Home Assistant should show for one of our metrics."""
    suffix = unit_of(metric)
    unit = UNITS.get(suffix, Unit(None))
    if unit.device_class:
        return unit
    for (prefix, unit_suffix), device_class in NAMED_CLASSES.items():
        if suffix == unit_suffix and metric.startswith(prefix + "_"):
            return Unit(unit.symbol, device_class)
    return unit
