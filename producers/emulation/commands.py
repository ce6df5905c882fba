"""Fake `vcgencmd` and `sensors` executables: small shell scripts written where asked."""

from __future__ import annotations

import shlex
from pathlib import Path

# `sensors` (lm-sensors) on the X300 tree, as the seed project parsed it: W and
# mW scaled by the tool itself; our hwmon driver reads sysfs instead.
X300_SENSORS_OUTPUT = """\
k10temp-pci-00c3
Adapter: PCI adapter
Tctl:         +45.5°C
Tccd1:        +43.2°C

amdgpu-pci-0500
Adapter: PCI adapter
vddgfx:        1.35 V
vddnb:       950.00 mV
edge:         +41.0°C
PPT:           9.80 W

nct6798-isa-0290
Adapter: ISA adapter
in0:                      1.02 V  (min =  +0.00 V, max =  +1.74 V)
fan1:                        0 RPM  (min =    0 RPM)
fan2:                      812 RPM  (min =    0 RPM)
SYSTIN:                  +34.0°C  (high = +80.0°C, hyst = +75.0°C)
CPUTIN:                  +45.5°C  (high = +80.0°C, hyst = +75.0°C)
"""


def _write_script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def write_vcgencmd(
    path: Path,
    *,
    temp: str = "47.2",
    throttled: str = "0x0",
    exit_code: int = 0,
    error: str = "",
    hang: bool = False,
) -> Path:
    """A `vcgencmd` answering measure_temp and get_throttled, or failing like the real one."""
    if hang:  # a firmware mailbox that never answers
        return _write_script(path, "exec sleep 60\n")
    if exit_code:
        return _write_script(path, f"echo {shlex.quote(error)} >&2\nexit {exit_code}\n")
    return _write_script(
        path,
        'case "$1" in\n'
        f"  measure_temp) echo {shlex.quote(f'temp={temp}' + chr(39) + 'C')} ;;\n"
        f"  get_throttled) echo {shlex.quote(f'throttled={throttled}')} ;;\n"
        '  *) echo "error=1 error_msg=\\"Command not registered\\"" ; exit 255 ;;\n'
        "esac\n",
    )


def write_sensors(path: Path, output: str = X300_SENSORS_OUTPUT) -> Path:
    """A `sensors` printing `output` (by default the X300's, matching build_x300_tree)."""
    return _write_script(path, f"cat <<'EOF'\n{output}EOF\n")
