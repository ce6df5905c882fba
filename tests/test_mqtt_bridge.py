"""The MQTT bridge with real parts: Debian's mosquitto (password, no anonymous), redis-server,
the recorder, `python -m web`, and `python -m producers.mqtt` as processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import redis
from waiting import wait_for

from devtools.mosquitto import PASSWORD, USER, Mosquitto
from devtools.redis_server import RedisServer, free_port
from devtools.stack import ROOT, Stack, wait_http
from producers.mqtt.bridge import Bridge
from producers.mqtt.broker import make_client, parse_url
from producers.mqtt.decoders import default_routes
from producers.outbox import Outbox
from producers.runner import Producer
from shared.settings import Settings
from tests.sse_client import SSEClient
from tests.test_mqtt_decoders import ESPHOME_TEMP_CONFIG, TASMOTA_BME280, ZIGBEE_AQARA

pytestmark = pytest.mark.slow


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A private mosquitto on loopback with a password file."""
    with Mosquitto() as running:
        yield running


class Publisher:
    """A device: a paho client with its own persistent session, publishing at QoS 1."""

    def __init__(self, port: int, client_id: str = "test-device") -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.username_pw_set(USER, PASSWORD)
        self.client.reconnect_delay_set(0, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        wait_for(self.client.is_connected, what="the test publisher connected")

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        """Publish at QoS 1 (queued by paho while the broker is away)."""
        self.client.publish(topic, payload, qos=1, retain=retain)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def bridge_log(stack: Stack) -> str:
    return (stack.log_dir / "bridge.log").read_text(errors="replace")  # type: ignore[operator]


def stream_readings(redis_url: str) -> list[dict]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [json.loads(f[b"r"]) for _, f in client.xrange("readings:stream")]
    finally:
        client.close()


def make_stack(tmp_path: Path, redis_url: str, broker: Mosquitto, **env: str) -> Stack:
    return Stack.create(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "MQTT_URL": broker.url,
            "SOURCE": "bridge-host",
            "HEARTBEAT_INTERVAL": "1",
            "WEB_WORKERS": "1",
            **env,
        },
        log_dir=tmp_path / "logs",
    )


@pytest.fixture
def device(broker: Mosquitto) -> Iterator[Publisher]:
    """A device on the broker."""
    publisher = Publisher(broker.port)
    yield publisher
    publisher.close()


class Stacks:
    """Makes a test's stacks (a Redis and a broker each), and stops every one after it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: list[Stack] = []

    def __call__(self, redis_url: str, broker: Mosquitto, name: str = "", **env: str) -> Stack:
        self.made.append(make_stack(self.folder / name, redis_url, broker, **env))
        return self.made[-1]

    def stop_all(self) -> None:
        """Stop every process of every stack made."""
        for stack in self.made:
            stack.stop_all()


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[Stacks]:
    """The test's stacks, all stopped after it."""
    made = Stacks(tmp_path)
    yield made
    made.stop_all()


def start_bridge(stack: Stack) -> subprocess.Popen:
    """Start `python -m producers.mqtt` and wait until it has a new session at its broker."""
    bridge = stack.start("bridge", ["-m", "producers.mqtt"])
    wait_for(lambda: "session new" in bridge_log(stack), what="bridge connected")
    return bridge


@pytest.mark.serial  # "within a second" is measured
def test_firmware_messages_reach_the_stream_and_history_within_a_second(
    stacks: Stacks, redis_url: str, broker: Mosquitto, device: Publisher
) -> None:
    stack = stacks(redis_url, broker)
    stack.start("recorder", ["-m", "recorder"])
    url = stack.start_web()
    stack.start("bridge", ["-m", "producers.mqtt"])
    wait_for(lambda: "subscribing" in bridge_log(stack), what="bridge subscribed")
    sse = SSEClient([url])
    sse.start()
    wait_for(lambda: sse.connects, what="SSE connected")
    config_topic = "homeassistant/sensor/livingroom/living_room_temperature/config"
    device.publish(config_topic, ESPHOME_TEMP_CONFIG, retain=True)
    # The device's clock: local time with its offset (SetOption52).
    tasmota = json.loads(TASMOTA_BME280)
    tasmota["Time"] = datetime.now().astimezone().isoformat(timespec="seconds")
    tasmota_now = json.dumps(tasmota)
    sent = {}
    for key, topic, payload in [
        (("tasmota_C26D46", "bme280"), "tele/tasmota_C26D46/SENSOR", tasmota_now),
        (("zigbee2mqtt", "Living_Room"), "zigbee2mqtt/Living Room", ZIGBEE_AQARA),
        (("livingroom", "esphome"), "livingroom/sensor/living_room_temperature/state", "21.5"),
    ]:
        sent[key] = time.time()
        device.publish(topic, payload)
    got = wait_for(
        lambda: (
            {r.key: r.at for r in sse.live if r.key in sent}.keys() == sent.keys()
            and {r.key: r.at for r in sse.live if r.key in sent}
        ),
        timeout=10,
        what="every firmware's reading on /stream",
    )
    sse.stop()
    delays = {key: got[key] - sent[key] for key in sent}
    assert max(delays.values()) < 1.0, delays

    def history() -> dict:
        with urllib.request.urlopen(f"{url}/api/readings?limit=100") as response:
            rows = json.load(response)["readings"]
        return {(r["source"], r["sensor"]): r["values"] for r in rows}

    stored = wait_for(lambda: sent.keys() <= history().keys() and history(), timeout=5)
    assert stored[("tasmota_C26D46", "bme280")] == {
        "temperature_c": 24.1,
        "humidity_pct": 36.7,
        "dew_point_c": 8.3,
        "pressure_hpa": 1013.5,
    }
    assert stored[("zigbee2mqtt", "Living_Room")]["temperature_c"] == 23.17
    assert stored[("livingroom", "esphome")] == {"living_room_temperature_c": 21.5}
    assert "field linkquality has no known unit" in bridge_log(stack)


def test_broker_restart_loses_no_qos1_message(
    stacks: Stacks, redis_url: str, broker: Mosquitto, device: Publisher
) -> None:
    stack = stacks(redis_url, broker)
    start_bridge(stack)
    device.publish("tele/plug/SENSOR", b'{"SI7021":{"Temperature":20.0}}')
    wait_for(lambda: len(stream_readings(redis_url)) == 1, what="the first reading")
    broker.stop()
    broker.start()
    restarted = time.monotonic()
    # The device is back first and publishes while the bridge is still away:
    # the broker queues these for the bridge's persistent session.
    wait_for(device.client.is_connected, what="the device reconnected")
    for i in range(1, 21):
        device.publish("tele/plug/SENSOR", json.dumps({"SI7021": {"Temperature": 20 + i}}))
    wait_for(
        lambda: bridge_log(stack).count("connected (session") == 2,
        timeout=10,
        what="the bridge reconnected",
    )
    assert time.monotonic() - restarted < 10
    readings = wait_for(lambda: len(r := stream_readings(redis_url)) == 21 and r, timeout=10)
    temps = [r["values"]["temperature_c"] for r in readings]
    assert sorted(temps) == [20.0 + i for i in range(21)]
    seqs = [r["seq"] for r in readings]
    assert seqs == list(range(seqs[0], seqs[0] + 21))  # one sensor, seq by one


def test_bridge_restart_gets_what_the_broker_kept(
    stacks: Stacks, redis_url: str, broker: Mosquitto, device: Publisher
) -> None:
    stack = stacks(redis_url, broker)
    start_bridge(stack)
    stack.stop("bridge", signal.SIGKILL)
    for i in range(10):
        device.publish("zigbee2mqtt/attic", json.dumps({"temperature": i}))
    stack.start("bridge", ["-m", "producers.mqtt"])
    readings = wait_for(lambda: len(r := stream_readings(redis_url)) == 10 and r, timeout=15)
    assert sorted(r["values"]["temperature_c"] for r in readings) == list(range(10))
    assert "session resumed" in bridge_log(stack)


def test_redis_away_the_outbox_replays(
    stacks: Stacks, broker: Mosquitto, device: Publisher
) -> None:
    own = RedisServer().start()
    port = own.port
    try:
        stack = stacks(own.url, broker)
        start_bridge(stack)
        own.stop()
        for i in range(10):
            device.publish("zigbee2mqtt/cellar", json.dumps({"humidity": 50 + i}))
        wait_for(lambda: "Redis unreachable" in bridge_log(stack), what="the bridge noticed")
        own = RedisServer(port=port).start()
        readings = wait_for(lambda: len(r := stream_readings(own.url)) == 10 and r, timeout=20)
        assert [r["values"]["humidity_pct"] for r in readings] == [50.0 + i for i in range(10)]
    finally:
        own.stop()


HOSTILE = [
    ("tele/x/SENSOR", b"\xff\xfe not json"),
    ("tele/x/SENSOR", b"{" * 200_000),
    ("zigbee2mqtt/x", b"[" * 50_000 + b"]" * 50_000),
    ("zigbee2mqtt/x", b'{"temperature": NaN}'),
    ("zigbee2mqtt/\u2603", b'{"temperature": 1}'),
    ("zigbee2mqtt/x", json.dumps({f"f{i}": i for i in range(10_000)}).encode()),
    ("x/sensor/y/state", b"12"),
    ("sensor-display/readings", b'{"source": "a b", "sensor": "c", "ts": 1, "values": {}}'),
]


def metrics(url: str) -> dict[str, float]:
    """The bridge's samples of /metrics: `name{labels}` -> value."""
    with urllib.request.urlopen(f"{url}/metrics") as response:
        text = response.read().decode()
    return {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("sensor_display_mqtt_")
    }


def test_hostile_payloads_are_dropped_counted_in_metrics_and_the_bridge_keeps_running(
    stacks: Stacks, redis_url: str, broker: Mosquitto, device: Publisher
) -> None:
    stack = stacks(redis_url, broker)
    url = stack.start_web()
    bridge = start_bridge(stack)
    for topic, payload in HOSTILE:
        device.publish(topic, payload)
    device.publish("zigbee2mqtt/after", b'{"temperature": 19.5}')
    [reading] = wait_for(lambda: stream_readings(redis_url), what="the good message")
    assert reading["values"] == {"temperature_c": 19.5}
    assert bridge.poll() is None
    log = bridge_log(stack)
    assert log.count("dropped") >= 6, log
    assert "Traceback" not in log
    b = 'bridge="bridge-host"'
    seen = wait_for(
        lambda: (m := metrics(url)).get(f"sensor_display_mqtt_published_total{{{b}}}") and m,
        what="the bridge's counters in /metrics",
    )
    assert {name: seen[f"sensor_display_mqtt_refused_total{{{b},reason=\"{name}\"}}"]
            for name in ("not_json", "too_large", "bad_name", "invalid_reading")} == {
        "not_json": 2, "too_large": 3, "bad_name": 1, "invalid_reading": 1
    }  # fmt: skip
    assert seen[f'sensor_display_mqtt_refused_total{{{b},reason="wrong_shape"}}'] == 0
    assert seen[f'sensor_display_mqtt_messages_total{{{b},firmware="zigbee2mqtt"}}'] == 5
    assert seen[f'sensor_display_mqtt_messages_total{{{b},firmware="tasmota"}}'] == 2
    assert seen[f'sensor_display_mqtt_readings_total{{{b},firmware="zigbee2mqtt"}}'] == 1
    assert seen[f'sensor_display_mqtt_unknown_fields_total{{{b},firmware="esphome"}}'] == 1
    assert seen[f"sensor_display_mqtt_published_total{{{b}}}"] == 1
    assert seen[f"sensor_display_mqtt_connected{{{b}}}"] == 1
    assert seen[f"sensor_display_mqtt_reconnects_total{{{b}}}"] == 0
    assert seen[f"sensor_display_mqtt_status_age_seconds{{{b}}}"] < 10
    broker.stop()
    broker.start()  # at once: while it is down, another process may take its port
    wait_for(
        lambda: metrics(url)[f"sensor_display_mqtt_reconnects_total{{{b}}}"] == 1,
        timeout=15,
        what="/metrics counting the reconnect",
    )


def bridge_on(outbox: Outbox, settings: Settings) -> Bridge:
    """A bridge in this process, storing into `outbox`."""
    return Bridge(default_routes(), outbox, Producer(settings, [], outbox))


def test_stats_count_what_was_dropped(tmp_path: Path, settings) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    bridge = bridge_on(outbox, settings)
    for topic, payload in HOSTILE:
        bridge.handle(topic, payload)
    bridge.handle("zigbee2mqtt/ok", ZIGBEE_AQARA)
    bridge.handle("zigbee2mqtt/ok", ZIGBEE_AQARA)
    bridge.handle("zigbee2mqtt/bridge/state", b"online")
    bridge.handle("not/subscribed", b"1")
    stats = bridge.stats
    assert sum(stats.dropped.values()) == 7
    assert stats.refused == {"not_json": 2, "too_large": 3, "bad_name": 1, "invalid_reading": 1}
    assert stats.unknown["esphome"] == 1  # a state with no discovery config
    assert stats.unknown["zigbee2mqtt"] == 4  # linkquality and voltage, twice
    assert stats.readings["zigbee2mqtt"] == 2
    assert stats.ignored == 2
    seqs = [r.seq for _, r in outbox.unsent()]
    assert seqs[1] == seqs[0] + 1
    outbox.close()


def connect_bridge(
    broker: Mosquitto, outbox: Outbox, settings, lose_acks: bool = False
) -> tuple[Bridge, mqtt.Client]:
    """A bridge in this process on a real paho client, subscribed before it returns."""
    bridge = bridge_on(outbox, settings)
    client = make_client(parse_url(broker.url), "redelivery-test", manual_ack=True)
    if lose_acks:
        client.ack = lambda mid, qos: None  # type: ignore[method-assign]  # PUBACK never sent
    subscribed = threading.Event()
    client.on_connect = bridge.on_connect
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = bridge.on_message
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert subscribed.wait(10), "the bridge did not subscribe"
    return bridge, client


def test_a_redelivery_of_a_stored_message_is_not_stored_again(
    tmp_path: Path, settings, broker: Mosquitto
) -> None:
    """The bridge stores three messages and dies before acknowledging them: mosquitto
    delivers them again (DUP) to the restarted bridge, which acknowledges without storing."""
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path)
    bridge, client = connect_bridge(broker, outbox, settings, lose_acks=True)
    device = Publisher(broker.port)
    try:
        for _ in range(3):  # three real readings that happen to be equal: all kept
            device.publish("zigbee2mqtt/attic", b'{"temperature": 20.5}')
        wait_for(lambda: len(outbox.unsent()) == 3, what="three messages stored")
        client.loop_stop()
        client.socket().close()  # the bridge dies: no DISCONNECT, no PUBACK
        outbox.close()
        outbox = Outbox(path)
        bridge, client = connect_bridge(broker, outbox, settings)
        wait_for(lambda: bridge.stats.redelivered == 3, what="mosquitto's redeliveries")
        assert len(outbox.unsent()) == 3
        assert sum(bridge.stats.messages.values()) == 0
        client.disconnect()
        client.loop_stop()
        # Acknowledged this time: the next connection gets only what is new.
        bridge, client = connect_bridge(broker, outbox, settings)
        device.publish("zigbee2mqtt/attic", b'{"temperature": 21.0}')
        wait_for(lambda: len(outbox.unsent()) == 4, what="the new message")
        assert bridge.stats.redelivered == 0
        assert sum(bridge.stats.messages.values()) == 1
        client.disconnect()
        client.loop_stop()
    finally:
        device.close()
        outbox.close()


def test_storage_failure_is_never_acknowledged(tmp_path: Path, settings) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    bridge = bridge_on(outbox, settings)
    acked = []

    class Client:
        def ack(self, mid: int, qos: int) -> None:
            acked.append(mid)

    msg = mqtt.MQTTMessage(mid=1, topic=b"zigbee2mqtt/x")
    msg.payload = b'{"temperature": 1}'
    bridge.on_message(Client(), None, msg)  # type: ignore[arg-type]
    assert acked == [1]
    outbox.conn.execute("PRAGMA query_only = ON")  # the disk is full, as far as we know
    msg = mqtt.MQTTMessage(mid=2, topic=b"zigbee2mqtt/x")
    msg.payload = b'{"temperature": 2}'
    bridge.on_message(Client(), None, msg)  # type: ignore[arg-type]
    assert acked == [1]
    assert bridge.failed.is_set()
    outbox.close()


def test_mosquitto_refuses_anonymous_clients(broker: Mosquitto) -> None:
    reasons: list = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="anonymous")
    client.on_connect = lambda c, userdata, flags, reason, props: reasons.append(reason)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        wait_for(lambda: reasons, what="the broker's answer")
    finally:
        client.loop_stop()
    assert reasons[0].is_failure


def test_make_run_starts_the_bridge_when_mqtt_url_is_set(
    tmp_path: Path, broker: Mosquitto, device: Publisher
) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "OUTBOX_PATH", "DATABASE_PATH"}
    }
    env.update(MQTT_URL=broker.url, DATA_DIR=str(tmp_path), PORT=str(port), SENSORS="demo")
    run = subprocess.Popen(
        [sys.executable, "-m", "devtools.run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, proc=run)

        def sensors() -> set:
            device.publish("tele/kitchen/SENSOR", b'{"SHT3X":{"Temperature":21.0}}')
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sensors") as response:
                return {(s["source"], s["sensor"]) for s in json.load(response)["sensors"]}

        wait_for(lambda: ("kitchen", "sht3x") in sensors(), timeout=30, what="the plug")
    finally:
        os.killpg(run.pid, signal.SIGINT)
        output = run.communicate(timeout=30)[0].decode(errors="replace")
    assert "mqtt:" in output
    assert (tmp_path / "mqtt-outbox.sqlite3").exists()


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for localhost signed by it (openssl)."""
    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    cert, key, csr = folder / "server.crt", folder / "server.key", folder / "server.csr"
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for command in (
        f"req -x509 -newkey rsa:2048 -nodes -keyout {ca_key} -out {ca} -days 2 -subj /CN=test-ca",
        f"req -newkey rsa:2048 -nodes -keyout {key} -out {csr} -subj /CN=localhost",
        f"x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -out {cert} -days 2"
        f" -extfile {ext}",
    ):
        subprocess.run(["openssl", *command.split()], check=True, capture_output=True)
    key.chmod(0o644)  # mosquitto runs as this user and reads it
    return ca, cert, key


def test_mqtts_uses_tls_and_checks_the_certificate(
    tmp_path: Path, redis_url: str, stacks: Stacks
) -> None:
    ca, cert, key = make_certificates(tmp_path)
    with Mosquitto(tls=(ca, cert, key)) as broker:
        assert broker.url.startswith("mqtts://")
        untrusted = stacks(redis_url, broker, "untrusted")
        trusted = stacks(redis_url, broker, "trusted", SSL_CERT_FILE=str(ca))
        untrusted.start("bridge", ["-m", "producers.mqtt"])
        wait_for(
            lambda: "TLS certificate not trusted" in bridge_log(untrusted),
            what="the untrusted bridge refusing the broker",
        )
        untrusted.stop_all()
        start_bridge(trusted)
        device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-device")
        device.username_pw_set(USER, PASSWORD)
        device.tls_set(ca_certs=str(ca))
        device.connect("localhost", broker.port)
        device.loop_start()
        try:
            device.publish("zigbee2mqtt/vault", b'{"temperature": 12.5}', qos=1)
            [reading] = wait_for(lambda: stream_readings(redis_url), what="the reading over TLS")
            assert reading["values"] == {"temperature_c": 12.5}
        finally:
            device.disconnect()
            device.loop_stop()
            stacks.stop_all()  # before the broker goes
