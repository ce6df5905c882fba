"""deploy/redis/start.sh: the compose stack's Redis, with one ACL user per role.

The script runs for real against the system's redis-server (Debian's is 7.0;
the compose image is 7.4; `%R~` key selectors need 7.0). The roles' own
programs then run as those users, so a command a program needs and its user
lacks fails here, not on a user's server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools.redis_server import free_port
from devtools.stack import Stack
from shared.bus import Bus, connect
from shared.reading import Reading

ROOT = Path(__file__).resolve().parent.parent
PASSWORDS = {
    "default": "admin-pw",
    "producer": "producer-pw",
    "web": "web-pw",
    "recorder": "recorder-pw",
}


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[int]:
    """deploy/redis/start.sh on a free port; the port."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is missing: apt-get install -y redis-server (>= 7.0)")
    version = subprocess.run([server, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.split("v=")[1].split(".")[0])
    assert major >= 7, f"ACL key selectors need Redis >= 7.0: {version.stdout}"
    port = free_port()
    env = {
        "PATH": str(Path(server).parent) + ":/usr/bin:/bin",
        "REDIS_DATA_DIR": str(tmp_path),
        "REDIS_PASSWORD": PASSWORDS["default"],
        "REDIS_PRODUCER_PASSWORD": PASSWORDS["producer"],
        "REDIS_WEB_PASSWORD": PASSWORDS["web"],
        "REDIS_RECORDER_PASSWORD": PASSWORDS["recorder"],
    }
    proc = subprocess.Popen(
        [
            "sh",
            str(ROOT / "deploy" / "redis" / "start.sh"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        admin = client("default", port)
        deadline = time.monotonic() + 10
        while True:
            try:
                admin.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis did not start"
                time.sleep(0.05)
        admin.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def url(user: str, port: int) -> str:
    """The REDIS_URL a role gets in docker-compose.yml."""
    return f"redis://{user}:{PASSWORDS[user]}@127.0.0.1:{port}/0"


def client(user: str, port: int) -> redis.Redis:
    """A client logged in as `user`."""
    return connect(url(user, port))


def reading(seq: int) -> Reading:
    """A numbered test reading."""
    return Reading(source="acl", sensor="demo", ts=time.time(), seq=seq, values={"temp_c": 1.0})


def test_start_script_refuses_missing_passwords(tmp_path: Path) -> None:
    """No password, no Redis: the script names the missing variable."""
    result = subprocess.run(
        ["sh", str(ROOT / "deploy" / "redis" / "start.sh")],
        env={"PATH": "/usr/bin:/bin", "REDIS_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode != 0
    assert "REDIS_PASSWORD" in result.stderr


def test_anonymous_access_is_refused(acl_redis: int) -> None:
    """The default user needs its password: no unauthenticated command runs."""
    anonymous = redis.Redis(port=acl_redis)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()


def test_producer_publishes_and_can_do_nothing_else(acl_redis: int) -> None:
    """The producer runs the publish script; no other key, command or channel."""
    producer = client("producer", acl_redis)
    bus = Bus(producer)
    assert bus.publish(reading(1)) is not None
    assert bus.marks.recorded() == {}
    bus.report_error("acl", "demo", "test", time.time())
    for forbidden in (
        lambda: producer.hset("readings:recorder", "lag", 0),
        lambda: producer.xgroup_create("readings:stream", "mine", id="0"),
        lambda: producer.set("other", 1),
        lambda: producer.flushall(),
        lambda: producer.publish("elsewhere", "x"),
        lambda: producer.keys("*"),
        lambda: _subscribe(producer, "elsewhere"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()
    # The MQTT bridge follows the channel to feed Home Assistant.
    assert _subscribe(producer, "readings")["type"] == "subscribe"
    producer.close()


def _subscribe(user: redis.Redis, channel: str) -> dict:
    pubsub = user.pubsub()
    try:
        pubsub.subscribe(channel)
        return pubsub.get_message(timeout=2)  # the reply, or the ACL's refusal raised
    finally:
        pubsub.close()


def test_web_reads_and_subscribes_but_cannot_write(acl_redis: int) -> None:
    """The web user replays the stream and listens; publishing or writing fails."""
    Bus(client("producer", acl_redis)).publish(reading(1))
    web = client("web", acl_redis)
    bus = Bus(web)
    assert [e.reading.seq for e in bus.read_after("0")] == [1]
    assert bus.last_id() is not None
    bus.sensor_errors()
    pubsub = web.pubsub()
    pubsub.subscribe("readings")
    pubsub.close()
    for forbidden in (
        lambda: bus.publish(reading(2)),
        lambda: web.publish("readings", "{}"),
        lambda: web.hset("readings:recorded", "acl/demo", 1),
        lambda: web.xadd("readings:stream", {"r": "{}"}),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()
    web.close()


def test_recorder_publishes_alerts_and_reports_targets(acl_redis: int) -> None:
    """The recorder user may push `event: alert` and its notifier's health, on its channel only."""
    recorder = client("recorder", acl_redis)
    assert recorder.publish("readings", '{"data":{},"type":"alert"}') == 0
    recorder.hset("readings:alerts:targets", "abc", "{}")
    recorder.delete("readings:alerts:targets")
    with pytest.raises(redis.exceptions.NoPermissionError):
        recorder.publish("elsewhere", "x")
    web = client("web", acl_redis)
    assert web.hgetall("readings:alerts:targets") == {}
    recorder.close()
    web.close()


@pytest.mark.slow
def test_each_role_runs_as_its_own_user(acl_redis: int, tmp_path: Path) -> None:
    """producer -> recorder -> web, each program logged in as its compose user."""
    stack = Stack.create(tmp_path, {"WEB_WORKERS": "1", "INTERVAL": "0.2"})
    admin = client("default", acl_redis)
    try:
        stack.start("recorder", ["-m", "recorder"], REDIS_URL=url("recorder", acl_redis))
        stack.start(
            "producer",
            ["-m", "producers"],
            REDIS_URL=url("producer", acl_redis),
            SENSORS="demo",
            SOURCE="acl",
        )
        deadline = time.monotonic() + 30
        while not admin.hgetall("readings:recorded"):
            assert time.monotonic() < deadline, "no reading was recorded"
            for name, proc in stack.procs.items():
                assert proc.poll() is None, f"{name} exited with {proc.returncode}"
            time.sleep(0.2)
        base = stack.start_web(REDIS_URL=url("web", acl_redis))
        with urllib.request.urlopen(f"{base}/api/sensors", timeout=10) as response:
            sensors = json.load(response)["sensors"]
        assert any(s["source"] == "acl" for s in sensors)
    finally:
        stack.stop_all()
        admin.close()
