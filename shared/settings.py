"""Settings from the environment: every variable named once, with its default."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from shared.reading import NAME_RE


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw, 0)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is outside {low}..{high}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is outside {low}..{high}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _default_source() -> str:
    host = socket.gethostname().split(".")[0] or "localhost"
    cleaned = "".join(c if NAME_RE.fullmatch(c) else "-" for c in host)[:64]
    return cleaned or "localhost"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every setting of every role; `from_env` is the only place names appear."""

    redis_url: str  # "" means: start a private redis-server (make run, tests)
    redis_channel: str = "readings"
    stream_retention: int = 3600
    stream_max_retention: int = 86400
    database_path: Path = Path("data/dashboard.sqlite3")
    outbox_path: Path = Path("data/outbox.sqlite3")
    outbox_max_rows: int = 1_000_000
    outbox_max_age: int = 7 * 86400
    sensors: tuple[str, ...] = ("demo",)
    source: str = "localhost"
    interval: float = 1.0
    web_workers: int = 2
    heartbeat: float = 15.0
    port: int = 9999
    bind: str = "127.0.0.1"
    bme280_address: int = 0x76
    bme280_emulate: bool = False
    bme280_oversampling: int = 1
    i2c_bus: int = 1
    sysfs_root: Path = Path("/sys")
    access_token: str = ""
    query_timeout: float = 10.0
    mqtt_url: str = ""
    mqtt_topics: str = ""
    ha_discovery: str = ""
    ingest_token: str = ""
    log_format: str = "text"
    log_level: str = "INFO"
    alerts_file: Path | None = None  # the alert rules (TOML); None: no alerts
    alert_urls: tuple[str, ...] = ()  # Apprise URLs; they hold secrets
    public_url: str = ""  # the dashboard's address, for links in notifications

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build from a mapping (os.environ by default); raise SettingsError."""
        env = os.environ if env is None else env
        channel = env.get("REDIS_CHANNEL", "readings").strip() or "readings"
        if not NAME_RE.fullmatch(channel):
            raise SettingsError(f"REDIS_CHANNEL={channel!r} must be 1-64 of [A-Za-z0-9._-]")
        source = env.get("SOURCE", "").strip() or _default_source()
        if not NAME_RE.fullmatch(source):
            raise SettingsError(f"SOURCE={source!r} must be 1-64 of [A-Za-z0-9._-]")
        sensors = tuple(s.strip() for s in env.get("SENSORS", "demo").split(",") if s.strip())
        log_format = env.get("LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in {"text", "json"}:
            raise SettingsError(f"LOG_FORMAT={log_format!r} must be text or json")
        return cls(
            redis_url=env.get("REDIS_URL", "").strip(),
            redis_channel=channel,
            stream_retention=_int(env, "STREAM_RETENTION", 3600, 60, 30 * 86400),
            stream_max_retention=_int(env, "STREAM_MAX_RETENTION", 86400, 60, 30 * 86400),
            database_path=Path(env.get("DATABASE_PATH", "") or "data/dashboard.sqlite3"),
            outbox_path=Path(env.get("OUTBOX_PATH", "") or "data/outbox.sqlite3"),
            outbox_max_rows=_int(env, "OUTBOX_MAX_ROWS", 1_000_000, 100, 100_000_000),
            outbox_max_age=_int(env, "OUTBOX_MAX_AGE", 7 * 86400, 60, 365 * 86400),
            sensors=sensors or ("demo",),
            source=source,
            interval=_float(env, "INTERVAL", 1.0, 0.01, 86400.0),
            web_workers=_int(env, "WEB_WORKERS", 2, 1, 64),
            heartbeat=_float(env, "HEARTBEAT_INTERVAL", 15.0, 0.05, 60.0),
            port=_int(env, "PORT", 9999, 1, 65535),
            bind=env.get("BIND", "").strip() or "127.0.0.1",
            bme280_address=_int(env, "BME280_ADDRESS", 0x76, 0x03, 0x77),
            bme280_emulate=_bool(env, "BME280_EMULATE"),
            bme280_oversampling=_int(env, "BME280_OVERSAMPLING", 1, 1, 16),
            i2c_bus=_int(env, "I2C_BUS", 1, 0, 255),
            sysfs_root=Path(env.get("SYSFS_ROOT", "") or "/sys"),
            access_token=env.get("ACCESS_TOKEN", "").strip(),
            query_timeout=_float(env, "QUERY_TIMEOUT", 10.0, 0.05, 300.0),
            mqtt_url=env.get("MQTT_URL", "").strip(),
            mqtt_topics=env.get("MQTT_TOPICS", "").strip(),
            ha_discovery=env.get("HA_DISCOVERY", "").strip(),
            ingest_token=env.get("INGEST_TOKEN", "").strip(),
            log_format=log_format,
            log_level=(env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"),
            alerts_file=Path(env["ALERTS_FILE"]) if env.get("ALERTS_FILE", "").strip() else None,
            # Whitespace or comma separated (DESIGN.md section 8).
            alert_urls=tuple(u for u in re.split(r"[\s,]+", env.get("ALERT_URLS", "")) if u),
            public_url=env.get("PUBLIC_URL", "").strip(),
        )

    def redacted(self) -> dict[str, object]:
        """Settings for a log line, with secrets masked."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["access_token"] = "***" if self.access_token else ""
        out["redis_url"] = _redact_url(self.redis_url)
        out["alert_urls"] = f"{len(self.alert_urls)} hidden"
        out["mqtt_url"] = _redact_url(self.mqtt_url)
        out["ingest_token"] = "***" if self.ingest_token else ""
        return out


def _redact_url(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def load_dotenv_file(path: str = ".env") -> None:
    """Merge a .env file into os.environ without overriding what is set."""
    from dotenv import load_dotenv

    load_dotenv(path, override=False)
