"""The driver interface: a small class per kind of sensor, chosen by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from shared.settings import Settings


class SensorError(Exception):
    """A sensor could not be probed or read; the message is one clear sentence."""


class Driver(ABC):
    """One sensor. `probe()` once at start, `read()` every tick.

    `read()` returns metric name -> value, names with a unit suffix
    (docs/architecture.md, "Wire format"), and raises SensorError on failure; it never
    returns NaN or a physically impossible value.
    """

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Driver:
        """Build the driver with the handle (bus, path, module) the settings name."""

    def probe(self) -> None:  # noqa: B027 - optional for drivers with nothing to check
        """Check once that the sensor is there; raise SensorError if not."""

    @abstractmethod
    def read(self) -> dict[str, float]:
        """One sample: metric name -> finite value."""
