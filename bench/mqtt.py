"""The MQTT bridge: messages/s into readings, CPU per message, MQTT publish -> SSE latency."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
import redis

from bench.offline import Figure
from devtools.mosquitto import PASSWORD, USER, Mosquitto
from devtools.stack import Stack


def _publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-device")
    client.username_pw_set(USER, PASSWORD)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _wait(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the bridge did not keep up")
        time.sleep(0.02)


def throughput(stack: Stack, broker: Mosquitto, redis_url: str, n: int) -> list[Figure]:
    """Tasmota messages published at QoS 1 as fast as paho can, until all are in Redis."""
    client = redis.Redis.from_url(redis_url)
    before = client.xlen("readings:stream")
    bridge = psutil.Process(stack.procs["bridge"].pid)
    device = _publisher(broker.port)
    cpu = bridge.cpu_times()
    start = time.perf_counter()
    for i in range(n):
        payload = {"BME280": {"Temperature": 20 + i % 10, "Humidity": 40.0, "Pressure": 1000.0}}
        device.publish("tele/bench/SENSOR", json.dumps(payload), qos=1)
    _wait(lambda: client.xlen("readings:stream") - before >= n, timeout=max(60, n / 100))
    seconds = time.perf_counter() - start
    used = sum(bridge.cpu_times()[:2]) - sum(cpu[:2])
    device.disconnect()
    device.loop_stop()
    client.close()
    what = f"{n:,} Tasmota messages (3 metrics) at QoS 1 from one client, Mosquitto on loopback"
    return [
        Figure("MQTT bridge throughput", n / seconds, "messages/s", f"{what}, until all in Redis"),
        Figure(
            "MQTT bridge CPU",
            used / n * 1e6,
            "us per message",
            f"{what}: decode, SQLite outbox, Bus.publish; bridge process CPU only",
        ),
    ]


def latency(web_url: str, broker: Mosquitto, n: int, rate: float = 20.0) -> list[Figure]:
    """MQTT publish -> `event: reading` on /stream, as an EventSource receives it."""
    sent: dict[int, float] = {}
    got: dict[int, float] = {}
    ready = threading.Event()
    reader = threading.Thread(target=_read_stream, args=(web_url, got, ready, n), daemon=True)
    reader.start()
    ready.wait(10)
    device = _publisher(broker.port)
    for i in range(n):
        sent[i] = time.time()
        device.publish("tele/benchlat/SENSOR", json.dumps({"SHT3X": {"Temperature": i}}), qos=1)
        time.sleep(1 / rate)
    reader.join(timeout=10)
    device.disconnect()
    device.loop_stop()
    delays = sorted((got[i] - sent[i]) * 1000 for i in got if i in sent)
    if len(delays) < n:
        raise RuntimeError(f"only {len(delays)} of {n} readings reached /stream")
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    what = f"{n} Tasmota messages at {rate:g}/s, QoS 1 -> bridge -> Redis -> python -m web -> SSE"
    return [
        Figure("MQTT publish -> browser p50", statistics.median(delays), "ms", what),
        Figure("MQTT publish -> browser p99", p99, "ms", what),
    ]


def _read_stream(web_url: str, got: dict[int, float], ready: threading.Event, n: int) -> None:
    host, port = web_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/stream?source=benchlat", headers={"Accept": "text/event-stream"})
    response = conn.getresponse()
    ready.set()
    while len(got) < n:
        line = response.readline()
        if not line:
            break
        if line.startswith(b"data:"):
            reading = json.loads(line[5:])
            got[int(reading["values"]["temperature_c"])] = time.time()
    conn.close()


def figures(redis_url: str, tmp: Path, messages: int, samples: int) -> list[Figure]:
    """Start a broker, the bridge and one web server; measure; stop them."""
    with Mosquitto() as broker:
        stack = Stack.create(
            tmp / "mqtt",
            {"REDIS_URL": redis_url, "MQTT_URL": broker.url, "SOURCE": "bench-bridge"},
            log_dir=tmp / "logs",
        )
        (tmp / "mqtt").mkdir(exist_ok=True)
        try:
            stack.start("bridge", ["-m", "producers.mqtt"])
            url = stack.start_web("mqtt-web", WEB_WORKERS="1")
            time.sleep(1)  # the bridge's subscription
            return throughput(stack, broker, redis_url, messages) + latency(url, broker, samples)
        finally:
            stack.stop_all()
