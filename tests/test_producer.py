"""The producer: demo signals, the outbox, the loop through Redis outages, --once."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from devtools.redis_server import free_port
from producers.drivers import SensorError, driver_class, names_for
from producers.drivers.demo import DemoDriver
from producers.outbox import Outbox
from producers.runner import Producer, Sensor, build_sensors
from shared.bus import Bus
from shared.reading import Reading
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_demo_signals_drift_instead_of_jumping() -> None:
    clock = iter(range(1763712000, 1763712000 + 10_000)).__next__
    demo = DemoDriver(seed=1, clock=lambda: float(clock()))
    samples = [demo.read() for _ in range(3600)]
    temps = [s["temperature_c"] for s in samples]
    steps = [abs(b - a) for a, b in itertools.pairwise(temps)]
    assert max(steps) < 0.5  # no jumps from one second to the next
    assert min(temps) > 15
    assert max(temps) < 28
    assert all(0 <= s["humidity_pct"] <= 100 for s in samples)
    assert all(950 < s["pressure_hpa"] < 1070 for s in samples)
    Reading(source="x", sensor="demo", ts=1763712000.0, values=samples[-1])  # valid metrics


def make_producer(settings: Settings) -> Producer:
    sensors = build_sensors(settings)
    return Producer(settings, sensors, Outbox(settings.outbox_path))


def test_readings_wait_in_the_outbox_while_redis_is_away(make_settings, redis_url) -> None:
    down = make_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", SENSORS="demo")
    producer = make_producer(down)
    for _ in range(5):
        producer.tick()
        producer.redis_next_try = 0.0
        assert producer.flush() == 0
    assert producer.outbox.pending_count() == 5
    producer.outbox.close()
    # Redis comes back: the backlog goes out in order, then live.
    up = make_producer(make_settings(SENSORS="demo"))
    up.tick()
    assert up.flush() == 6
    client = redis.Redis.from_url(redis_url)
    seqs = [e.reading.seq for e in Bus(client).read_after("0-0")]
    assert seqs == sorted(seqs)
    assert len(seqs) == 6
    assert seqs[-1] - seqs[0] == 5  # no gap
    client.close()


def test_a_failing_sensor_backs_off_and_the_others_keep_going(make_settings) -> None:
    class Broken:
        name = "broken"

        def read(self) -> dict[str, float]:
            raise SensorError("no device answers at 0x76 on bus 1")

    settings = make_settings(SENSORS="demo")
    sensors = [Sensor("demo", driver=DemoDriver()), Sensor("broken", driver=Broken())]
    producer = Producer(settings, sensors, Outbox(settings.outbox_path))
    assert producer.tick() == 1
    assert sensors[1].error == "no device answers at 0x76 on bus 1"
    assert sensors[1].next_try > time.monotonic()
    producer.flush()
    bus = Bus(redis.Redis.from_url(settings.redis_url))
    assert bus.sensor_errors()[("test-host", "broken")]["error"].startswith("no device")


def test_unknown_sensor_names_are_explained() -> None:
    settings = Settings.from_env({"SENSORS": "demo,auto", "SOURCE": "x"})
    assert names_for(settings) == ["demo", "bme280", "pi_cpu", "hwmon"]
    with pytest.raises(SensorError, match="choose from demo, pi_cpu, hwmon, bme280, auto"):
        driver_class("bme680")


def run_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producers", "--once"],
        cwd=ROOT,
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_once_prints_json_lines_without_redis(tmp_path: Path) -> None:
    result = run_once(
        {"SENSORS": "demo", "SOURCE": "lab", "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    )
    assert result.returncode == 0, result.stderr
    reading = Reading.from_json(result.stdout.strip())
    assert (reading.source, reading.sensor) == ("lab", "demo")


def test_once_with_nothing_readable_exits_non_zero_with_a_sentence(tmp_path: Path) -> None:
    result = run_once({"SENSORS": "hwmon", "SOURCE": "lab", "SYSFS_ROOT": str(tmp_path)})
    assert result.returncode != 0
    assert result.stdout == ""
    assert "no sensor could be read" in result.stderr
    assert "hwmon" in result.stderr


def test_once_rejects_bad_settings_clearly() -> None:
    result = run_once({"INTERVAL": "soon"})
    assert result.returncode == 2
    assert "INTERVAL" in result.stderr
    assert result.stdout == ""


@pytest.mark.serial  # the sampling schedule is timing
def test_sampling_stays_on_schedule_while_redis_hangs(make_settings) -> None:
    # A "Redis" that accepts connections and never answers: every publish
    # waits for its socket timeout, as across a dead network link.
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    settings = make_settings(
        REDIS_URL=f"redis://127.0.0.1:{port}/0", SENSORS="demo", INTERVAL="0.1"
    )
    producer = make_producer(settings)
    runner = threading.Thread(target=producer.run)
    started = time.monotonic()
    runner.start()
    time.sleep(2.0)  # the outage is the point: two seconds of it
    producer.stop_event.set()
    runner.join(timeout=20)
    elapsed = time.monotonic() - started
    silent.close()
    check = Outbox(settings.outbox_path)
    stored = check.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    check.close()
    assert not runner.is_alive()
    assert stored >= 15, f"{stored} readings in {elapsed:.1f}s at 10/s"
