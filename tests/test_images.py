"""The images built and the compose stack run for real on a Docker engine.

Builds both images (on the local stand-ins of devtools/standins.py when they
are present, else on the official bases), starts docker-compose.yml with the
`demo` profile and two web replicas, and checks what a user would meet: each
replica serves its health checks, the dashboard's files and live readings;
every container runs read-only and non-root; the Redis ACLs hold; a browser
resumes without a gap when its replica dies and is replaced; the `nginx`
profile proxies the stream; `down -v` leaves nothing. Then the producer image,
built for arm64 and armv7 under QEMU, reads an emulated BME280.

`make image-test` runs this file alone; `make test` runs it when an engine
answers (in CI it must: a skip fails there). See docs/deploy.md, "Images in CI".
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sse_client import SSEClient

from devtools import docker, standins

ROOT = Path(__file__).resolve().parent.parent
REPO = "sensor-display-test"  # IMAGE_REPO: the compose file names images <repo>-web etc.
HEARTBEAT_S = 2
UIDS = {"web": 10001, "recorder": 10001, "producer-demo": 10001, "redis": 999}
ARM = {"linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}

# serial: image builds take both cores for minutes.
pytestmark = [pytest.mark.images, pytest.mark.serial, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module", autouse=True)
def engine() -> None:
    """Skip (a failure in CI) unless a Docker engine answers."""
    problem = docker.reachable()
    if problem is not None:
        pytest.skip(f"no Docker engine: {problem}")


def bases(platform: str = standins.BUILD_PLATFORM) -> dict[str, str]:
    """Build arguments for the base images: the stand-ins if present, else the defaults."""
    return standins.base_images(platform) if standins.present(platform) else {}


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    """Poll `check` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"not within {timeout:.0f}s: {what}")


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    """Status and body of a GET; (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError) as exc:
        return 0, str(exc).encode()


def live_reading(base: str, timeout: float = 60) -> dict:
    """The first reading on `base`/stream that came live through Redis (it has an id)."""
    deadline = time.monotonic() + timeout
    with urllib.request.urlopen(f"{base}/stream", timeout=3 * HEARTBEAT_S) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for raw in response:
            name, _, value = raw.decode().rstrip("\r\n").partition(":")
            if name:
                fields[name] = value.removeprefix(" ")
                continue
            if fields.get("event") == "reading" and fields.get("id"):  # end of an event
                return json.loads(fields["data"])
            fields = {}
            if time.monotonic() > deadline:
                break
    pytest.fail(f"no live reading on {base}/stream within {timeout}s")


# --- the images and the stack -------------------------------------------------------


@dataclass
class Container:
    """One container of the stack, as `docker inspect` describes it."""

    info: dict

    @property
    def id(self) -> str:
        return self.info["Id"]

    @property
    def service(self) -> str:
        return self.info["Config"]["Labels"]["com.docker.compose.service"]

    @property
    def address(self) -> str:
        networks = self.info["NetworkSettings"]["Networks"].values()
        return next(n["IPAddress"] for n in networks if n["IPAddress"])

    @property
    def url(self) -> str:
        return f"http://{self.address}:9999"

    @property
    def health(self) -> str:
        return self.info["State"].get("Health", {}).get("Status", "none")


@dataclass
class Stack:
    """A compose project started from this repository's files."""

    project: str
    env: dict[str, str]
    figures: dict[str, str]

    def compose(self, *args: str, timeout: float = 600) -> str:
        """Run docker-compose on this project with every profile the test uses."""
        cmd = [*docker.compose_cli(), "-f", "docker-compose.yml", "--env-file", ".env.example"]
        cmd += ["-p", self.project, "--profile", "demo", "--profile", "nginx", *args]
        result = subprocess.run(
            cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise docker.DockerError(f"{' '.join(args)}: {result.stderr[-4000:]}")
        return result.stdout

    def containers(self, service: str | None = None, everything: bool = False) -> list[Container]:
        """The project's running containers (all of them with `everything`)."""
        label = f"label=com.docker.compose.project={self.project}"
        ids = docker.run("ps", "-q", *(["-a"] if everything else []), "--filter", label)
        found = ids.stdout.split()
        if not found:
            return []
        infos = json.loads(docker.run("inspect", *found).stdout)
        every = [Container(info) for info in infos]
        return [c for c in every if service is None or c.service == service]

    def web(self) -> list[Container]:
        """The web replicas, in a stable order."""
        return sorted(self.containers("web"), key=lambda c: c.info["Name"])

    def ready(self, container: Container) -> bool:
        """True once the replica's /readyz answers 200."""
        return get(f"{container.url}/readyz", timeout=3)[0] == 200


def build_arguments(image: str) -> set[str]:
    """The base-image build arguments Dockerfile.<image> declares."""
    return set(re.findall(r"^ARG (\w+_IMAGE)=", (ROOT / f"Dockerfile.{image}").read_text(), re.M))


def build_images(tag: str, figures: dict[str, str]) -> None:
    """Build the web and producer images for this machine; record time and size."""
    args = bases()
    figures["bases"] = "local stand-ins" if args else "official images"
    for image in ("web", "producer"):
        name = f"{REPO}-{image}:{tag}"
        wanted = {k: v for k, v in args.items() if k in build_arguments(image)}
        seconds = docker.build(ROOT / f"Dockerfile.{image}", ROOT, name, build_args=wanted)
        figures[f"{image} build"] = f"{seconds:.0f} s"
        figures[f"{image} size"] = size_figure(name, args.get("PYTHON_IMAGE"))


def size_figure(image: str, base: str | None) -> str:
    """The image's size, and how much of it its own layers add to a known base."""
    size = docker.image_size(image)
    if base is None:
        return f"{size / 1e6:.0f} MB"
    return f"{size / 1e6:.0f} MB ({(size - docker.image_size(base)) / 1e6:.0f} MB over the base)"


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Both images built and the `demo` stack up with two web replicas; removed after."""
    project = f"sdimages{os.getpid()}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "WEB_", "NGINX", "MQTT_"))
    }
    # docker-compose 1.29 interpolates every service, also those of profiles not
    # started: the `mqtt` profiles' required values must be set as well.
    env.update(
        MQTT_BRIDGE_PASSWORD="unused", MQTT_DEVICE_PASSWORD="unused", MQTT_URL="mqtt://unused"
    )
    env.update(
        {
            f"REDIS_{r}PASSWORD": secrets.token_hex(16)
            for r in ("", "PRODUCER_", "WEB_", "RECORDER_")
        }
    )
    env.update(
        IMAGE_REPO=REPO,
        IMAGE_TAG=project,
        WEB_REPLICAS="2",
        HEARTBEAT_INTERVAL=str(HEARTBEAT_S),
        NGINX_BIND="127.0.0.1",
        NGINX_PORT=str(free_port()),
        LOG_FORMAT="text",
    )
    env.update({k: v for k, v in bases().items() if k in ("REDIS_IMAGE", "NGINX_IMAGE")})
    running = Stack(project, env, {})
    build_images(project, running.figures)
    started = time.monotonic()
    try:
        running.compose("up", "-d", "--no-build", "redis", "recorder", "web", "producer-demo")
        for replica in wait_for(lambda: len(running.web()) == 2 and running.web(), 120, "2 web"):
            wait_for(lambda r=replica: running.ready(r), 180, f"{replica.url}/readyz")
        running.figures["stack ready"] = f"{time.monotonic() - started:.0f} s"
        yield running
    finally:
        running.compose("down", "-v", "--remove-orphans")
        for image in ("web", "producer"):
            docker.run("rmi", f"{REPO}-{image}:{project}", check=False)


# --- the checks, in the order a user meets them -------------------------------------


def test_images_build_and_the_stack_starts(stack: Stack, record_property) -> None:
    """Both images build; Redis, the recorder, a demo producer and 2 web replicas run."""
    services = sorted(c.service for c in stack.containers())
    assert services == ["producer-demo", "recorder", "redis", "web", "web"]
    for name, value in stack.figures.items():
        record_property("figure", f"amd64 {name}: {value}")


def test_each_replica_serves_health_files_and_live_readings(stack: Stack) -> None:
    """/healthz, /readyz, every file the dashboard references, a live reading."""
    for replica in stack.web():
        assert get(f"{replica.url}/healthz")[0] == 200
        assert get(f"{replica.url}/readyz")[0] == 200
        status, page = get(f"{replica.url}/")
        assert status == 200
        files = set(re.findall(r'(?:src|href)="(/static/[^"?]+)', page.decode()))
        assert any(f.endswith("chart.umd.min.js") for f in files), files
        for file in files:
            status, body = get(f"{replica.url}{file}")
            assert status == 200, (replica.url, file)
            assert body, (replica.url, file)
        reading = live_reading(replica.url)
        assert reading["source"] == "demo"
        assert reading["values"]


def proc_uid(container: Container) -> int:
    """The real uid of the container's main process (PID 1)."""
    status = docker.run("exec", container.id, "cat", "/proc/1/status").stdout
    real, effective = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M).groups()
    assert real == effective
    return int(real)


def test_every_container_is_read_only_and_not_root(stack: Stack) -> None:
    """No container can write its root filesystem; each server runs as its own uid."""
    for container in stack.containers():
        assert container.info["HostConfig"]["ReadonlyRootfs"] is True, container.service
        write = docker.run("exec", container.id, "sh", "-c", ": > /probe", check=False)
        assert write.returncode != 0, container.service
        assert "Read-only file system" in write.stderr, write.stderr
        assert proc_uid(container) == UIDS[container.service], container.service


def redis_as(stack: Stack, user: str) -> redis.Redis:
    """A client of the stack's Redis logged in as `user` (over the compose network)."""
    address = stack.containers("redis")[0].address
    password = stack.env[f"REDIS_{user.upper()}_PASSWORD"]
    return redis.Redis(host=address, port=6379, username=user, password=password)


def test_redis_acls_hold(stack: Stack) -> None:
    """The web user reads but cannot publish; the producer user cannot read readings."""
    web = redis_as(stack, "web")
    assert web.xrevrange("readings:stream", count=1), "web reads the stream"
    for attempt in (
        lambda: web.publish("readings", "{}"),
        lambda: web.xadd("readings:stream", {"data": "{}"}),
        lambda: web.delete("readings:stream"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    producer = redis_as(stack, "producer")
    for attempt in (
        lambda: producer.xread({"readings:stream": "0"}, count=1),
        lambda: producer.xreadgroup("recorder", "me", {"readings:stream": ">"}, count=1),
        lambda: producer.keys("*"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    web.close()
    producer.close()


def test_a_client_resumes_when_its_replica_dies_and_is_replaced(stack: Stack) -> None:
    """A replica killed mid-stream: the client resumes on the other one with no gap
    and no duplicate; compose replaces the dead replica, which serves readings."""
    first, second = stack.web()
    client = SSEClient(urls=[first.url, second.url], heartbeat=HEARTBEAT_S, name="images")
    client.start()
    try:
        wait_for(lambda: sum(r.server == first.url for r in client.live) >= 3, 60, "3 events")
        docker.run("rm", "-f", first.id)  # SIGKILL, then gone: a crashed host, say
        wait_for(lambda: sum(r.server == second.url for r in client.live) >= 3, 60, "resume")
    finally:
        client.stop()
    assert client.connects >= 2
    assert client.duplicates() == 0
    assert client.missing(client.max_seq) == []
    stack.compose("up", "-d", "--no-build", "web")
    replacement = wait_for(
        lambda: [c for c in stack.web() if c.id not in (first.id, second.id)], 120, "a new replica"
    )[0]
    wait_for(lambda: stack.ready(replacement), 180, f"{replacement.url}/readyz")
    assert len(stack.web()) == 2
    assert live_reading(replacement.url)["source"] == "demo"


def test_nginx_profile_proxies_the_stream(stack: Stack) -> None:
    """The `nginx` service renders its template at start and proxies files and /stream."""
    stack.compose("up", "-d", "--no-build", "--no-deps", "nginx")
    nginx = stack.containers("nginx")[0]
    base = f"http://127.0.0.1:{stack.env['NGINX_PORT']}"
    wait_for(lambda: get(f"{base}/healthz", timeout=3)[0] == 200, 60, f"{base}/healthz")
    rendered = docker.run("exec", nginx.id, "cat", "/etc/nginx/conf.d/default.conf").stdout
    assert "${NPM_" not in rendered
    assert 'set $server         "web";' in rendered  # nginx's own $server kept
    assert get(f"{base}/static/app.css")[0] == 200
    assert live_reading(base)["source"] == "demo"
    assert proc_uid(nginx) == 101


def test_every_container_becomes_healthy(stack: Stack) -> None:
    """Every health check passes (the images' and compose's): `ps` says healthy."""
    checked = [c for c in stack.containers() if c.health != "none"]
    assert {c.service for c in checked} == set(UIDS), "each service has a health check"
    deadline = time.monotonic() + 240
    while unhealthy := [
        f"{c.service}: {c.health}"
        for c in stack.containers()
        if c.health not in ("healthy", "none")
    ]:
        assert time.monotonic() < deadline, f"not healthy within 240 s: {unhealthy}"
        time.sleep(2)


def test_down_leaves_nothing(stack: Stack) -> None:
    """`down -v` removes every container, volume and network of the project."""
    stack.compose("down", "-v", "--remove-orphans")
    label = f"label=com.docker.compose.project={stack.project}"
    assert stack.containers(everything=True) == []
    for kind in ("volume", "network"):
        left = docker.run(kind, "ls", "-q", "--filter", label).stdout.split()
        assert left == [], kind


# --- the producer image on arm --------------------------------------------------------


@pytest.mark.parametrize("platform", list(ARM))
def test_producer_image_reads_a_bme280_on_arm(platform: str, record_property) -> None:
    """Built for `platform` under QEMU, `python -m producers --once` reads the chip."""
    tag = f"{REPO}-producer:{platform.replace('/', '-')}-{os.getpid()}"
    args = {k: v for k, v in bases(platform).items() if k in build_arguments("producer")}
    seconds = docker.build(
        ROOT / "Dockerfile.producer", ROOT, tag, platform=platform, build_args=args
    )
    try:
        machine = docker.run("run", "--rm", "--platform", platform, tag, "uname", "-m")
        assert machine.stdout.strip() == ARM[platform]
        once = docker.run(
            "run", "--rm", "--platform", platform, "--read-only", "--cap-drop", "ALL",
            "-e", "SENSORS=bme280", "-e", "BME280_EMULATE=1", "-e", "SOURCE=pi",
            tag, "python", "-m", "producers", "--once",
        )  # fmt: skip
        readings = [json.loads(line) for line in once.stdout.splitlines()]
        assert [r["sensor"] for r in readings] == ["bme280"]
        assert set(readings[0]["values"]) >= {"temperature_c", "humidity_pct", "pressure_hpa"}
        size = size_figure(tag, args.get("PYTHON_IMAGE"))
        record_property("figure", f"{platform} producer build: {seconds:.0f} s, {size}")
    finally:
        docker.run("rmi", tag, check=False)


def test_web_image_serves_on_arm64(record_property) -> None:
    """Built for linux/arm64 under QEMU, the web image starts and answers /healthz."""
    platform = "linux/arm64"
    tag = f"{REPO}-web:arm64-{os.getpid()}"
    args = {k: v for k, v in bases(platform).items() if k in build_arguments("web")}
    seconds = docker.build(ROOT / "Dockerfile.web", ROOT, tag, platform=platform, build_args=args)
    container = None
    try:
        container = docker.run(
            "run", "-d", "--platform", platform, "--read-only", "--tmpfs", "/tmp",
            "--cap-drop", "ALL", "-e", "REDIS_URL=redis://127.0.0.1:1/0", tag,
        ).stdout.strip()  # fmt: skip
        info = Container(json.loads(docker.run("inspect", container).stdout)[0])
        wait_for(lambda: get(f"{info.url}/healthz", timeout=5)[0] == 200, 180, "/healthz")
        assert get(f"{info.url}/readyz")[0] == 503, "not ready without Redis"
        size = size_figure(tag, args.get("PYTHON_IMAGE"))
        record_property("figure", f"{platform} web build: {seconds:.0f} s, {size}")
    finally:
        if container:
            docker.run("rm", "-f", container, check=False)
        docker.run("rmi", tag, check=False)
