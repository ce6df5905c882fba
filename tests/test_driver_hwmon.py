"""The hwmon driver against fake sysfs trees of an AMD X300 server and a Raspberry Pi."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from producers.drivers.base import SensorError
from producers.drivers.hwmon import HwmonDriver, discover, metric_name
from producers.emulation.sysfs import build_pi_tree, build_tree, build_x300_tree
from shared.reading import Reading
from shared.settings import Settings

X300_VALUES = {
    "k10temp_tctl_c": 45.5,
    "k10temp_tccd1_c": 43.25,
    "nvme_composite_c": 38.85,
    "nvme_sensor_1_c": 41.85,
    "amdgpu_edge_c": 41.0,
    "nct6798_systin_c": 34.0,
    "nct6798_cputin_c": 45.5,
    "amdgpu_ppt_w": 9.8,
    "nct6798_fan1_rpm": 0.0,
    "nct6798_fan2_rpm": 812.0,
    "amdgpu_sclk_hz": 400e6,
    "amdgpu_vddgfx_v": 1.35,
    "amdgpu_vddnb_v": 0.95,
    "nct6798_in0_v": 1.024,
    "nct6798_in1_v": 1.008,
    "nct6798_in2_v": 3.392,
    "nct6798_in8_v": 3.312,
}


@pytest.fixture
def x300(tmp_path: Path) -> Path:
    return build_x300_tree(tmp_path / "sys")


def chip_dir(root: Path, n: int) -> Path:
    return root / "class" / "hwmon" / f"hwmon{n}"


def one_chip(root: Path, files: dict[str, str], name: str = "testchip") -> Path:
    """A tree with one hwmon chip holding `files`."""
    return build_tree(root, {"devices/chip/hwmon0": {"name": name, **files}},
                      {"class/hwmon/hwmon0": "devices/chip/hwmon0"})  # fmt: skip


def test_x300_in_exact_units(x300: Path, caplog: pytest.LogCaptureFixture) -> None:
    driver = HwmonDriver(x300)
    driver.probe()
    assert driver.read() == X300_VALUES
    # The unconnected AUXTIN0 reads -62 °C: dropped, with a line saying so.
    assert "skipping nct6798_auxtin0_c: nct6798_auxtin0_c=-62 is outside -50..150" in caplog.text
    Reading(source="x300", sensor="hwmon", ts=time.time(), values=driver.read())


def test_pi_cpu_thermal_chip(tmp_path: Path) -> None:
    root = build_pi_tree(tmp_path / "sys")
    assert HwmonDriver(root).read() == {"cpu_thermal_temp1_c": 47.236}


@pytest.mark.parametrize(
    ("chip", "label", "suffix", "name"),
    [
        ("k10temp", "Tctl", "_c", "k10temp_tctl_c"),
        ("k10temp", "Tccd1", "_c", "k10temp_tccd1_c"),
        ("nct6798", "fan2", "_rpm", "nct6798_fan2_rpm"),
        ("amdgpu", "PPT", "_w", "amdgpu_ppt_w"),
        ("nvme", "Sensor 1", "_c", "nvme_sensor_1_c"),
        ("nct6798", "PECI Agent 0 Calibration", "_c", "nct6798_peci_agent_0_calibration_c"),
        ("iwlwifi_1", "temp1", "_c", "iwlwifi_1_temp1_c"),
        ("0000:01", "temp1", "_c", "hw_0000_01_temp1_c"),
        ("", "", "_c", "hwmon_c"),
        ("chip", "x" * 80, "_rpm", "chip_" + "x" * 52 + "_rpm"),
    ],
)
def test_metric_names(chip: str, label: str, suffix: str, name: str) -> None:
    assert metric_name(chip, label, suffix, set()) == name
    assert len(name) <= 64


def test_same_chip_twice_gets_distinct_names(tmp_path: Path) -> None:
    chip = {"name": "nvme", "temp1_input": "38000", "temp1_label": "Composite"}
    devices = {f"devices/nvme{i}/hwmon{i}": chip for i in (2, 10, 9)}
    links = {f"class/hwmon/hwmon{i}": f"devices/nvme{i}/hwmon{i}" for i in (2, 10, 9)}
    root = build_tree(tmp_path, devices, links)
    names = [c.metric for c in discover(root)]
    assert names == ["nvme_composite_c", "nvme_composite_2_c", "nvme_composite_3_c"]
    assert [c.path.parent.name for c in discover(root)] == ["hwmon2", "hwmon9", "hwmon10"]


@pytest.mark.parametrize(
    ("files", "values"),
    [
        ({"power1_average": "9800000", "power1_input": "12000000", "power1_label": "PPT"},
         {"testchip_ppt_w": 9.8}),
        ({"power1_input": "15250000", "power1_label": "PPT"}, {"testchip_ppt_w": 15.25}),
        ({"curr1_input": "1500", "curr1_label": "iin"}, {"testchip_iin_a": 1.5}),
        ({"in0_input": "-12100"}, {"testchip_in0_v": -12.1}),
        ({"temp1_input": "-5000", "temp1_max": "90000", "temp1_crit_alarm": "0"},
         {"testchip_temp1_c": -5.0}),
    ],
)  # fmt: skip
def test_units_and_files(tmp_path: Path, files: dict[str, str], values: dict) -> None:
    assert HwmonDriver(one_chip(tmp_path, files)).read() == values


@pytest.mark.parametrize(
    ("file", "raw", "reason"),
    [
        ("temp2_input", "200000", "testchip_temp2_c=200 is outside -50..150, dropped"),
        ("temp2_input", "-273150", "testchip_temp2_c=-273.15 is outside -50..150, dropped"),
        ("fan2_input", "25000", "testchip_fan2_rpm=25000 is outside 0..20000, dropped"),
        ("fan2_input", "-1", "testchip_fan2_rpm=-1 is outside 0..20000, dropped"),
        ("power2_average", "3000000000", "testchip_power2_w=3000 is outside 0..2000, dropped"),
        ("in2_input", "65535", "testchip_in2_v=65.535 is outside -60..60, dropped"),
    ],
)
def test_impossible_values_are_dropped_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, file: str, raw: str, reason: str
) -> None:
    root = one_chip(tmp_path, {"temp1_input": "40000", file: raw})
    assert HwmonDriver(root).read() == {"testchip_temp1_c": 40.0}
    assert reason in caplog.text


def break_file(path: Path, how: str) -> str:
    """Make `path` unreadable the way `how` says; return the reason the driver logs."""
    path.unlink()
    if how == "vanished":  # listed by the directory scan, gone when opened
        path.symlink_to(path.parent / "gone")
        return f"{path} vanished while being read"
    if how == "eio":  # the kernel's EIO, as a chip that does not answer gives
        path.symlink_to("/proc/self/mem")
        return f"cannot read {path}: Input/output error"
    path.write_text("" if how == "empty" else "N/A\n")
    return f"{path} gave an empty or garbled read"


@pytest.mark.parametrize("how", ["vanished", "eio", "empty", "garbled"])
def test_unreadable_channel_is_skipped_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    root = one_chip(tmp_path, {"temp1_input": "40000", "fan1_input": "900"})
    driver = HwmonDriver(root)
    driver.probe()
    reason = break_file(chip_dir(root, 0) / "fan1_input", how)
    assert driver.read() == {"testchip_temp1_c": 40.0}
    assert driver.read() == {"testchip_temp1_c": 40.0}
    assert caplog.text.count(f"hwmon: skipping testchip_fan1_rpm: {reason}") == 1


def test_channel_recovers_by_itself(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    root = one_chip(tmp_path, {"temp1_input": "40000", "fan1_input": ""})
    driver = HwmonDriver(root)
    assert driver.read() == {"testchip_temp1_c": 40.0}
    (chip_dir(root, 0) / "fan1_input").write_text("900\n")
    assert driver.read() == {"testchip_temp1_c": 40.0, "testchip_fan1_rpm": 900.0}
    assert "hwmon: testchip_fan1_rpm readable again" in caplog.text


def test_error_only_when_nothing_is_readable(tmp_path: Path) -> None:
    root = one_chip(tmp_path, {"temp1_input": "40000"})
    driver = HwmonDriver(root)
    driver.probe()
    reason = break_file(chip_dir(root, 0) / "temp1_input", "vanished")
    with pytest.raises(SensorError) as info:
        driver.read()
    assert str(info.value) == f"no readable hwmon sensor under {root}/class/hwmon: {reason}"


def test_no_hwmon_at_all(tmp_path: Path) -> None:
    with pytest.raises(SensorError) as info:
        HwmonDriver(tmp_path).probe()
    assert str(info.value) == (
        f"no hwmon sensors under {tmp_path}/class/hwmon"
        " (in a container, mount the host's /sys and set SYSFS_ROOT)"
    )


def test_chip_without_name_is_skipped(x300: Path) -> None:
    (chip_dir(x300, 2) / "name").unlink()  # amdgpu going away mid-scan
    values = HwmonDriver(x300).read()
    assert not [m for m in values if m.startswith("amdgpu")]
    assert values["k10temp_tctl_c"] == 45.5


def test_at_most_64_metrics_temperatures_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = {f"in{i}_input": "1000" for i in range(10)}
    files.update({f"temp{i}_input": "30000" for i in range(1, 61)})
    values = HwmonDriver(one_chip(tmp_path, files)).read()
    assert len(values) == 64
    assert sum(m.endswith("_c") for m in values) == 60
    assert "hwmon: more than 64 metrics, dropping testchip_in4_v" in caplog.text


def test_from_settings_reads_sysfs_root(x300: Path) -> None:
    driver = HwmonDriver.from_settings(Settings.from_env({"SYSFS_ROOT": str(x300)}))
    assert driver.read()["amdgpu_ppt_w"] == 9.8
