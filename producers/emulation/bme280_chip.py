"""A register-level BME280 emulator, so the real RPi.bme280 code runs without hardware."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass

from producers.emulation.fake_smbus import FakeSMBus

CHIP_ID_BME280 = 0x60
CHIP_ID_BMP280 = 0x58
REG_CHIP_ID = 0xD0
REG_RESET = 0xE0
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_CONFIG = 0xF5
REG_DATA = 0xF7
RESET_WORD = 0xB6
# What the data registers hold after power-on or reset, and for a skipped
# measurement (oversampling 0): 0x80000 for T and P, 0x8000 for H.
RESET_DATA = (0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00)
RAW_RESET_TP = 0x80000
RAW_RESET_H = 0x8000


@dataclass(frozen=True, slots=True)
class Calibration:
    """The trimming parameters dig_T1..dig_H6 burnt into each chip's NVM."""

    t1: int
    t2: int
    t3: int
    p1: int
    p2: int
    p3: int
    p4: int
    p5: int
    p6: int
    p7: int
    p8: int
    p9: int
    h1: int
    h2: int
    h3: int
    h4: int
    h5: int
    h6: int

    def registers(self) -> dict[int, int]:
        """Register address -> byte, laid out as in datasheet table 16."""
        regs: dict[int, int] = {}
        for i, word in enumerate(astuple(self)[:12]):  # T1..P9, little-endian words
            regs[0x88 + 2 * i] = word & 0xFF
            regs[0x89 + 2 * i] = (word >> 8) & 0xFF
        regs[0xA1] = self.h1 & 0xFF
        regs[0xE1], regs[0xE2] = self.h2 & 0xFF, (self.h2 >> 8) & 0xFF
        regs[0xE3] = self.h3 & 0xFF
        # H4 and H5 are 12-bit values sharing register 0xE5 nibble by nibble.
        regs[0xE4] = (self.h4 >> 4) & 0xFF
        regs[0xE5] = (self.h4 & 0x0F) | (self.h5 & 0x0F) << 4
        regs[0xE6] = (self.h5 >> 4) & 0xFF
        regs[0xE7] = self.h6 & 0xFF
        return regs


# A real device's NVM, published as the pimoroni/bme280-python test vector.
PIMORONI = Calibration(
    28009, 25654, 50, 39145, -10750, 3024, 5667, -120, -7, 15500, -14600, 6000,
    75, 376, 0, 286, 50, 30,
)  # fmt: skip
# Bosch BMP280 datasheet section 3.12 example (humidity borrowed from PIMORONI).
BMP280_DATASHEET = Calibration(
    27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000,
    75, 376, 0, 286, 50, 30,
)  # fmt: skip


def t_fine(cal: Calibration, adc_t: int) -> float:
    """Datasheet 4.2.3 (double precision): the fine temperature the other two need."""
    v1 = (adc_t / 16384.0 - cal.t1 / 1024.0) * cal.t2
    v2 = (adc_t / 131072.0 - cal.t1 / 8192.0) ** 2 * cal.t3
    return v1 + v2


def pressure_pa(cal: Calibration, adc_p: int, fine: float) -> float:
    """Datasheet 4.2.3: pressure in Pa for a raw value at temperature `fine`."""
    v1 = fine / 2.0 - 64000.0
    v2 = v1 * v1 * cal.p6 / 32768.0 + v1 * cal.p5 * 2.0
    v2 = v2 / 4.0 + cal.p4 * 65536.0
    v1 = (cal.p3 * v1 * v1 / 524288.0 + cal.p2 * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * cal.p1
    if v1 == 0:
        return 0.0
    p = ((1048576.0 - adc_p) - v2 / 4096.0) * 6250.0 / v1
    return p + (cal.p9 * p * p / 2147483648.0 + p * cal.p8 / 32768.0 + cal.p7) / 16.0


def humidity_pct(cal: Calibration, adc_h: int, fine: float) -> float:
    """Datasheet 4.2.3: relative humidity in %, before clamping to 0..100."""
    h = fine - 76800.0
    h = (adc_h - (cal.h4 * 64.0 + cal.h5 / 16384.0 * h)) * (
        cal.h2 / 65536.0 * (1.0 + cal.h6 / 67108864.0 * h * (1.0 + cal.h3 / 67108864.0 * h))
    )
    return h * (1.0 - cal.h1 * h / 524288.0)


def _solve(f: Callable[[int], float], target: float, high: int, increasing: bool) -> int:
    """The integer in 0..high where monotonic `f` comes closest to `target` (bisection)."""
    lo, hi = 0, high
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda x: abs(f(x) - target))


def raw_for(
    cal: Calibration, temp_c: float, press_hpa: float, hum_pct: float
) -> tuple[int, int, int]:
    """The ADC values (T, P, H) a chip with `cal` would output in this environment."""
    adc_t = _solve(lambda x: t_fine(cal, x) / 5120.0, temp_c, 0xFFFFF, increasing=True)
    fine = t_fine(cal, adc_t)
    # A higher raw pressure means a lower pressure in this chip's transfer function.
    adc_p = _solve(lambda x: pressure_pa(cal, x, fine), press_hpa * 100.0, 0xFFFFF, False)
    adc_h = _solve(lambda x: humidity_pct(cal, x, fine), hum_pct, 0xFFFF, increasing=True)
    return adc_t, adc_p, adc_h


class Environment:
    """A slowly varying living room: daily swing, weather drift and a little noise."""

    def __init__(self, clock: Callable[[], float] = time.time, seed: int | None = None) -> None:
        self.clock = clock
        self._rng = random.Random(seed)

    def __call__(self) -> tuple[float, float, float]:
        """(temperature °C, pressure hPa, relative humidity %) now."""
        now = self.clock()
        day = math.sin(2 * math.pi * now / 86400)
        minutes = math.sin(2 * math.pi * now / 900)
        weather = math.sin(2 * math.pi * now / (3 * 86400))
        noise = self._rng.gauss
        temp = 21.5 + 1.8 * day + 0.2 * minutes + noise(0, 0.02)
        press = 1013.25 + 6.0 * weather + noise(0, 0.05)
        hum = 45.0 - 6.0 * day - 0.8 * minutes + noise(0, 0.1)
        return temp, press, hum


class Bme280Chip:
    """The registers and forced-mode measurement of one BME280 (or a BMP280 by id)."""

    def __init__(
        self,
        calibration: Calibration = PIMORONI,
        *,
        chip_id: int = CHIP_ID_BME280,
        raw: tuple[int, int, int] = (529191, 326816, 30281),
        environment: Callable[[], tuple[float, float, float]] | None = None,
    ) -> None:
        self.calibration = calibration
        self.chip_id = chip_id
        self.raw = raw  # ADC (T, P, H) of the next measurement, unless `environment`
        self.environment = environment
        # A chip that never completes a measurement (brown-out, a clone with a
        # dead ADC): the data registers keep their reset pattern.
        self.stuck = False
        self.measurements = 0
        self._regs = bytearray(256)
        self.reset()

    def reset(self) -> None:
        """Power-on state: calibration in place, controls cleared, data at reset pattern."""
        self._regs[:] = bytes(256)
        for register, value in self.calibration.registers().items():
            self._regs[register] = value
        self._regs[REG_DATA : REG_DATA + 8] = bytes(RESET_DATA)

    def read_register(self, register: int) -> int:
        """The byte at `register` (the chip id is live so a test can swap chips)."""
        if register == REG_CHIP_ID:
            return self.chip_id
        return self._regs[register & 0xFF]

    def write_register(self, register: int, value: int) -> None:
        """Writable registers only; the rest ignore writes as on the real chip."""
        if register == REG_RESET:
            if value == RESET_WORD:
                self.reset()
        elif register in (REG_CTRL_HUM, REG_CONFIG):
            self._regs[register] = value
        elif register == REG_CTRL_MEAS:
            self._regs[register] = value
            if value & 0x03:
                self._measure(value)

    def _measure(self, ctrl_meas: int) -> None:
        """One measurement, complete at once; forced mode returns to sleep after it."""
        self.measurements += 1
        if ctrl_meas & 0x03 != 0x03:
            self._regs[REG_CTRL_MEAS] = ctrl_meas & 0xFC
        if self.stuck:
            return
        adc_t, adc_p, adc_h = self._adc()
        # ctrl_hum takes effect with the ctrl_meas write; oversampling 0 skips.
        if not ctrl_meas >> 5:
            adc_t = RAW_RESET_TP
        if not (ctrl_meas >> 2) & 0x07:
            adc_p = RAW_RESET_TP
        if not self._regs[REG_CTRL_HUM] & 0x07:
            adc_h = RAW_RESET_H
        self._regs[REG_DATA : REG_DATA + 8] = bytes(data_block(adc_t, adc_p, adc_h))

    def _adc(self) -> tuple[int, int, int]:
        if self.environment is None:
            return self.raw
        return raw_for(self.calibration, *self.environment())


def data_block(adc_t: int, adc_p: int, adc_h: int) -> list[int]:
    """Registers 0xF7..0xFE for raw values: 20-bit P and T left-aligned, 16-bit H."""
    return [
        adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4,
        adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4,
        adc_h >> 8, adc_h & 0xFF,
    ]  # fmt: skip


def emulated_bus(address: int = 0x76, bus: int = 1, seed: int | None = None) -> FakeSMBus:
    """A fake bus with one BME280 at `address` living in a slowly varying room."""
    chip = Bme280Chip(environment=Environment(seed=seed))
    return FakeSMBus(bus, {address: chip})
