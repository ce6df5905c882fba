"""The emulated BME280 chip, the fake bus, trees and commands behave like the real ones."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import bme280
import pytest

from producers.emulation.__main__ import main
from producers.emulation.bme280_chip import (
    BMP280_DATASHEET,
    PIMORONI,
    RESET_DATA,
    Bme280Chip,
    Environment,
    emulated_bus,
    raw_for,
)
from producers.emulation.fake_smbus import FakeSMBus, os_error


def data_registers(bus: FakeSMBus, address: int = 0x76) -> list[int]:
    return bus.read_i2c_block_data(address, 0xF7, 8)


@pytest.mark.parametrize(
    ("environment"),
    [(24.79, 1006.62, 68.67), (-10.0, 950.0, 20.0), (35.0, 1050.0, 90.0), (21.5, 1013.25, 45.0)],
)
def test_raw_for_round_trips_through_the_library(environment: tuple[float, ...]) -> None:
    bus = FakeSMBus(1, {0x76: Bme280Chip(PIMORONI, raw=raw_for(PIMORONI, *environment))})
    sample = bme280.sample(bus, 0x76, bme280.load_calibration_params(bus, 0x76))
    temperature, pressure, humidity = environment
    assert sample.temperature == pytest.approx(temperature, abs=0.01)
    assert sample.pressure == pytest.approx(pressure, abs=0.01)
    assert sample.humidity == pytest.approx(humidity, abs=0.01)


def test_pimoroni_raw_values_reach_the_data_registers() -> None:
    bus = FakeSMBus(1, {0x76: Bme280Chip(PIMORONI)})
    bme280.sample(bus, 0x76, bme280.load_calibration_params(bus, 0x76))
    raw = bme280.uncompensated_readings(data_registers(bus))
    assert (raw.temperature, raw.pressure, raw.humidity) == (529191, 326816, 30281)


def test_power_on_and_soft_reset_show_the_reset_pattern() -> None:
    chip = Bme280Chip(BMP280_DATASHEET)
    bus = FakeSMBus(1, {0x76: chip})
    assert data_registers(bus) == list(RESET_DATA)
    bme280.sample(bus, 0x76, bme280.load_calibration_params(bus, 0x76))
    assert data_registers(bus) != list(RESET_DATA)
    bus.write_byte_data(0x76, 0xE0, 0xB6)
    assert data_registers(bus) == list(RESET_DATA)
    assert bus.read_byte_data(0x76, 0xF4) == 0
    assert bme280.load_calibration_params(bus, 0x76).dig_T3 == -1000  # NVM survives reset


def test_skipped_measurements_read_as_reset_pattern() -> None:
    bus = FakeSMBus(1, {0x76: Bme280Chip()})
    bus.write_byte_data(0x76, 0xF2, 0)  # humidity off
    bus.write_byte_data(0x76, 0xF4, 1 << 5 | 0 << 2 | 1)  # T x1, P off, forced
    raw = bme280.uncompensated_readings(data_registers(bus))
    assert (raw.temperature, raw.pressure, raw.humidity) == (529191, 0x80000, 0x8000)


def test_read_only_registers_ignore_writes() -> None:
    bus = FakeSMBus(1, {0x76: Bme280Chip()})
    bus.write_byte_data(0x76, 0xD0, 0x00)
    bus.write_byte_data(0x76, 0x88, 0x00)
    assert bus.read_byte_data(0x76, 0xD0) == 0x60
    assert bus.read_word_data(0x76, 0x88) == 28009


@pytest.mark.parametrize("code", [errno.EREMOTEIO, errno.EBUSY, errno.EIO])
def test_fake_bus_faults(code: int) -> None:
    bus = FakeSMBus(1, {0x76: Bme280Chip()})
    bus.fault = os_error(code)
    with pytest.raises(OSError, match=r"\[Errno") as info:
        bus.read_byte_data(0x76, 0xD0)
    assert info.value.errno == code
    with pytest.raises(OSError, match="Remote I/O error"):
        FakeSMBus(1, {}).read_byte_data(0x76, 0xD0)


def test_environment_drifts_slowly_and_stays_realistic() -> None:
    now = [1_763_712_000.0]
    environment = Environment(clock=lambda: now[0], seed=1)
    first = environment()
    now[0] += 1.0
    second = environment()
    assert all(abs(a - b) < 0.5 for a, b in zip(first, second, strict=True))
    for _ in range(72):  # three days, hour by hour
        now[0] += 3600
        temperature, pressure, humidity = environment()
        assert 18 < temperature < 25
        assert 1000 < pressure < 1027
        assert 35 < humidity < 55


def test_emulated_bus_is_a_bme280_in_a_room() -> None:
    bus = emulated_bus(0x77, seed=3)
    assert bus.read_byte_data(0x77, 0xD0) == 0x60
    sample = bme280.sample(bus, 0x77, bme280.load_calibration_params(bus, 0x77))
    assert 15 < sample.temperature < 30


@pytest.mark.parametrize(("kind", "sensors"), [("pi", "pi_cpu,hwmon"), ("x300", "hwmon")])
def test_cli_builds_a_fake_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, sensors: str
) -> None:
    assert main([kind, str(tmp_path / "host")]) == 0
    line = capsys.readouterr().out
    assert f"SYSFS_ROOT={tmp_path}/host/sys" in line
    assert f"SENSORS={sensors} python -m producers --once" in line
    assert (tmp_path / "host" / "sys" / "class" / "hwmon" / "hwmon0" / "name").exists()


def test_cli_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "producers.emulation", "pi", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "is not empty" in done.stderr
