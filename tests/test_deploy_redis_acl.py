"""deploy/redis/start.sh: the compose stack's Redis, with one ACL user per role.

The script runs for real against the system's redis-server (Debian's is 7.0;
the compose image is 7.4; `%R~` key selectors need 7.0). The roles' own
programs then run as those users, so a command a program needs and its user
lacks fails here, not on a user's server.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools.redis_server import free_port
from devtools.stack import Stack
from producers.outbox import Outbox
from producers.runner import Producer, build_sensors
from recorder.consumer import Recorder
from shared import store
from shared.bus import Bus, connect
from shared.reading import Reading
from web.limiter import Gate, SharedLimiter

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


def load_publish_script(port: int) -> None:
    """What the recorder does when it connects: the producer may not load scripts."""
    recorder = client("recorder", port)
    Bus(recorder).load_scripts()
    recorder.close()


def test_producer_publishes_and_can_do_nothing_else(acl_redis: int) -> None:
    """The producer runs the publish script; no other key, command or channel."""
    producer = client("producer", acl_redis)
    bus = Bus(producer)
    with pytest.raises(redis.exceptions.NoPermissionError):
        bus.publish(reading(1))  # not loaded yet, and loading it is not the producer's
    load_publish_script(acl_redis)
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
        # The attempts with a producer's password:
        lambda: producer.client_kill_filter(user="web"),
        lambda: producer.client_pause(1500),
        lambda: producer.eval("local t = redis.call('TIME') while true do end", 0),
        lambda: producer.script_load("return 1"),
        lambda: producer.function_load("#!lua name=x\nredis.register_function('x', print)"),
        lambda: producer.xrange("readings:stream"),
        lambda: producer.xread({"readings:stream": "0"}),
        lambda: producer.hset("readings:recorded", "acl/demo", 2**62),
        lambda: producer.hdel("readings:recorded", "acl/demo"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()
    # The MQTT bridge follows the channel to feed Home Assistant, and reports
    # its counters where web's /metrics reads them.
    assert _subscribe(producer, "readings")["type"] == "subscribe"
    bus.report_bridge("acl", {"published": 1})
    assert Bus(client("web", acl_redis)).bridge_statuses()["acl"]["published"] == 1
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
    load_publish_script(acl_redis)
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
        lambda: web.delete("readings:stream"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()
    # The login limiter: count, lock, one check per interval, a success clears it.
    limits = SharedLimiter(web, "readings")
    for _ in range(limits.limit):
        limits.failed("192.0.2.1")
    assert limits.gate("192.0.2.1") == Gate(locked=True, failures=True)
    assert limits.gate("192.0.2.1").wait > 0
    limits.succeeded("192.0.2.1")
    assert limits.gate("192.0.2.1") == Gate()
    web.close()


def test_a_stolen_producer_password_empties_the_stream_and_nothing_is_lost(
    acl_redis: int, make_settings, db, caplog: pytest.LogCaptureFixture
) -> None:
    """XADD MAXLEN 0 with the producer's password: found, counted, re-sent from the outbox.

    Redis ACLs cannot refuse an argument, so the trim itself succeeds; the
    recorder sees the hole in the demo sensor's seqs (marks rule 9), asks the
    producer to re-send, and counts the deleted entries (recorder/audit.py).
    """
    load_publish_script(acl_redis)
    settings = make_settings(REDIS_URL=url("producer", acl_redis), SENSORS="demo", SOURCE="pi")
    producer = Producer(settings, build_sensors(settings), Outbox(settings.outbox_path))
    recorder = Recorder(Bus(client("recorder", acl_redis)), db)
    recorder.prepare()

    def produce(n: int) -> None:
        for _ in range(n):
            producer.tick()
            for sensor in producer.sensors:
                sensor.next_try = 0.0  # a tick each call, not each INTERVAL
        producer.flush()

    produce(5)
    recorder.step(block_ms=100)
    assert recorder.audit_stream() == 0
    fifth = recorder.marks[("pi", "demo")]  # a fresh outbox counts from the clock in ms
    produce(5)  # the 6th-10th: in the stream, not recorded yet...
    thief = client("producer", acl_redis)
    thief.xadd("readings:stream", {"r": "{}"}, maxlen=0, approximate=False)  # ...and gone
    admin = client("default", acl_redis)
    assert admin.xlen("readings:stream") == 0
    admin.close()
    produce(1)  # the 11th arrives: the recorder sees the 6th-10th missing
    recorder.step(block_ms=100)
    assert recorder.gaps_found == 1
    assert Bus(thief).marks.recorded() == {("pi", "demo"): fifth}  # held: the outbox keeps them
    produce(1)  # told Redis forgot them, the producer re-sends the 6th-12th in order
    while recorder.step(block_ms=100):
        pass
    seqs = [r.seq for r in store.query_readings(db, since=0, until=time.time() + 9, limit=99)]
    assert sorted(seqs) == list(range(fifth - 4, fifth + 8))
    assert Bus(thief).marks.recorded() == {("pi", "demo"): fifth + 7}
    assert recorder.audit_stream() == 6  # 5 readings and the thief's own entry
    assert recorder.audit_stream() == 0  # counted once
    assert "deleted before the recorder read them" in caplog.text
    producer.send_box.settle(Bus(thief).marks.recorded(), {}, grace=-1)
    assert producer.outbox.pending_count() == 0
    for user in (thief, recorder.bus.client, producer._connect().client):
        user.close()


def test_a_forged_published_mark_is_lowered_and_nothing_is_lost(
    acl_redis: int, make_settings, db
) -> None:
    """HSET of a published mark far ahead: every reading a "repeat" until the audit lowers it."""
    load_publish_script(acl_redis)
    settings = make_settings(REDIS_URL=url("producer", acl_redis), SENSORS="demo", SOURCE="pi")
    producer = Producer(settings, build_sensors(settings), Outbox(settings.outbox_path))
    recorder = Recorder(Bus(client("recorder", acl_redis)), db)
    recorder.prepare()
    for _ in range(3):
        producer.tick()
        producer.sensors[0].next_try = 0.0
    producer.flush()
    recorder.step(block_ms=100)
    thief = client("producer", acl_redis)
    thief.hset("readings:published", "pi/demo", 2**62)
    for _ in range(3):
        producer.tick()
        producer.sensors[0].next_try = 0.0
    producer.flush()  # seqs 4-6 called repeats: nothing reaches the stream
    assert recorder.step(block_ms=100) == 0
    assert recorder.audit_stream() == 0  # sees the forged mark...
    assert recorder.audit_stream() == 0  # ...still there after reading everything: lowered
    assert recorder.audit.lowered == 1
    producer.tick()
    producer.flush()  # Redis "forgot" 4-6: re-sent with 7
    while recorder.step(block_ms=100):
        pass
    seqs = [r.seq for r in store.query_readings(db, since=0, until=time.time() + 9, limit=99)]
    assert len(seqs) == 7
    assert sorted(seqs) == list(range(seqs[0], seqs[0] + 7))
    for user in (thief, recorder.bus.client, producer._connect().client):
        user.close()


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
        # A sensor's mark, not just the hold position (@pos), which comes first.
        while b"acl/demo" not in admin.hgetall("readings:recorded"):
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


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


@pytest.mark.slow
def test_web_user_reports_metrics_and_keeps_sessions(acl_redis: int, tmp_path: Path) -> None:
    """Under the shipped ACLs /metrics counts the workers and clients; logout sticks."""
    token = "acl-test-token-0123456789"
    stack = Stack.create(tmp_path, {"WEB_WORKERS": "2", "ACCESS_TOKEN": token})
    bearer = {"Authorization": f"Bearer {token}"}
    try:
        base = stack.start_web(REDIS_URL=url("web", acl_redis))
        stream = urllib.request.urlopen(
            urllib.request.Request(f"{base}/stream", headers=bearer), timeout=10
        )
        deadline = time.monotonic() + 20
        while True:
            status, text = _get(f"{base}/metrics", bearer)
            assert status == 200, text
            values = dict(
                line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#")
            )
            workers = float(values["sensor_display_workers"])
            if workers >= 1 and float(values["sensor_display_clients"]) >= 1:
                break
            assert time.monotonic() < deadline, f"no worker reported under the ACL:\n{text}"
            time.sleep(0.5)
        stream.close()
        session = _login(base, token)
        assert _get(f"{base}/api/openapi.json", {"Cookie": session})[0] == 200
        logout = urllib.request.Request(
            f"{base}/logout", data=b"", method="POST", headers={"Cookie": session}
        )
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(logout, timeout=10).close()
        assert _get(f"{base}/api/openapi.json", {"Cookie": session})[0] == 401
    finally:
        stack.stop_all()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _login(base: str, token: str) -> str:
    """POST /login; the Cookie header the browser would send afterwards."""
    opener = urllib.request.build_opener(_NoRedirect)
    body = urllib.parse.urlencode({"token": token}).encode()
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(urllib.request.Request(f"{base}/login", data=body), timeout=10)
    with answer.value as response:
        assert response.code == 303
        return response.headers["Set-Cookie"].split(";", 1)[0]
