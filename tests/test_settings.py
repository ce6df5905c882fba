"""Settings from the environment: defaults, parsing, and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devtools import settings_doc
from shared.settings import Settings, SettingsError, default_of, table


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


ROOT = Path(__file__).resolve().parent.parent


def test_every_row_has_a_variable_a_parser_and_a_sentence() -> None:
    names = [row.metadata["env"] for row in table()]
    assert len(names) == len(set(names))
    for row in table():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", row.metadata["env"])
        assert row.metadata["help"].endswith("."), row.metadata["env"]


def test_the_documented_defaults_read_back_as_the_defaults() -> None:
    """What docs/settings.md shows as a default is what the program uses."""
    shown = {
        row.metadata["env"]: row.metadata["parser"].show(default_of(row))
        for row in table()
        if not row.metadata["shown"]
    }
    assert Settings.from_env(shown) == Settings.from_env({"SOURCE": Settings.from_env({}).source})


def test_docs_settings_is_generated_from_the_table() -> None:
    committed = (ROOT / "docs" / "settings.md").read_text()
    assert committed == settings_doc.render(), (
        "docs/settings.md is stale: python -m devtools.settings_doc > docs/settings.md"
    )


def env_example() -> dict[str, str]:
    """KEY=value lines of .env.example, and `#   KEY=value` examples in its comments."""
    text = (ROOT / ".env.example").read_text()
    return dict(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=(\S*)", text, flags=re.M))


def test_env_example_names_every_setting() -> None:
    missing = {row.metadata["env"] for row in table()} - set(env_example())
    assert missing == set(), f"add these to .env.example: {sorted(missing)}"


def test_env_example_values_are_valid_settings() -> None:
    text = (ROOT / ".env.example").read_text()
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(\S*)$", text, flags=re.M))
    Settings.from_env(values)


def test_env_example_names_only_settings_or_compose_variables() -> None:
    compose = "".join(
        path.read_text()
        for path in [ROOT / "docker-compose.yml", *ROOT.glob("deploy/compose/*.yml")]
    )
    ours = {row.metadata["env"] for row in table()}
    unknown = {n for n in env_example() if n not in ours and f"${{{n}" not in compose}
    assert unknown == set(), f"neither a setting nor used by a compose file: {unknown}"
