"""Every hwmon chip under SYSFS_ROOT/class/hwmon, read in exact sysfs units."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from producers.drivers.base import Driver, SensorError
from shared.reading import MAX_METRICS
from shared.settings import Settings

logger = logging.getLogger(__name__)


class Kind(NamedTuple):
    """How one sysfs channel type maps to a metric."""

    suffix: str  # unit suffix of the metric name
    divisor: int  # sysfs unit -> metric unit (a division keeps 9800000 uW exactly 9.8 W)
    low: float  # physically possible range, in the metric unit
    high: float


# Sysfs units (Documentation/hwmon/sysfs-interface.rst): millidegrees,
# RPM, microwatts, millivolts, milliamperes, Hz. Listed by priority: when a
# chip has more channels than a reading may carry, the first kinds are kept.
KINDS: dict[str, Kind] = {
    "temp": Kind("_c", 1000, -50.0, 150.0),
    "power": Kind("_w", 1_000_000, 0.0, 2000.0),
    "fan": Kind("_rpm", 1, 0.0, 20000.0),
    "freq": Kind("_hz", 1, 0.0, 10e9),
    "in": Kind("_v", 1000, -60.0, 60.0),
    "curr": Kind("_a", 1000, -500.0, 500.0),
}
# power*_average is what amdgpu reports as PPT; newer kernels only have _input.
_CHANNEL_RE = re.compile(r"(temp|power|fan|freq|in|curr)(\d+)_(input|average)")
_PREFERRED_ITEM = {"input": 1, "average": 0}


@dataclass(frozen=True, slots=True)
class Channel:
    """One readable value: its metric name, file, kind and chip."""

    metric: str
    path: Path
    kind: str
    chip: str


def sanitize(text: str) -> str:
    """Lower-case `text` with every run of other characters turned into one `_`."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def metric_name(chip: str, label: str, suffix: str, taken: set[str]) -> str:
    """`k10temp` + `Tctl` + `_c` -> `k10temp_tctl_c`, unique within `taken`."""
    base = sanitize(f"{chip}_{label}") or "hwmon"
    if not base[0].isalpha():
        base = f"hw_{base}"
    base = base[: 64 - len(suffix) - 3]  # room for a `_NN` de-duplication counter
    name, n = f"{base}{suffix}", 2
    while name in taken:
        name, n = f"{base}_{n}{suffix}", n + 1
    taken.add(name)
    return name


def _natural(path: Path) -> tuple[str, int]:
    """Sort key so hwmon10 comes after hwmon9."""
    match = re.fullmatch(r"(\D*)(\d+)", path.name)
    return (match.group(1), int(match.group(2))) if match else (path.name, -1)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def chip_files(chip_dir: Path) -> dict[tuple[str, str], Path]:
    """(kind, index) -> the value file of each channel of one chip."""
    chosen: dict[tuple[str, str], Path] = {}
    try:
        names = sorted(p.name for p in chip_dir.iterdir())
    except OSError:
        return {}  # the chip went away while we listed it
    for name in names:
        match = _CHANNEL_RE.fullmatch(name)
        if not match:
            continue
        kind, index, item = match.groups()
        old = chosen.get((kind, index))
        if old is None or _PREFERRED_ITEM[item] < _PREFERRED_ITEM[old.name.split("_")[-1]]:
            chosen[(kind, index)] = chip_dir / name
    return chosen


def discover(sysfs_root: Path) -> list[Channel]:
    """Every channel of every chip, named `<chip>_<label><unit>`, in a stable order."""
    channels: list[Channel] = []
    taken: set[str] = set()
    for chip_dir in sorted((sysfs_root / "class" / "hwmon").glob("hwmon*"), key=_natural):
        chip = _read_text(chip_dir / "name")
        if not chip:
            logger.debug("hwmon: %s has no readable name, skipped", chip_dir)
            continue
        files = chip_files(chip_dir)
        for (kind, index), path in sorted(files.items(), key=lambda kv: int(kv[0][1])):
            label = _read_text(chip_dir / f"{kind}{index}_label") or f"{kind}{index}"
            name = metric_name(chip, label, KINDS[kind].suffix, taken)
            channels.append(Channel(name, path, kind, chip))
    order = list(KINDS)
    return sorted(channels, key=lambda c: order.index(c.kind))


def read_channel(channel: Channel) -> float:
    """The channel's value in the metric's unit; OSError or ValueError if unreadable."""
    text = channel.path.read_text()
    if not text.strip():
        raise ValueError("empty read")
    return int(text) / KINDS[channel.kind].divisor


class HwmonDriver(Driver):
    """Temperatures, fans, power, voltages, currents of every hwmon chip."""

    name = "hwmon"

    def __init__(self, sysfs_root: Path) -> None:
        self.sysfs_root = sysfs_root
        self._failing: dict[str, str] = {}  # metric -> reason, logged on the first failure
        self._warned_overflow = False

    @classmethod
    def from_settings(cls, settings: Settings) -> HwmonDriver:
        """Chips under SYSFS_ROOT (a container mounts the host's /sys elsewhere)."""
        return cls(settings.sysfs_root)

    @property
    def _class_dir(self) -> Path:
        return self.sysfs_root / "class" / "hwmon"

    def probe(self) -> None:
        """SensorError unless at least one hwmon channel exists."""
        channels = discover(self.sysfs_root)
        if not channels:
            raise SensorError(
                f"no hwmon sensors under {self._class_dir}"
                " (in a container, mount the host's /sys and set SYSFS_ROOT)"
            )
        chips = sorted({c.chip for c in channels})
        logger.info("hwmon: %d channel(s) on %s", len(channels), ", ".join(chips))

    def read(self) -> dict[str, float]:
        """One value per readable channel; SensorError only if none is readable."""
        # Discovered each tick: chips come and go (amdgpu runtime PM, USB, hotplug).
        channels = discover(self.sysfs_root)
        values: dict[str, float] = {}
        for channel in channels:
            value = self._value(channel)
            if value is not None:
                values[channel.metric] = value
        if not values:
            reasons = sorted(set(self._failing.values()))
            detail = f": {reasons[0]}" if reasons else ""
            raise SensorError(f"no readable hwmon sensor under {self._class_dir}{detail}")
        return self._capped(values)

    def _value(self, channel: Channel) -> float | None:
        """The value, or None (logged once per failure streak) if unreadable or impossible."""
        kind = KINDS[channel.kind]
        try:
            value = read_channel(channel)
        except FileNotFoundError:
            return self._skip(channel, f"{channel.path} vanished while being read")
        except OSError as exc:  # ENODATA, EIO, EAGAIN: the chip has no value now
            return self._skip(channel, f"cannot read {channel.path}: {exc.strerror}")
        except ValueError:
            return self._skip(channel, f"{channel.path} gave an empty or garbled read")
        if not (math.isfinite(value) and kind.low <= value <= kind.high):
            reason = f"{channel.metric}={value:g} is outside {kind.low:g}..{kind.high:g}, dropped"
            return self._skip(channel, reason)
        if self._failing.pop(channel.metric, None) is not None:
            logger.info("hwmon: %s readable again", channel.metric)
        return value

    def _skip(self, channel: Channel, reason: str) -> None:
        if self._failing.get(channel.metric) != reason:
            logger.warning("hwmon: skipping %s: %s", channel.metric, reason)
        self._failing[channel.metric] = reason

    def _capped(self, values: dict[str, float]) -> dict[str, float]:
        """At most MAX_METRICS values (a reading carries no more), the first kinds first."""
        if len(values) <= MAX_METRICS:
            return values
        if not self._warned_overflow:
            dropped = ", ".join(list(values)[MAX_METRICS:])
            logger.warning("hwmon: more than %d metrics, dropping %s", MAX_METRICS, dropped)
            self._warned_overflow = True
        return dict(list(values.items())[:MAX_METRICS])
