"""The BME280 driver through the real RPi.bme280 code, against the register emulator."""

from __future__ import annotations

import errno
import functools
import logging
import re
import time
from dataclasses import fields
from pathlib import Path

import bme280
import pytest
import smbus2

from producers.drivers.base import SensorError
from producers.drivers.bme280 import Bme280Driver, describe_os_error, dew_point_c
from producers.emulation.bme280_chip import (
    BMP280_DATASHEET,
    CHIP_ID_BMP280,
    PIMORONI,
    RAW_RESET_H,
    RAW_RESET_TP,
    Bme280Chip,
    raw_for,
)
from producers.emulation.fake_smbus import FakeSMBus, os_error
from shared.reading import Reading
from shared.settings import Settings

NO_ACK = "no device answers at 0x76 on bus 1: check wiring/address (i2cdetect -y 1;"


def driver_for(chip: Bme280Chip | None, **kwargs: int) -> tuple[Bme280Driver, FakeSMBus]:
    """A driver whose bus opener hands out one fake bus with `chip` at 0x76."""
    bus = FakeSMBus(1, {0x76: chip} if chip else {})
    return Bme280Driver(lambda: bus, **kwargs), bus


def error_of(driver: Bme280Driver) -> str:
    """The sentence read() fails with (it probes first when it has not yet)."""
    with pytest.raises(SensorError) as info:
        driver.read()
    return str(info.value)


def test_pimoroni_real_device_vector() -> None:
    driver, _ = driver_for(Bme280Chip(PIMORONI, raw=(529191, 326816, 30281)))
    driver.probe()
    values = driver.read()
    assert values["temperature_c"] == pytest.approx(24.789487767560992, rel=1e-12)
    assert values["pressure_hpa"] == pytest.approx(1006.6151756442143, rel=1e-12)
    assert values["humidity_pct"] == pytest.approx(68.66996648709039, rel=1e-12)
    assert values["dew_point_c"] == pytest.approx(18.64, abs=0.01)


def test_bmp280_datasheet_vector() -> None:
    """Bosch BMP280 datasheet 3.12: adc_T=519888 is 25.08 °C, adc_P=415148 is 100653.27 Pa."""
    driver, _ = driver_for(Bme280Chip(BMP280_DATASHEET, raw=(519888, 415148, 30281)))
    values = driver.read()
    assert values["temperature_c"] == pytest.approx(25.08, abs=0.005)
    assert values["pressure_hpa"] == pytest.approx(1006.5327, abs=0.0001)


def test_calibration_read_through_the_library_matches_the_chip() -> None:
    bus = FakeSMBus(1, {0x77: Bme280Chip(PIMORONI)})
    params = bme280.load_calibration_params(bus, 0x77)
    expected = {f"dig_{f.name.upper()}": getattr(PIMORONI, f.name) for f in fields(PIMORONI)}
    assert dict(params) == expected


@pytest.mark.parametrize(
    ("exc", "sentence"),
    [
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/dev/i2c-1"),
         "/dev/i2c-1 does not exist: enable I2C (sudo raspi-config nonint do_i2c 0) and reboot,"
         " or set I2C_BUS"),
        (PermissionError(errno.EACCES, "Permission denied", "/dev/i2c-1"),
         "permission denied on /dev/i2c-1: add the user to the i2c group"
         " (sudo usermod -aG i2c USER) and log in again"),
    ],
)  # fmt: skip
def test_opening_the_bus_fails_with_a_sentence(exc: OSError, sentence: str) -> None:
    def refuse() -> FakeSMBus:
        raise exc

    assert error_of(Bme280Driver(refuse)) == sentence


def test_missing_dev_i2c_with_the_real_smbus2() -> None:
    driver = Bme280Driver(functools.partial(smbus2.SMBus, 250), bus_number=250)
    assert error_of(driver).startswith("/dev/i2c-250 does not exist: enable I2C")


def test_a_file_that_is_not_an_adapter_with_the_real_smbus2(tmp_path) -> None:
    fake_dev = tmp_path / "i2c-7"
    fake_dev.write_bytes(b"")
    driver = Bme280Driver(functools.partial(smbus2.SMBus, str(fake_dev)), bus_number=7)
    assert error_of(driver) == "/dev/i2c-7 is not an I2C adapter"


def test_no_ack_when_nothing_is_at_the_address() -> None:
    driver, _ = driver_for(None)
    assert error_of(driver).startswith(NO_ACK)


@pytest.mark.parametrize(
    ("code", "sentence"),
    [
        (errno.EREMOTEIO, NO_ACK),
        (errno.EBUSY, "I2C bus 1 is busy at 0x76: another program or a kernel driver"),
        (errno.ETIMEDOUT, "bus 1 timed out talking to 0x76: check wiring and pull-ups"),
        (errno.EIO, "I/O error talking to 0x76 on bus 1: check wiring and power"),
        (errno.EAGAIN, "I2C error talking to 0x76 on bus 1: Resource temporarily unavailable"),
    ],
)
def test_bus_errors_at_probe_and_read(code: int, sentence: str) -> None:
    driver, bus = driver_for(Bme280Chip())
    bus.fault = os_error(code)
    assert error_of(driver).startswith(sentence)
    bus.fault, bus.closed = None, False
    driver.probe()
    bus.fault = os_error(code)
    with pytest.raises(SensorError, match="^" + re.escape(sentence)):
        driver.read()


def test_unplugged_sensor_recovers_by_itself() -> None:
    chip = Bme280Chip()
    devices = {0x76: chip}
    driver = Bme280Driver(lambda: FakeSMBus(1, devices))
    assert driver.read()["temperature_c"] == pytest.approx(24.789, abs=0.001)
    devices.clear()
    with pytest.raises(SensorError, match="no device answers at 0x76"):
        driver.read()
    devices[0x76] = chip
    assert driver.read()["temperature_c"] == pytest.approx(24.789, abs=0.001)


@pytest.mark.parametrize(
    ("chip_id", "sentence"),
    [
        (CHIP_ID_BMP280, "the chip at 0x76 on bus 1 is a BMP280 (id 0x58): it has no humidity"
                         " sensor; use a BME280 (id 0x60)"),
        (0x61, "the chip at 0x76 on bus 1 has id 0x61, not a BME280's 0x60: check BME280_ADDRESS"),
        (0xFF, "the chip at 0x76 on bus 1 has id 0xff, not a BME280's 0x60: check BME280_ADDRESS"),
    ],
)  # fmt: skip
def test_wrong_chip_id_is_refused_at_probe(chip_id: int, sentence: str) -> None:
    driver, _ = driver_for(Bme280Chip(chip_id=chip_id))
    assert error_of(driver) == sentence


def test_reset_pattern_is_rejected_not_turned_into_plausible_garbage() -> None:
    chip = Bme280Chip(PIMORONI)
    chip.stuck = True  # measurements never complete: registers keep 0x80000 / 0x8000
    bus = FakeSMBus(1, {0x76: chip})
    # What the library alone would report: plausible-looking numbers.
    garbage = bme280.sample(bus, 0x76, bme280.load_calibration_params(bus, 0x76))
    assert garbage.uncompensated.temperature == RAW_RESET_TP
    assert 15 < garbage.temperature < 30
    driver = Bme280Driver(lambda: bus)
    assert error_of(driver) == (
        "BME280 at 0x76 on bus 1 returned its reset pattern: no measurement was made"
    )


def test_humidity_reset_pattern_is_rejected() -> None:
    driver, _ = driver_for(Bme280Chip(raw=(529191, 326816, RAW_RESET_H)))
    assert error_of(driver) == (
        "BME280 at 0x76 on bus 1 returned no humidity (reset pattern): is it a BMP280?"
    )


@pytest.mark.parametrize(
    ("environment", "metric"),
    [
        ((95.0, 1000.0, 40.0), "temperature_c=95.00, outside -40..85"),
        ((-45.0, 1000.0, 40.0), "temperature_c=-45.00, outside -40..85"),
        ((20.0, 250.0, 40.0), "pressure_hpa=250.00, outside 300..1100"),
        ((20.0, 1150.0, 40.0), "pressure_hpa=1150.00, outside 300..1100"),
    ],
)
def test_impossible_values_are_rejected(
    environment: tuple[float, float, float], metric: str
) -> None:
    driver, _ = driver_for(Bme280Chip(raw=raw_for(PIMORONI, *environment)))
    assert error_of(driver) == f"BME280 at 0x76 on bus 1 read {metric}: sample rejected"


@pytest.mark.parametrize(("factor", "osrs"), [(1, 1), (2, 2), (4, 3), (8, 4), (16, 5)])
def test_oversampling_reaches_the_chip(factor: int, osrs: int) -> None:
    chip = Bme280Chip()
    driver, bus = driver_for(chip, oversampling=factor)
    driver.read()
    assert bus.read_byte_data(0x76, 0xF2) == osrs  # ctrl_hum
    assert bus.read_byte_data(0x76, 0xF4) == osrs << 5 | osrs << 2  # forced, back to sleep


def test_bad_oversampling_is_refused() -> None:
    with pytest.raises(SensorError, match=r"^BME280_OVERSAMPLING=3 must be 1, 2, 4, 8 or 16$"):
        driver_for(Bme280Chip(), oversampling=3)


@pytest.mark.parametrize(
    ("temperature", "humidity", "dew_point"),
    [(20.0, 50.0, 9.26), (25.0, 60.0, 16.69), (0.0, 80.0, -3.04), (30.0, 100.0, 30.0)],
)
def test_dew_point_magnus(temperature: float, humidity: float, dew_point: float) -> None:
    assert dew_point_c(temperature, humidity) == pytest.approx(dew_point, abs=0.02)


def test_emulation_mode_runs_the_real_driver_path(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    settings = Settings.from_env({"SENSORS": "bme280", "BME280_EMULATE": "1"})
    driver = Bme280Driver.from_settings(settings)
    driver.probe()
    values = driver.read()
    assert 15 < values["temperature_c"] < 30
    assert 990 < values["pressure_hpa"] < 1030
    assert 30 < values["humidity_pct"] < 60
    reading = Reading(source="pi", sensor=driver.name, ts=time.time(), values=values)
    assert set(reading.values) == {"temperature_c", "humidity_pct", "pressure_hpa", "dew_point_c"}
    assert "BME280 found at 0x76 on bus 1 (emulated)" in caplog.text
    driver.close()


@pytest.mark.parametrize(
    "code", [errno.ENOENT, errno.EACCES, errno.EREMOTEIO, errno.EBUSY, errno.ETIMEDOUT, errno.EIO]
)
def test_docs_quote_the_real_sentences(code: int) -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "raspberry-pi.md").read_text()
    assert f"`{describe_os_error(os_error(code), 1, 0x76)}`" in docs
