"""The broker connection: MQTT_URL parsed, and a paho-mqtt client set up for it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
KEEPALIVE = 30
# Reconnect backoff, seconds: doubling from the first to the cap. The cap
# keeps a bridge back within seconds of a broker restart.
RECONNECT_MIN = 1
RECONNECT_MAX = 5


@dataclass(frozen=True, slots=True)
class Broker:
    """Where the broker is and how to log in."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __str__(self) -> str:
        """The URL without the password, for logs."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_url(url: str) -> Broker:
    """`mqtt://[user:pass@]host[:port]` (mqtts:// for TLS); ValueError naming the problem."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"MQTT_URL is not a URL: {exc}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError("MQTT_URL must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError("MQTT_URL names no host")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError("MQTT_URL takes no path or query: mqtt://[user:pass@]host[:port]")
    return Broker(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=parts.scheme == "mqtts",
    )


def make_client(broker: Broker, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    """A client with a persistent session: the broker keeps QoS 1 messages while we are away."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        # The system's CAs (SSL_CERT_FILE points at another bundle), host name checked.
        client.tls_set()
    client.reconnect_delay_set(RECONNECT_MIN, RECONNECT_MAX)
    return client
