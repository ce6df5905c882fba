"""Fake sysfs trees (a Raspberry Pi, an AMD X300 home server) for SYSFS_ROOT."""

from __future__ import annotations

import os
from pathlib import Path

# device directory -> {file: content}; class/ entries become symlinks to them,
# as in the real /sys, so the drivers are tested through the links too.
PI_DEVICES: dict[str, dict[str, str]] = {
    "devices/virtual/thermal/thermal_zone0": {"type": "cpu-thermal", "temp": "47236"},
    "devices/virtual/thermal/thermal_zone0/hwmon0": {"name": "cpu_thermal", "temp1_input": "47236"},
    "devices/virtual/thermal/cooling_device0": {"type": "gpio-fan", "cur_state": "0"},
    "devices/platform/soc/soc:firmware/raspberrypi-hwmon/hwmon/hwmon1": {
        "name": "rpi_volt",
        "in0_lcrit_alarm": "0",
    },
}
PI_LINKS = {
    "class/thermal/thermal_zone0": "devices/virtual/thermal/thermal_zone0",
    "class/thermal/cooling_device0": "devices/virtual/thermal/cooling_device0",
    "class/hwmon/hwmon0": "devices/virtual/thermal/thermal_zone0/hwmon0",
    "class/hwmon/hwmon1": "devices/platform/soc/soc:firmware/raspberrypi-hwmon/hwmon/hwmon1",
}
X300_DEVICES: dict[str, dict[str, str]] = {
    "devices/virtual/thermal/thermal_zone0": {"type": "acpitz", "temp": "16800"},
    "devices/pci0000:00/0000:00:18.3/hwmon/hwmon0": {
        "name": "k10temp",
        "temp1_input": "45500", "temp1_label": "Tctl",
        "temp3_input": "43250", "temp3_label": "Tccd1",
    },
    "devices/pci0000:00/0000:00:02.4/0000:01:00.0/nvme/nvme0/hwmon1": {
        "name": "nvme",
        "temp1_input": "38850", "temp1_label": "Composite", "temp1_max": "84850",
        "temp2_input": "41850", "temp2_label": "Sensor 1",
    },
    "devices/pci0000:00/0000:00:08.1/0000:05:00.0/hwmon/hwmon2": {
        "name": "amdgpu",
        "temp1_input": "41000", "temp1_label": "edge",
        "power1_average": "9800000", "power1_label": "PPT", "power1_cap": "15000000",
        "in0_input": "1350", "in0_label": "vddgfx",
        "in1_input": "950", "in1_label": "vddnb",
        "freq1_input": "400000000", "freq1_label": "sclk",
    },
    "devices/platform/nct6775.656/hwmon/hwmon3": {
        "name": "nct6798",
        "fan1_input": "0", "fan2_input": "812", "fan2_min": "0", "pwm2": "96",
        "in0_input": "1024", "in1_input": "1008", "in2_input": "3392", "in8_input": "3312",
        "temp1_input": "34000", "temp1_label": "SYSTIN",
        "temp2_input": "45500", "temp2_label": "CPUTIN",
        # An unconnected input reads a value no room or chip can have.
        "temp3_input": "-62000", "temp3_label": "AUXTIN0",
    },
}  # fmt: skip
X300_LINKS = {
    "class/thermal/thermal_zone0": "devices/virtual/thermal/thermal_zone0",
    "class/hwmon/hwmon0": "devices/pci0000:00/0000:00:18.3/hwmon/hwmon0",
    "class/hwmon/hwmon1": "devices/pci0000:00/0000:00:02.4/0000:01:00.0/nvme/nvme0/hwmon1",
    "class/hwmon/hwmon2": "devices/pci0000:00/0000:00:08.1/0000:05:00.0/hwmon/hwmon2",
    "class/hwmon/hwmon3": "devices/platform/nct6775.656/hwmon/hwmon3",
}


def build_tree(root: Path, devices: dict[str, dict[str, str]], links: dict[str, str]) -> Path:
    """Write `devices` under `root` and the class/ symlinks to them; return `root`."""
    for directory, files in devices.items():
        (root / directory).mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (root / directory / name).write_text(content + "\n")
    for link, target in links.items():
        path = root / link
        path.parent.mkdir(parents=True, exist_ok=True)
        # Relative like the kernel's links, so a copied or mounted tree still works.
        path.symlink_to(os.path.relpath(root / target, path.parent))
    return root


def build_pi_tree(root: Path) -> Path:
    """A Raspberry Pi 4's thermal zone and hwmon chips: the CPU at 47.236 °C."""
    return build_tree(root, PI_DEVICES, PI_LINKS)


def build_x300_tree(root: Path) -> Path:
    """An ASRock X300 (Ryzen APU): k10temp Tctl 45.5 °C, nct6798 fan2 812 rpm, PPT 9.8 W."""
    return build_tree(root, X300_DEVICES, X300_LINKS)
