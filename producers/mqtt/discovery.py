"""Home Assistant MQTT discovery: every metric on the stream becomes an entity.

Configs are retained (Home Assistant reads them whenever it starts), one per
metric on `<prefix>/sensor/<source>_<sensor>/<metric>/config`; the values go
out as one JSON object per reading on the sensor's state topic. The bridge's
last will marks every entity unavailable when it dies.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import paho.mqtt.client as mqtt
import redis

from producers.mqtt.broker import Broker, make_client
from producers.mqtt.decoders import OUR_ROOT
from producers.mqtt.units import ha_unit
from shared import redis_conn
from shared.bus import parse_message
from shared.reading import NAME_RE, ReadingError, unit_of
from shared.settings import Settings

logger = logging.getLogger(__name__)

ONLINE, OFFLINE = "online", "offline"
MAX_REDIS_BACKOFF = 10.0
# How long `forget` listens for the retained configs before removing them.
FORGET_QUIET = 1.0


def node_id(source: str, sensor: str) -> str:
    """`<source>_<sensor>` in the charset Home Assistant allows in topics ([a-zA-Z0-9_-])."""
    return f"{source}_{sensor}".replace(".", "_")


def config_topic(prefix: str, source: str, sensor: str, metric: str) -> str:
    """Where one metric's discovery config is retained."""
    return f"{prefix}/sensor/{node_id(source, sensor)}/{metric}/config"


def state_topic(source: str, sensor: str) -> str:
    """Where a sensor's readings go, as one JSON object of its values."""
    return f"{OUR_ROOT}/{source}/{sensor}/state"


def availability_topic(bridge_source: str) -> str:
    """The bridge's online/offline topic (its last will)."""
    return f"{OUR_ROOT}/bridge/{bridge_source}/status"


def entity_name(metric: str) -> str:
    """ "dew_point_c" -> "Dew point": what Home Assistant shows after the device name."""
    suffix = unit_of(metric)
    base = metric[: -len(suffix) - 1] if suffix else metric
    return base.replace("_", " ").capitalize() or metric


def config_payload(source: str, sensor: str, metric: str, availability: str) -> dict[str, object]:
    """One metric's discovery config."""
    node = node_id(source, sensor)
    unit = ha_unit(metric)
    config: dict[str, object] = {
        "name": entity_name(metric),
        "unique_id": f"sensor_display_{node}_{metric}",
        "object_id": f"{node}_{metric}",
        "state_topic": state_topic(source, sensor),
        "value_template": "{{ value_json." + metric + " }}",
        "state_class": "measurement",
        "device": {
            "identifiers": [f"sensor_display_{node}"],
            "name": f"{source} {sensor}",
            "model": sensor,
            "manufacturer": "sensor-display",
        },
        "availability": [{"topic": availability}],
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "origin": {"name": "sensor-display"},
    }
    if unit.symbol is not None:
        config["unit_of_measurement"] = unit.symbol
    if unit.device_class is not None:
        config["device_class"] = unit.device_class
    return config


class Announcer(threading.Thread):
    """Follows the Redis channel and publishes configs (once per metric) and states."""

    def __init__(self, settings: Settings, client: mqtt.Client, skip: set[tuple[str, str]]):
        super().__init__(name="announcer", daemon=True)
        self.settings = settings
        self.client = client
        self.prefix = settings.ha_discovery
        self.skip = skip  # sensors Home Assistant has from their firmware already
        self.availability = availability_topic(settings.source)
        self.announced: set[tuple[str, str, str]] = set()
        self.stop_event = threading.Event()
        self.published = 0

    def prepare(self) -> None:
        """Before connecting: the last will that marks our entities unavailable."""
        self.client.will_set(self.availability, OFFLINE, qos=1, retain=True)

    def online(self) -> None:
        """After each connect: say we are here, and announce again (the broker may be new)."""
        self.announced.clear()
        self.client.publish(self.availability, ONLINE, qos=1, retain=True)

    def announce(self, source: str, sensor: str, values: dict[str, float]) -> None:
        """Configs for metrics not announced yet, then the state."""
        if (source, sensor) in self.skip:
            return
        for metric in values:
            if (source, sensor, metric) not in self.announced:
                payload = config_payload(source, sensor, metric, self.availability)
                topic = config_topic(self.prefix, source, sensor, metric)
                self.client.publish(topic, json.dumps(payload), qos=1, retain=True)
                self.announced.add((source, sensor, metric))
        self.client.publish(state_topic(source, sensor), json.dumps(values), qos=0)
        self.published += 1

    def run(self) -> None:
        """Follow the channel until closed, reconnecting to Redis with capped backoff."""
        failures = 0
        while not self.stop_event.is_set():
            try:
                self._follow()
                failures = 0
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                failures += 1
                delay = min(0.5 * 2**failures, MAX_REDIS_BACKOFF)
                if failures == 1 or failures % 10 == 0:
                    logger.warning("Home Assistant: Redis unreachable (%s); retrying", exc)
                self.stop_event.wait(delay)

    def _follow(self) -> None:
        client = redis_conn.client(self.settings)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.settings.redis_channel)
            while not self.stop_event.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    # Quiet: a good moment to check Sentinel has not moved the
                    # master under the subscription (docs/architecture.md, "Failover").
                    if redis_conn.master_moved(client, pubsub.connection):
                        raise redis.ConnectionError("the master moved; resubscribing")
                    continue
                try:
                    reading = parse_message(message["data"]).reading
                except ReadingError:
                    continue  # the web workers count and log these
                self.announce(reading.source, reading.sensor, dict(reading.values))
        finally:
            pubsub.close()
            client.close()

    def close(self) -> None:
        """Stop following and say offline (a clean exit sends no last will)."""
        self.stop_event.set()
        info = self.client.publish(self.availability, OFFLINE, qos=1, retain=True)
        if self.client.is_connected():
            info.wait_for_publish(timeout=3)


def forget(client: mqtt.Client, prefix: str, source: str, sensor: str) -> int:
    """Publish the empty config for every retained config of this sensor; how many."""
    found: list[str] = []
    ours = f"sensor_display_{node_id(source, sensor)}_"

    def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            unique = json.loads(msg.payload).get("unique_id", "") if msg.payload else ""
        except (ValueError, AttributeError):
            return
        if isinstance(unique, str) and unique.startswith(ours):
            found.append(msg.topic)

    client.on_message = on_message
    client.subscribe(f"{prefix}/sensor/{node_id(source, sensor)}/+/config", qos=1)
    seen = -1
    while seen != len(found):  # retained messages come at once; wait until they stop
        seen = len(found)
        time.sleep(FORGET_QUIET)
    for topic in found:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(timeout=5)
    return len(found)


def forget_command(settings: Settings, broker: Broker, name: str) -> int:
    """`forget SOURCE/SENSOR`: remove its entities from Home Assistant; exit status."""
    source, _, sensor = name.partition("/")
    if not (NAME_RE.fullmatch(source) and NAME_RE.fullmatch(sensor)):
        print("forget: give SOURCE/SENSOR, e.g. pi/bme280", flush=True)
        return 2
    if not settings.ha_discovery:
        print("forget: HA_DISCOVERY is not set, so nothing was announced", flush=True)
        return 2
    client = make_client(broker, f"sensor-display-forget-{settings.source}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        count = forget(client, settings.ha_discovery, source, sensor)
    finally:
        client.disconnect()
        client.loop_stop()
    print(f"removed {count} entities of {source}/{sensor} from Home Assistant", flush=True)
    return 0
