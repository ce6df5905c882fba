"""Settings from the environment: ONE table, every variable named once with its default.

Each field of `Settings` is a row of the table: `setting(ENV_NAME, default,
parser, help)`. `from_env` reads every row, `.env.example` and the docs are
generated from (or tested against) the rows, so adding a setting is adding
one field (docs/architecture.md, "Settings").
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from shared.reading import NAME_RE


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Parser:
    """Turns the text of a variable into its value; `describe` says what it accepts."""

    parse: Callable[[str], Any]
    describe: str
    show: Callable[[Any], str] = str  # the default as an env file writes it


def integer(low: int, high: int, *, show: Callable[[Any], str] = str) -> Parser:
    """An integer (0x.. allowed) from `low` to `high`."""

    def parse(raw: str) -> int:
        try:
            value = int(raw, 0)
        except ValueError:
            raise ValueError(f"{raw!r} is not an integer") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return Parser(parse, f"integer {show(low)}..{show(high)}", show)


def number(low: float, high: float) -> Parser:
    """A number from `low` to `high`."""

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return Parser(parse, f"number {low:g}..{high:g}", lambda v: f"{v:g}")


def choice(*options: str, upper: bool = False) -> Parser:
    """One of `options` (case-insensitive)."""

    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise ValueError(f"{raw!r} must be {' or '.join(options)}")
        return value

    return Parser(parse, " or ".join(options) if len(options) < 3 else ", ".join(options))


def _name(raw: str) -> str:
    if not NAME_RE.fullmatch(raw):
        raise ValueError(f"{raw!r} must be 1-64 of [A-Za-z0-9._-]")
    return raw


def _names(raw: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in raw.split(",") if s.strip())
    if not names:
        raise ValueError("must name at least one")
    return names


def _flag(raw: str) -> bool:
    return raw.lower() in {"1", "true", "yes", "on"}


def _urls(raw: str) -> tuple[str, ...]:
    return tuple(u for u in re.split(r"[\s,]+", raw) if u)


TEXT = Parser(str, "text")
NAME = Parser(_name, "1-64 of [A-Za-z0-9._-]")
NAMES = Parser(_names, "comma-separated names", ",".join)
PATH = Parser(Path, "path")
FLAG = Parser(_flag, "1/true/yes/on, else off", lambda v: "1" if v else "0")
HEX = integer(0x03, 0x77, show=hex)
OPTIONAL_PATH = Parser(Path, "path", lambda v: "" if v is None else str(v))
URLS = Parser(_urls, "URLs, whitespace or comma separated", ",".join)


def setting(env: str, default: Any, parser: Parser, help: str, *, shown: str = "") -> Any:
    """One row of the table: a dataclass field that knows its variable, parser and help.

    A callable default is computed at read time; `shown` then says in words what it is.
    """
    meta = {"env": env, "parser": parser, "help": help, "shown": shown}
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


def default_source() -> str:
    """The host name, made safe for the source charset."""
    host = socket.gethostname().split(".")[0] or "localhost"
    cleaned = "".join(c if NAME_RE.fullmatch(c) else "-" for c in host)[:64]
    return cleaned or "localhost"


DAY = 86400


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every setting of every role; each field is one row of the settings table."""

    redis_url: str = setting(
        "REDIS_URL", "redis://127.0.0.1:6379/0", TEXT,
        "Redis to publish to and read from (rediss:// for TLS); `make run` and the tests"
        " start a private redis-server when it is unset.",
    )  # fmt: skip
    redis_channel: str = setting(
        "REDIS_CHANNEL", "readings", NAME,
        "The pub/sub channel; every Redis key the app uses starts with `<channel>:`.",
    )  # fmt: skip
    stream_retention: int = setting(
        "STREAM_RETENTION", 3600, integer(60, 30 * DAY),
        "Seconds of readings the Redis stream keeps for Last-Event-ID replay.",
    )  # fmt: skip
    stream_max_retention: int = setting(
        "STREAM_MAX_RETENTION", DAY, integer(60, 30 * DAY),
        "Seconds the stream holds entries the recorder has not stored yet.",
    )  # fmt: skip
    database_path: Path = setting(
        "DATABASE_PATH", Path("data/dashboard.sqlite3"), PATH,
        "The history database: the recorder writes it, web reads it.",
    )  # fmt: skip
    outbox_path: Path = setting(
        "OUTBOX_PATH", Path("data/outbox.sqlite3"), PATH,
        "A producer's own SQLite outbox (readings kept until recorded).",
    )  # fmt: skip
    outbox_max_rows: int = setting(
        "OUTBOX_MAX_ROWS", 1_000_000, integer(100, 100_000_000),
        "Most readings an outbox keeps; the oldest go first beyond it.",
    )  # fmt: skip
    outbox_max_age: int = setting(
        "OUTBOX_MAX_AGE", 7 * DAY, integer(60, 365 * DAY),
        "Seconds an outbox keeps an unrecorded reading.",
    )  # fmt: skip
    sensors: tuple[str, ...] = setting(
        "SENSORS", ("demo",), NAMES,
        "Drivers to run: demo, pi_cpu, hwmon, bme280 (a comma list), or auto.",
    )  # fmt: skip
    source: str = setting(
        "SOURCE", default_source, NAME, "The name readings are published under.",
        shown="the host name",
    )  # fmt: skip
    interval: float = setting(
        "INTERVAL", 1.0, number(0.01, float(DAY)), "Seconds between readings of a sensor."
    )
    web_workers: int = setting(
        "WEB_WORKERS", 2, integer(1, 64),
        "gunicorn workers per web server; each keeps one Redis subscription.",
    )  # fmt: skip
    heartbeat: float = setting(
        "HEARTBEAT_INTERVAL", 15.0, number(0.05, 60.0),
        "Seconds between SSE heartbeat comments (proxies close idle streams).",
    )  # fmt: skip
    port: int = setting("PORT", 9999, integer(1, 65535), "The web server's TCP port.")
    bind: str = setting("BIND", "127.0.0.1", TEXT, "The address the web server listens on.")
    bme280_address: int = setting(
        "BME280_ADDRESS", 0x76, HEX, "I2C address of the BME280 (0x76 or 0x77)."
    )
    bme280_emulate: bool = setting(
        "BME280_EMULATE", False, FLAG, "Read an emulated BME280 chip (no hardware)."
    )
    bme280_oversampling: int = setting(
        "BME280_OVERSAMPLING", 1, integer(1, 16), "BME280 oversampling (1, 2, 4, 8 or 16)."
    )
    i2c_bus: int = setting("I2C_BUS", 1, integer(0, 255), "The I2C bus number (/dev/i2c-N).")
    sysfs_root: Path = setting(
        "SYSFS_ROOT", Path("/sys"), PATH,
        "Where sysfs is mounted (a container mounts the host's elsewhere).",
    )  # fmt: skip
    access_token: str = setting(
        "ACCESS_TOKEN", "", TEXT,
        "Read token for the dashboard, stream and API; empty: open on a trusted LAN.",
    )  # fmt: skip
    query_timeout: float = setting(
        "QUERY_TIMEOUT", 10.0, number(0.05, 300.0),
        "Seconds a history read may run before it is cut and answered with a 503.",
    )  # fmt: skip
    mqtt_url: str = setting(
        "MQTT_URL", "", TEXT,
        "The MQTT broker the bridge reads, mqtt://[user:pass@]host[:port]; empty: no bridge.",
    )  # fmt: skip
    mqtt_topics: str = setting(
        "MQTT_TOPICS", "", TEXT, "Topics the bridge subscribes to instead of the defaults."
    )
    ha_discovery: str = setting(
        "HA_DISCOVERY", "", TEXT,
        "Home Assistant's discovery prefix (homeassistant); empty: no discovery.",
    )  # fmt: skip
    ingest_token: str = setting(
        "INGEST_TOKEN", "", TEXT, "Bearer token for POST /api/ingest; empty: the route is off."
    )
    alerts_file: Path | None = setting(
        "ALERTS_FILE", None, OPTIONAL_PATH, "The alert rules (TOML); empty: no alerts."
    )
    alert_urls: tuple[str, ...] = setting(
        "ALERT_URLS", (), URLS, "Apprise URLs alerts are sent to; they hold secrets."
    )
    public_url: str = setting(
        "PUBLIC_URL", "", TEXT, "The dashboard's address, for links in notifications."
    )
    log_format: str = setting("LOG_FORMAT", "text", choice("text", "json"), "Log line format.")
    log_level: str = setting(
        "LOG_LEVEL", "INFO", choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True),
        "Least severe level logged.",
    )  # fmt: skip

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build from a mapping (os.environ by default); an empty value means the default."""
        env = os.environ if env is None else env
        values = {}
        for f in table():
            raw = env.get(f.metadata["env"], "").strip()
            if not raw:
                continue
            try:
                values[f.name] = f.metadata["parser"].parse(raw)
            except ValueError as exc:
                raise SettingsError(f"{f.metadata['env']}: {exc}") from None
        return cls(**values)


def table() -> Iterator[Field]:
    """The rows of the settings table, in order."""
    return iter(fields(Settings))


def default_of(row: Field) -> Any:
    """A row's default value."""
    return row.default_factory() if row.default is MISSING else row.default  # type: ignore[misc]


def load_dotenv_file(path: str = ".env") -> None:
    """Merge a .env file into os.environ without overriding what is set."""
    from dotenv import load_dotenv

    load_dotenv(path, override=False)
