"""The demo driver: realistic synthetic signals, so everything runs with no hardware.

A room (BME280-like: a daily temperature cycle, humidity that moves against
it, pressure drifting over hours) and a computer (CPU temperature following
bursts of load, a fan that follows the temperature, package power). Slow
mean-reverting drift plus small noise, never random jumps.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from producers.drivers.base import Driver
from shared.settings import Settings

DAY = 86400.0


class Drift:
    """A mean-reverting random walk (Ornstein-Uhlenbeck) with step `sigma`."""

    def __init__(self, rng: random.Random, sigma: float, pull: float = 0.01) -> None:
        self.rng, self.sigma, self.pull, self.value = rng, sigma, pull, 0.0

    def step(self) -> float:
        """Advance one tick and return the offset from the mean."""
        self.value += -self.pull * self.value + self.rng.gauss(0.0, self.sigma)
        return self.value


class DemoDriver(Driver):
    """Room climate and computer load, as a BME280 and hwmon would report them."""

    name = "demo"

    def __init__(self, seed: int | None = None, clock: Callable[[], float] = time.time) -> None:
        self.rng = random.Random(seed)
        self.clock = clock
        self.temp = Drift(self.rng, 0.02)
        self.pressure = Drift(self.rng, 0.05, pull=0.001)
        self.load = 0.15

    @classmethod
    def from_settings(cls, settings: Settings) -> DemoDriver:
        """No handle needed."""
        return cls()

    def read(self) -> dict[str, float]:
        """One sample of every synthetic metric."""
        now = self.clock()
        # Coolest at 05:00 and warmest at 17:00 local-ish time.
        day = math.sin(2 * math.pi * ((now % DAY) / DAY - 11 / 24))
        temperature = 21.0 + 1.8 * day + self.temp.step() + self.rng.gauss(0, 0.02)
        humidity = 45.0 - 6.0 * day - 1.5 * self.temp.value + self.rng.gauss(0, 0.15)
        pressure = 1013.25 + 2.0 * math.sin(2 * math.pi * now / (3 * DAY)) + self.pressure.step()
        cpu = self._cpu()
        return {
            "temperature_c": round(temperature, 2),
            "humidity_pct": round(min(max(humidity, 0.0), 100.0), 1),
            "pressure_hpa": round(pressure, 2),
            "cpu_temp_c": round(cpu, 1),
            "fan_rpm": float(round(600 + max(cpu - 40.0, 0.0) * 45 + self.rng.gauss(0, 8))),
            "package_power_w": round(6.0 + 55.0 * self.load + self.rng.gauss(0, 0.3), 2),
        }

    def _cpu(self) -> float:
        # Load comes in bursts: occasionally jump up, then decay back to idle.
        if self.rng.random() < 0.02:
            self.load = min(1.0, self.load + self.rng.uniform(0.3, 0.8))
        self.load = max(0.05, self.load * 0.97)
        return 38.0 + 40.0 * self.load + self.rng.gauss(0, 0.3)
