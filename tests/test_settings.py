"""Settings from the environment: defaults, parsing, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import Settings, SettingsError


def test_defaults_match_the_design() -> None:
    s = Settings.from_env({"SOURCE": "host"})
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.redis_channel == "readings"
    assert s.stream_retention == 3600
    assert s.sensors == ("demo",)
    assert s.interval == 1.0
    assert s.web_workers == 2
    assert s.port == 9999
    assert s.bme280_address == 0x76
    assert s.i2c_bus == 1
    assert s.sysfs_root == Path("/sys")
    assert s.heartbeat == 15.0


def test_values_are_parsed() -> None:
    s = Settings.from_env(
        {
            "REDIS_URL": "redis://:pw@server:6379/0",
            "SENSORS": "bme280, pi_cpu,,hwmon",
            "BME280_ADDRESS": "0x77",
            "INTERVAL": "0.5",
            "PORT": "8080",
            "SOURCE": "pi-1",
            "SYSFS_ROOT": "/host/sys",
            "STREAM_RETENTION": "7200",
        }
    )
    assert s.sensors == ("bme280", "pi_cpu", "hwmon")
    assert s.bme280_address == 0x77
    assert s.interval == 0.5
    assert s.port == 8080
    assert s.sysfs_root == Path("/host/sys")
    assert s.redis_url == "redis://:pw@server:6379/0"


def test_source_defaults_to_a_valid_host_name() -> None:
    assert Settings.from_env({}).source


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"INTERVAL": "0"}, "INTERVAL"),
        ({"INTERVAL": "fast"}, "INTERVAL"),
        ({"WEB_WORKERS": "-1"}, "WEB_WORKERS"),
        ({"SOURCE": "my pi"}, "SOURCE"),
        ({"REDIS_CHANNEL": "a b"}, "REDIS_CHANNEL"),
        ({"BME280_ADDRESS": "0x99"}, "BME280_ADDRESS"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({"SOURCE": "host", **env})
