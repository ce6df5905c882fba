"""The pi_cpu driver against the fake Raspberry Pi sysfs tree and a fake vcgencmd."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from producers.drivers.base import SensorError
from producers.drivers.pi_cpu import (
    PiCpuDriver,
    find_cpu_zone,
    parse_measure_temp,
    parse_millidegrees,
    parse_throttled,
)
from producers.emulation.commands import write_vcgencmd
from producers.emulation.sysfs import build_pi_tree, build_x300_tree
from shared.reading import unit_of
from shared.settings import Settings

ALL_CLEAR = {
    "undervoltage_now_bool": 0.0,
    "freq_capped_now_bool": 0.0,
    "throttled_now_bool": 0.0,
    "soft_temp_limit_now_bool": 0.0,
    "undervoltage_boot_bool": 0.0,
    "freq_capped_boot_bool": 0.0,
    "throttled_boot_bool": 0.0,
    "soft_temp_limit_boot_bool": 0.0,
}


@pytest.fixture
def pi(tmp_path: Path) -> Path:
    return build_pi_tree(tmp_path / "sys")


def zone_temp(root: Path) -> Path:
    return root / "class" / "thermal" / "thermal_zone0" / "temp"


@pytest.mark.parametrize(
    ("text", "set_flags"),
    [
        ("throttled=0x0\n", set()),
        ("throttled=0x50005\n", {"undervoltage_now_bool", "throttled_now_bool",
                                 "undervoltage_boot_bool", "throttled_boot_bool"}),
        ("throttled=0x80008", {"soft_temp_limit_now_bool", "soft_temp_limit_boot_bool"}),
        ("throttled=0x20002", {"freq_capped_now_bool", "freq_capped_boot_bool"}),
        ("throttled=0xF000F", set(ALL_CLEAR)),
        ("throttled=0x10000", {"undervoltage_boot_bool"}),
    ],
)  # fmt: skip
def test_parse_throttled(text: str, set_flags: set[str]) -> None:
    assert parse_throttled(text) == {m: float(m in set_flags) for m in ALL_CLEAR}


def test_throttle_metric_names_carry_a_unit() -> None:
    assert {unit_of(m) for m in ALL_CLEAR} == {"bool"}


@pytest.mark.parametrize("text", ["", "throttled=", "throttled=50005", "error=1", "0x5"])
def test_parse_throttled_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="expected throttled=0x"):
        parse_throttled(text)


@pytest.mark.parametrize(
    ("text", "celsius"), [("temp=47.2'C\n", 47.2), ("temp=-3.5'C", -3.5), ("temp=60'C", 60.0)]
)
def test_parse_measure_temp(text: str, celsius: float) -> None:
    assert parse_measure_temp(text) == celsius


@pytest.mark.parametrize("text", ["", "temp=", "temp=47,2'C", 'error=1 error_msg="x"'])
def test_parse_measure_temp_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="expected temp="):
        parse_measure_temp(text)


@pytest.mark.parametrize(("text", "celsius"), [("47236\n", 47.236), ("-5000", -5.0), ("0", 0.0)])
def test_parse_millidegrees(text: str, celsius: float) -> None:
    assert parse_millidegrees(text) == celsius


@pytest.mark.parametrize("text", ["", "\n", "abc"])
def test_parse_millidegrees_refuses_empty_and_garbage(text: str) -> None:
    with pytest.raises(ValueError, match=r"empty read|invalid literal"):
        parse_millidegrees(text)


def test_sysfs_temperature_and_throttling(pi: Path, tmp_path: Path) -> None:
    vcgencmd = write_vcgencmd(tmp_path / "bin" / "vcgencmd", throttled="0x50005")
    driver = PiCpuDriver(pi, str(vcgencmd))
    driver.probe()
    values = driver.read()
    assert values["cpu_temperature_c"] == 47.236  # sysfs wins over vcgencmd's 47.2
    assert values["undervoltage_now_bool"] == 1.0
    assert values["throttled_boot_bool"] == 1.0
    assert values["freq_capped_now_bool"] == 0.0


def test_without_vcgencmd_temperature_still_works(
    pi: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    driver = PiCpuDriver(pi, str(tmp_path / "no-such-vcgencmd"))
    assert driver.read() == {"cpu_temperature_c": 47.236}
    assert "vcgencmd not found: throttling metrics off" in caplog.text


@pytest.mark.parametrize(
    ("fake", "sentence"),
    [
        ({"exit_code": 255, "error": "VCHI initialization failed"},
         "vcgencmd get_throttled failed (exit 255): VCHI initialization failed"
         " (add the user to the video group)"),
        ({"exit_code": 1, "error": ""}, "vcgencmd get_throttled failed (exit 1): no output"),
        ({"throttled": "zz"}, "expected throttled=0x..., got 'throttled=zz'"),
        ({"hang": True}, "vcgencmd get_throttled did not answer within 0.3 s"),
    ],
)  # fmt: skip
def test_vcgencmd_failing_keeps_the_temperature(
    pi: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, fake: dict, sentence: str
) -> None:
    vcgencmd = write_vcgencmd(tmp_path / "vcgencmd", **fake)
    driver = PiCpuDriver(pi, str(vcgencmd), timeout=0.3)
    assert driver.read() == {"cpu_temperature_c": 47.236}
    assert f"throttling metrics skipped: {sentence}" in caplog.text
    driver.read()
    assert caplog.text.count("throttling metrics skipped") == 1  # once per failure streak


def test_vcgencmd_fallback_when_there_is_no_thermal_zone(tmp_path: Path) -> None:
    vcgencmd = write_vcgencmd(tmp_path / "vcgencmd", temp="51.0")
    driver = PiCpuDriver(tmp_path / "empty-sys", str(vcgencmd))
    assert driver.read() == {"cpu_temperature_c": 51.0, **ALL_CLEAR}


def test_neither_zone_nor_vcgencmd(tmp_path: Path) -> None:
    root = build_x300_tree(tmp_path / "sys")  # only an acpitz zone: not the CPU
    driver = PiCpuDriver(root, str(tmp_path / "missing"))
    with pytest.raises(SensorError) as info:
        driver.probe()
    assert str(info.value) == (
        f"no CPU thermal zone under {root}/class/thermal and vcgencmd not found:"
        " not a Raspberry Pi?"
    )


def test_zone_vanishing_mid_read_falls_back_then_recovers(pi: Path, tmp_path: Path) -> None:
    vcgencmd = write_vcgencmd(tmp_path / "vcgencmd", temp="48.9")
    driver = PiCpuDriver(pi, str(vcgencmd))
    driver.probe()
    zone_temp(pi).unlink()
    assert driver.read()["cpu_temperature_c"] == 48.9
    zone_temp(pi).write_text("50000\n")
    assert driver.read()["cpu_temperature_c"] == 50.0


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (None, "{path} vanished while being read"),
        ("", "{path} gave an empty or garbled read"),
        ("200000", "CPU temperature 200.0 °C is impossible, dropped"),
        ("-60000", "CPU temperature -60.0 °C is impossible, dropped"),
    ],
)
def test_unreadable_zone_without_vcgencmd(
    pi: Path, tmp_path: Path, content: str | None, sentence: str
) -> None:
    driver = PiCpuDriver(pi, str(tmp_path / "missing"))
    driver.probe()
    path = zone_temp(pi)
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    with pytest.raises(SensorError) as info:
        driver.read()
    assert str(info.value) == sentence.format(path=path)


def test_cpu_zone_is_chosen_by_type(tmp_path: Path) -> None:
    root = build_pi_tree(tmp_path / "sys")
    assert find_cpu_zone(root) == root / "class" / "thermal" / "thermal_zone0"
    assert find_cpu_zone(build_x300_tree(tmp_path / "x300")) is None


def test_from_settings_reads_sysfs_root(pi: Path) -> None:
    driver = PiCpuDriver.from_settings(Settings.from_env({"SYSFS_ROOT": str(pi)}))
    assert driver.read()["cpu_temperature_c"] == 47.236
