"""Home Assistant discovery: configs, states, the last will, forgetting a sensor."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
import redis
from waiting import wait_for

from devtools.mosquitto import PASSWORD, USER, Mosquitto
from devtools.stack import ROOT
from producers.mqtt.discovery import config_payload, config_topic, entity_name
from shared.bus import Bus
from shared.reading import Reading
from tests.test_mqtt_bridge import Publisher, Stacks, bridge_log, stream_readings
from tests.test_mqtt_bridge import broker as broker  # the fixtures
from tests.test_mqtt_bridge import device as device
from tests.test_mqtt_bridge import stacks as stacks

__all__ = ["broker"]  # the fixture, shared with the bridge tests

# What Home Assistant's MQTT sensor needs, and what the issue asks for besides.
REQUIRED = {
    "name",
    "unique_id",
    "state_topic",
    "value_template",
    "state_class",
    "device",
    "availability",
}


@pytest.mark.parametrize(
    ("metric", "unit", "device_class"),
    [
        ("temperature_c", "°C", "temperature"),
        ("humidity_pct", "%", "humidity"),
        ("pressure_hpa", "hPa", "pressure"),
        ("fan2_rpm", "rpm", None),
        ("ppt_w", "W", "power"),
        ("cpu_load_pct", "%", None),
        ("door_bool", None, None),
    ],
)
def test_config_per_metric(metric: str, unit: str | None, device_class: str | None) -> None:
    config = config_payload("pi.lan", "bme280", metric, "sensor-display/bridge/x/status")
    assert config.keys() >= REQUIRED
    assert config.get("unit_of_measurement") == unit
    assert config.get("device_class") == device_class
    assert config["state_class"] == "measurement"
    assert config["state_topic"] == "sensor-display/pi.lan/bme280/state"
    assert config["value_template"] == "{{ value_json." + metric + " }}"
    assert config["device"]["identifiers"] == ["sensor_display_pi_lan_bme280"]
    # Home Assistant allows only [a-zA-Z0-9_-] in the node and object ids of the topic.
    topic = config_topic("homeassistant", "pi.lan", "bme280", metric)
    assert topic == f"homeassistant/sensor/pi_lan_bme280/{metric}/config"


def test_entity_names() -> None:
    assert entity_name("dew_point_c") == "Dew point"
    assert entity_name("fan2_rpm") == "Fan2"


class Listener:
    """A Home Assistant stand-in: records every message under the prefix and our root."""

    def __init__(self, port: int) -> None:
        self.messages: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="home-assistant")
        self.client.username_pw_set(USER, PASSWORD)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(
            [("homeassistant/#", 1), ("sensor-display/#", 1)]
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.setdefault(msg.topic, []).append(msg.payload)

    def last(self, topic: str) -> bytes | None:
        with self.lock:
            values = self.messages.get(topic)
            return values[-1] if values else None

    def configs(self) -> dict[str, dict]:
        with self.lock:
            return {
                t: json.loads(v[-1])
                for t, v in self.messages.items()
                if t.endswith("/config") and v[-1]
            }

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listener(broker: Mosquitto) -> Iterator[Listener]:
    """Home Assistant's side of the broker."""
    home_assistant = Listener(broker.port)
    yield home_assistant
    home_assistant.close()


@pytest.fixture
def bus(redis_url: str) -> Iterator[Bus]:
    """The bus other producers publish on."""
    channel = Bus(redis.Redis.from_url(redis_url))
    yield channel
    channel.client.close()


def test_home_assistant_sees_configs_states_and_the_last_will(
    stacks: Stacks,
    redis_url: str,
    broker: Mosquitto,
    listener: Listener,
    bus: Bus,
    device: Publisher,
) -> None:
    stack = stacks(redis_url, broker, HA_DISCOVERY="homeassistant")
    stack.start("bridge", ["-m", "producers.mqtt"])
    availability = "sensor-display/bridge/bridge-host/status"
    wait_for(lambda: listener.last(availability) == b"online", what="bridge online")
    values = {"temperature_c": 21.5, "humidity_pct": 40.0, "pressure_hpa": 1013.2}
    bus.publish(Reading(source="pi", sensor="bme280", ts=time.time(), seq=1, values=values))
    bus.publish(
        Reading(source="server", sensor="hwmon", ts=time.time(), seq=1, values={"fan2_rpm": 900})
    )
    # A Tasmota plug: Home Assistant has it from Tasmota already, so it is not announced.
    device.publish("tele/plug/SENSOR", b'{"SI7021":{"Temperature":20.0}}')
    state = "sensor-display/pi/bme280/state"
    wait_for(lambda: listener.last(state), what="the state")
    assert json.loads(listener.last(state) or b"") == values
    configs = wait_for(lambda: len(c := listener.configs()) >= 4 and c, what="4 configs")
    wait_for(lambda: "plug" in {r["source"] for r in stream_readings(redis_url)}, what="the plug")
    time.sleep(0.5)  # time enough for a wrong announcement of the plug to arrive
    configs = listener.configs()
    assert set(configs) == {
        "homeassistant/sensor/pi_bme280/temperature_c/config",
        "homeassistant/sensor/pi_bme280/humidity_pct/config",
        "homeassistant/sensor/pi_bme280/pressure_hpa/config",
        "homeassistant/sensor/server_hwmon/fan2_rpm/config",
    }
    for config in configs.values():
        assert config.keys() >= REQUIRED
        assert config["availability"] == [{"topic": availability}]
    assert len({c["unique_id"] for c in configs.values()}) == 4
    assert configs["homeassistant/sensor/pi_bme280/humidity_pct/config"]["device_class"] == (
        "humidity"
    )
    # Killed, it cannot say goodbye: the broker publishes its last will.
    stack.stop("bridge", signal.SIGKILL)
    wait_for(lambda: listener.last(availability) == b"offline", what="the last will")
    assert "session" in bridge_log(stack)


def test_forget_publishes_the_empty_configs(
    stacks: Stacks, redis_url: str, broker: Mosquitto, listener: Listener, bus: Bus
) -> None:
    stack = stacks(redis_url, broker, HA_DISCOVERY="homeassistant")
    stack.start("bridge", ["-m", "producers.mqtt"])
    wait_for(lambda: "subscribing" in bridge_log(stack), what="the bridge")
    time.sleep(0.3)
    for sensor in ("bme280", "demo"):
        values = {"temperature_c": 20.0, "humidity_pct": 50.0}
        bus.publish(Reading(source="pi", sensor=sensor, ts=time.time(), seq=1, values=values))
    wait_for(lambda: len(listener.configs()) == 4, what="4 configs")
    stack.stop("bridge")
    result = subprocess.run(
        [sys.executable, "-m", "producers.mqtt", "forget", "pi/demo"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "removed 2 entities of pi/demo" in result.stdout
    wait_for(lambda: len(listener.configs()) == 2, what="the demo configs removed")
    assert all("pi_bme280" in topic for topic in listener.configs())
