"""Settings from the environment: ONE table, every variable named once with its default.

Each field of `Settings` is a row of the table: `setting(ENV_NAME, default,
parser, help)`. `from_env` reads every row, `.env.example` and the docs are
generated from (or tested against) the rows, so adding a setting is adding
one field (docs/architecture.md, "Settings").
"""

from __future__ import annotations

import ipaddress
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


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _hosts(raw: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in raw.split(",") if h.strip())


def _networks(raw: str) -> tuple[IPNetwork, ...]:
    out = []
    for item in (i.strip() for i in raw.split(",")):
        if item:
            try:
                out.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(out)


def _urls(raw: str) -> tuple[str, ...]:
    return tuple(u for u in re.split(r"[\s,]+", raw) if u)


def _sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    out = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, _, port = item.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{item!r} is not host:port")
        out.append((host, int(port)))
    return tuple(out)


def _show_sentinels(value: tuple[tuple[str, int], ...]) -> str:
    return ",".join(f"{host}:{port}" for host, port in value)


TEXT = Parser(str, "text")
NAME = Parser(_name, "1-64 of [A-Za-z0-9._-]")
NAMES = Parser(_names, "comma-separated names", ",".join)
PATH = Parser(Path, "path")
FLAG = Parser(_flag, "1/true/yes/on, else off", lambda v: "1" if v else "0")
HEX = integer(0x03, 0x77, show=hex)
OPTIONAL_PATH = Parser(Path, "path", lambda v: "" if v is None else str(v))
HOSTS = Parser(_hosts, "comma-separated host names", ",".join)
NETWORKS = Parser(
    _networks, "comma-separated addresses or networks", lambda v: ",".join(map(str, v))
)
URLS = Parser(_urls, "URLs, whitespace or comma separated", ",".join)
SENTINELS = Parser(_sentinels, "comma-separated host:port", _show_sentinels)


def setting(
    env: str, default: Any, parser: Parser, help: str, *, shown: str = "", secret: bool = False
) -> Any:
    """One row of the table: a dataclass field that knows its variable, parser and help.

    A callable default is computed at read time; `shown` then says in words what it is.
    A `secret` value (a password, a token, a URL with one) is never logged or shown.
    """
    meta = {"env": env, "parser": parser, "help": help, "shown": shown, "secret": secret}
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
        secret=True,
    )  # fmt: skip
    redis_channel: str = setting(
        "REDIS_CHANNEL", "readings", NAME,
        "The pub/sub channel; every Redis key the app uses starts with `<channel>:`.",
    )  # fmt: skip
    redis_sentinels: tuple[tuple[str, int], ...] = setting(
        "REDIS_SENTINELS", (), SENTINELS,
        "Redis Sentinels (host:port,...); set, every process finds the master through them"
        " and follows a failover, and REDIS_URL gives only the user, password and database"
        " (docs/redis-ha.md).",
    )  # fmt: skip
    redis_sentinel_master: str = setting(
        "REDIS_SENTINEL_MASTER", "mymaster", NAME,
        "The name the Sentinels monitor the master under.",
    )  # fmt: skip
    redis_sentinel_password: str = setting(
        "REDIS_SENTINEL_PASSWORD", "", TEXT,
        "Password for the Sentinels (their `default` user, which can only look the master up);"
        " empty: none.",
        secret=True,
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
    history_raw_days: int = setting(
        "HISTORY_RAW_DAYS", 14, integer(0, 36500),
        "Days the history keeps every reading (0 = forever); docs/history.md.",
    )  # fmt: skip
    history_minute_days: int = setting(
        "HISTORY_MINUTE_DAYS", 90, integer(0, 36500),
        "Days it keeps per-minute min/avg/max/n (0 = forever).",
    )  # fmt: skip
    history_hour_days: int = setting(
        "HISTORY_HOUR_DAYS", 0, integer(0, 36500),
        "Days it keeps per-hour min/avg/max/n (0 = forever).",
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
        secret=True,
    )  # fmt: skip
    view_token: str = setting(
        "VIEW_TOKEN", "", TEXT,
        "Read-only token beside ACCESS_TOKEN, for wall screens: /display?token=<it> once"
        " (docs/display.md); needs ACCESS_TOKEN.",
        secret=True,
    )  # fmt: skip
    query_timeout: float = setting(
        "QUERY_TIMEOUT", 10.0, number(0.05, 300.0),
        "Seconds a history read may run before it is cut and answered with a 503.",
    )  # fmt: skip
    trusted_hosts: tuple[str, ...] = setting(
        "TRUSTED_HOSTS", (), HOSTS,
        "Host names the dashboard answers to besides localhost and IP addresses"
        " (.example.org: its subdomains, *: any); others get 400, which stops DNS rebinding.",
    )  # fmt: skip
    trusted_proxies: tuple[IPNetwork, ...] = setting(
        "TRUSTED_PROXIES", (), NETWORKS,
        "Proxies whose X-Forwarded-For names the client (e.g. NPM's Docker network);"
        " empty: the peer's own address is the client's.",
    )  # fmt: skip
    stream_max_per_client: int = setting(
        "STREAM_MAX_PER_CLIENT", 32, integer(1, 100_000),
        "Open /stream connections one client address may hold, per web worker.",
    )  # fmt: skip
    max_sensors: int = setting(
        "MAX_SENSORS", 1000, integer(1, 1_000_000),
        "Most sensors (source/sensor pairs) a web worker keeps live and the history holds;"
        " readings of any further one are refused (not stored), logged and counted in /metrics.",
    )  # fmt: skip
    sensor_expiry_days: float = setting(
        "SENSOR_EXPIRY_DAYS", 7.0, number(0.0, 3650.0),
        "Days after which a sensor that sent nothing leaves the live state (the stream's"
        " snapshot); its history stays. 0: never.",
    )  # fmt: skip
    stream_max_clients: int = setting(
        "STREAM_MAX_CLIENTS", 10_000, integer(1, 1_000_000),
        "Open /stream connections a web worker holds in all; more get 429.",
    )  # fmt: skip
    mqtt_url: str = setting(
        "MQTT_URL", "", TEXT,
        "The broker the MQTT bridge reads, mqtt://[user:pass@]host[:port] (mqtts:// for TLS);"
        " empty: no bridge. `make run` starts the bridge when it is set.",
        secret=True,
    )  # fmt: skip
    mqtt_topics: str = setting(
        "MQTT_TOPICS", "", TEXT,
        "The bridge's subscriptions instead of the defaults: comma-separated firmware=filter,"
        " firmware one of tasmota, zigbee2mqtt, esphome, readings (docs/mqtt.md).",
    )  # fmt: skip
    ha_discovery: str = setting(
        "HA_DISCOVERY", "", TEXT,
        "Home Assistant's discovery prefix (homeassistant): the bridge publishes every metric"
        " as an entity; empty: no discovery.",
    )  # fmt: skip
    ingest_token: str = setting(
        "INGEST_TOKEN", "", TEXT,
        "Bearer token for POST /api/ingest (devices without MQTT); empty: the route is off (404).",
        secret=True,
    )  # fmt: skip
    alerts_file: Path | None = setting(
        "ALERTS_FILE", None, OPTIONAL_PATH, "The alert rules (TOML); empty: no alerts."
    )
    alert_urls: tuple[str, ...] = setting(
        "ALERT_URLS", (), URLS, "Apprise URLs alerts are sent to; they hold secrets.", secret=True
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
