"""Drivers by name; `SENSORS` picks them (a comma list, or `auto`)."""

from __future__ import annotations

import importlib
import logging

from producers.drivers.base import Driver, SensorError
from shared.settings import Settings

logger = logging.getLogger(__name__)

# name -> "module:Class"; imported only when chosen, so a server without
# smbus2 can still run hwmon, and a Pi need not install psutil.
REGISTRY: dict[str, str] = {
    "demo": "producers.drivers.demo:DemoDriver",
    "pi_cpu": "producers.drivers.pi_cpu:PiCpuDriver",
    "hwmon": "producers.drivers.hwmon:HwmonDriver",
    "bme280": "producers.drivers.bme280:Bme280Driver",
}
# `auto` probes these; demo is never chosen by auto.
AUTO_ORDER = ("bme280", "pi_cpu", "hwmon")

__all__ = ["REGISTRY", "Driver", "SensorError", "driver_class", "names_for"]


def driver_class(name: str) -> type[Driver]:
    """The class registered under `name`; SensorError names the valid ones."""
    if name not in REGISTRY:
        valid = ", ".join([*REGISTRY, "auto"])
        raise SensorError(f"unknown sensor {name!r}: choose from {valid}")
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def names_for(settings: Settings) -> list[str]:
    """Expand `auto` into the probe order, keep the rest in the order given."""
    names: list[str] = []
    for name in settings.sensors:
        for chosen in AUTO_ORDER if name == "auto" else (name,):
            if chosen not in names:
                names.append(chosen)
    return names
