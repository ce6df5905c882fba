"""BME280 temperature, humidity and pressure over I2C (smbus2 + RPi.bme280)."""

from __future__ import annotations

import errno
import functools
import logging
import math
import warnings
from collections.abc import Callable
from typing import Any

import bme280

from producers.drivers.base import Driver, SensorError
from shared.settings import Settings

logger = logging.getLogger(__name__)

REG_CHIP_ID = 0xD0
CHIP_ID_BME280 = 0x60
CHIP_ID_BMP280 = 0x58
# Raw values the chip leaves in its data registers after reset or for a skipped
# measurement; RPi.bme280 turns them into ~23.3 °C, 689 hPa, 82.8 %RH.
RAW_RESET_TP = 0x80000
RAW_RESET_H = 0x8000
# Oversampling factor -> the osrs_x code RPi.bme280's `sampling` argument takes.
OVERSAMPLING = {1: 1, 2: 2, 4: 3, 8: 4, 16: 5}
# Physical range of each metric (datasheet operating range); outside it the
# sample is garbage from a loose wire or a bad chip, never weather.
LIMITS: dict[str, tuple[float, float]] = {
    "temperature_c": (-40.0, 85.0),
    "pressure_hpa": (300.0, 1100.0),
    "humidity_pct": (0.0, 100.0),
}
# Magnus coefficients over water (Sonntag 1990), good from -45 to 60 °C.
MAGNUS_A = 17.62
MAGNUS_B = 243.12


def dew_point_c(temperature_c: float, humidity_pct: float) -> float:
    """Dew point in °C by the Magnus formula; humidity must be above 0 %."""
    gamma = math.log(humidity_pct / 100.0) + MAGNUS_A * temperature_c / (MAGNUS_B + temperature_c)
    return MAGNUS_B * gamma / (MAGNUS_A - gamma)


def describe_os_error(exc: OSError, bus: int, address: int) -> str:
    """One sentence a user can act on for an OSError from opening or using the bus."""
    dev, at = f"/dev/i2c-{bus}", f"0x{address:02x}"
    messages = {
        errno.ENOENT: f"{dev} does not exist: enable I2C (sudo raspi-config nonint do_i2c 0)"
        " and reboot, or set I2C_BUS",
        errno.EACCES: f"permission denied on {dev}: add the user to the i2c group"
        " (sudo usermod -aG i2c USER) and log in again",
        errno.EREMOTEIO: f"no device answers at {at} on bus {bus}: check wiring/address"
        f" (i2cdetect -y {bus}; BME280_ADDRESS is 0x76 or 0x77)",
        errno.EBUSY: f"I2C bus {bus} is busy at {at}: another program or a kernel driver"
        " (dtoverlay=i2c-sensor in config.txt) is using it",
        errno.ETIMEDOUT: f"bus {bus} timed out talking to {at}: check wiring and pull-ups",
        errno.EIO: f"I/O error talking to {at} on bus {bus}: check wiring and power",
        errno.ENOTTY: f"{dev} is not an I2C adapter",
        errno.ENODEV: f"{dev} went away: the I2C adapter was removed",
    }
    # EPERM reads like EACCES to a user; ENXIO is how some adapters say no ACK.
    messages[errno.EPERM] = messages[errno.EACCES]
    messages[errno.ENXIO] = messages[errno.EREMOTEIO]
    default = f"I2C error talking to {at} on bus {bus}: {exc.strerror or exc}"
    return messages.get(exc.errno or 0, default)


def _oversampling_code(factor: int) -> int:
    """RPi.bme280's osrs code for an oversampling factor; SensorError names the valid ones."""
    if factor not in OVERSAMPLING:
        raise SensorError(f"BME280_OVERSAMPLING={factor} must be 1, 2, 4, 8 or 16")
    return OVERSAMPLING[factor]


def _check_raw(raw: Any, at: str) -> None:
    """Refuse a sample whose data registers still hold the reset pattern."""
    if raw.temperature == RAW_RESET_TP or raw.pressure == RAW_RESET_TP:
        raise SensorError(f"BME280 at {at} returned its reset pattern: no measurement was made")
    if raw.humidity == RAW_RESET_H:
        raise SensorError(f"BME280 at {at} returned no humidity (reset pattern): is it a BMP280?")


def _check_limits(values: dict[str, float], at: str) -> None:
    """Refuse a sample with a physically impossible value (a loose wire, a bad chip)."""
    for metric, (low, high) in LIMITS.items():
        value = values[metric]
        if not (math.isfinite(value) and low <= value <= high):
            raise SensorError(
                f"BME280 at {at} read {metric}={value:.2f}, outside {low:g}..{high:g}:"
                " sample rejected"
            )


class Bme280Driver(Driver):
    """A BME280 on an smbus2-compatible bus, compensated by RPi.bme280."""

    name = "bme280"

    def __init__(
        self,
        open_bus: Callable[[], Any],
        *,
        bus_number: int = 1,
        address: int = 0x76,
        oversampling: int = 1,
        emulated: bool = False,
    ) -> None:
        self.emulated = emulated  # said in the log so nobody mistakes it for a real room
        self._open_bus = open_bus  # called at probe, again after the bus failed
        self.bus_number = bus_number
        self.address = address
        self._sampling = _oversampling_code(oversampling)
        self._bus: Any = None
        self._calibration: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Bme280Driver:
        """The real /dev/i2c-N, or the emulated chip when BME280_EMULATE is set."""
        open_bus: Callable[[], Any]
        if settings.bme280_emulate:
            from producers.emulation.bme280_chip import emulated_bus

            open_bus = functools.partial(emulated_bus, settings.bme280_address, settings.i2c_bus)
        else:
            import smbus2

            open_bus = functools.partial(smbus2.SMBus, settings.i2c_bus)
        return cls(
            open_bus,
            bus_number=settings.i2c_bus,
            address=settings.bme280_address,
            oversampling=settings.bme280_oversampling,
            emulated=settings.bme280_emulate,
        )

    @property
    def _at(self) -> str:
        return f"0x{self.address:02x} on bus {self.bus_number}"

    def probe(self) -> None:
        """Open the bus, check the chip id is a BME280's, load its calibration."""
        self.close()
        try:
            self._bus = self._open_bus()
            chip_id = self._bus.read_byte_data(self.address, REG_CHIP_ID)
            if chip_id == CHIP_ID_BMP280:
                raise SensorError(
                    f"the chip at {self._at} is a BMP280 (id 0x58): it has no humidity"
                    " sensor; use a BME280 (id 0x60)"
                )
            if chip_id != CHIP_ID_BME280:
                raise SensorError(
                    f"the chip at {self._at} has id 0x{chip_id:02x}, not a BME280's 0x60:"
                    " check BME280_ADDRESS"
                )
            self._calibration = bme280.load_calibration_params(self._bus, self.address)
        except OSError as exc:
            self.close()
            raise SensorError(describe_os_error(exc, self.bus_number, self.address)) from exc
        except SensorError:
            self.close()
            raise
        logger.info("BME280 found at %s%s", self._at, " (emulated)" if self.emulated else "")

    def read(self) -> dict[str, float]:
        """One forced-mode sample: temperature_c, humidity_pct, pressure_hpa, dew_point_c."""
        if self._calibration is None:
            self.probe()
        try:
            with warnings.catch_warnings():
                # RPi.bme280 stamps samples with datetime.utcnow(), deprecated in 3.12.
                warnings.filterwarnings("ignore", ".*utcnow", DeprecationWarning)
                sample = bme280.sample(self._bus, self.address, self._calibration, self._sampling)
        except OSError as exc:
            self.close()  # reopen and re-check the chip next time: it may have been swapped
            raise SensorError(describe_os_error(exc, self.bus_number, self.address)) from exc
        _check_raw(sample.uncompensated, self._at)
        values = {
            "temperature_c": float(sample.temperature),
            "humidity_pct": float(sample.humidity),
            "pressure_hpa": float(sample.pressure),
        }
        _check_limits(values, self._at)
        if values["humidity_pct"] > 0:
            values["dew_point_c"] = dew_point_c(values["temperature_c"], values["humidity_pct"])
        return values

    def close(self) -> None:
        """Release the bus; the next read() opens it again."""
        bus, self._bus, self._calibration = self._bus, None, None
        if bus is not None:
            try:
                bus.close()
            except OSError:
                logger.debug("closing the I2C bus failed", exc_info=True)
