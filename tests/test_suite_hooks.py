"""The suite's own rules hold on `make test`'s xdist workers too (tests/conftest.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import pytest

def test_measures(record_property):
    record_property("figure", "probe: 42 ms")

def test_cannot_run_here():
    pytest.skip("no such engine")
"""


def run_on_two_workers(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest -n 2 on the probe, with only tests/conftest.py as configuration."""
    (folder / "test_probe.py").write_text(PROBE)
    args = ["-c", os.devnull, "--rootdir", str(folder), "-p", "tests.conftest"]
    base = {k: v for k, v in os.environ.items() if k != "SENSOR_DISPLAY_NO_SKIP"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-n", "2", str(folder)],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=100,
    )


def test_in_ci_a_skip_fails_on_a_worker_and_figures_still_print(tmp_path: Path) -> None:
    done = run_on_two_workers(tmp_path, SENSOR_DISPLAY_NO_SKIP="1")
    assert done.returncode == 1, done.stdout
    assert "skipped, but CI must run it" in done.stdout
    assert "1 failed, 1 passed" in done.stdout
    assert re.search(r"=+ measured =+\nprobe: 42 ms\n", done.stdout), done.stdout


def test_outside_ci_a_skip_stays_a_skip(tmp_path: Path) -> None:
    done = run_on_two_workers(tmp_path)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 1 skipped" in done.stdout
