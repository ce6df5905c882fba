"""A fake `vcgencmd` executable: a small shell script written where asked."""

from __future__ import annotations

import shlex
from pathlib import Path


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
