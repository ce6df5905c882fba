"""The compose `ha` profile, as `docker-compose config` renders it, and its documented timings."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_deploy_static import compose

from devtools import docker, standins

ROOT = Path(__file__).resolve().parent.parent
HA_ENV = {
    "REDIS_SENTINELS": "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379",
    "REDIS_SENTINEL_PASSWORD": "sentinel-secret",
    "REDIS_SENTINEL_ADMIN_PASSWORD": "sentinel-admin-secret",
    "REDIS_REPLICATION_PASSWORD": "replication-secret",
}
APPS = ["web", "recorder", "producer-demo", "producer-server", "producer-pi"]
ROLES = ("", "PRODUCER_", "WEB_", "RECORDER_")
SENTINELS = ["sentinel-1", "sentinel-2", "sentinel-3"]


@pytest.fixture(scope="module")
def services() -> dict:
    """The services, rendered with the HA lines of .env set."""
    return compose(HA_ENV)["services"]


def test_every_process_follows_the_sentinels(services: dict) -> None:
    """REDIS_SENTINELS set once in .env reaches every role, with the Sentinel password."""
    for name in APPS:
        env = services[name]["environment"]
        assert env["REDIS_SENTINELS"] == HA_ENV["REDIS_SENTINELS"], name
        assert env["REDIS_SENTINEL_PASSWORD"] == HA_ENV["REDIS_SENTINEL_PASSWORD"], name
        # The Sentinels' admin secret and the replication secret stay with Redis.
        assert "REDIS_SENTINEL_ADMIN_PASSWORD" not in env, name
        assert "REDIS_REPLICATION_PASSWORD" not in env, name


def test_both_data_nodes_run_the_same_script_with_the_same_users(services: dict) -> None:
    """Either node may be master after a failover: same script, users, image; own data."""
    master, replica = services["redis"], services["redis-replica"]
    assert replica["profiles"] == ["ha"]
    assert master["entrypoint"] == replica["entrypoint"]
    assert master["image"] == replica["image"]
    for key in ("REDIS_REPLICATION_PASSWORD", "REDIS_SENTINEL_ADMIN_PASSWORD", "REDIS_PASSWORD"):
        assert master["environment"][key] == replica["environment"][key] != ""
    assert master["environment"]["REDIS_ANNOUNCE_HOST"] == "redis"
    assert replica["environment"]["REDIS_ANNOUNCE_HOST"] == "redis-replica"
    assert replica["environment"]["REDIS_REPLICA_OF"] == "redis:6379"
    assert "REDIS_REPLICA_OF" not in master["environment"]
    data = [_target(v, "/data") for v in (master, replica)]
    assert data[0] != data[1]


def test_three_sentinels_each_keep_their_own_config(services: dict) -> None:
    """Three Sentinels run sentinel.sh, each with a volume for the config it rewrites."""
    volumes = set()
    for i in (1, 2, 3):
        sentinel = services[f"sentinel-{i}"]
        assert sentinel["profiles"] == ["ha"]
        assert sentinel["entrypoint"][-1].endswith("/sentinel.sh")
        assert sentinel["read_only"] is True
        volumes.add(_target(sentinel, "/data"))
    assert len(volumes) == 3


def test_without_ha_nothing_asks_a_sentinel() -> None:
    """The default .env leaves REDIS_SENTINELS empty: REDIS_URL is the server."""
    services = compose()["services"]
    for name in APPS:
        assert services[name]["environment"]["REDIS_SENTINELS"] == ""


def test_documented_timings_are_the_scripts_defaults() -> None:
    """docs/redis-ha.md explains the values sentinel.sh really uses."""
    script = (ROOT / "deploy" / "redis" / "sentinel.sh").read_text()
    docs = (ROOT / "docs" / "redis-ha.md").read_text()
    for variable, directive in [
        ("SENTINEL_DOWN_AFTER_MS", "down-after-milliseconds"),
        ("SENTINEL_FAILOVER_TIMEOUT_MS", "failover-timeout"),
    ]:
        default = re.search(rf"\${{{variable}:-(\d+)}}", script)
        assert default, variable
        assert f"| `{directive}` | {default.group(1)} |" in docs, directive


def _target(service: dict, target: str) -> str:
    for volume in service.get("volumes", []):
        if isinstance(volume, str) and volume.split(":")[1] == target:
            return volume.split(":")[0]
        if isinstance(volume, dict) and volume["target"] == target:
            return volume["source"]
    raise AssertionError(f"no volume at {target}")


# --- the profile on a Docker engine --------------------------------------------------


@dataclass
class HAProject:
    """The `ha` profile's Redis side, started by compose on a real engine."""

    name: str
    env: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str) -> str:
        """docker-compose on this project with the `ha` profile."""
        cmd = [*docker.compose_cli(), "-f", "docker-compose.yml", "--env-file", ".env.example"]
        cmd += ["-p", self.name, "--profile", "ha", *args]
        result = subprocess.run(
            cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0:
            raise docker.DockerError(f"{' '.join(args)}: {result.stderr[-3000:]}")
        return result.stdout

    def container(self, service: str) -> str:
        """The id of the service's container (running or not; asked once: compose is slow)."""
        if service not in self.ids:
            self.ids[service] = self.compose("ps", "-q", service).split()[0]
        return self.ids[service]

    def cli(self, service: str, *args: str, sentinel: bool = False) -> str:
        """redis-cli inside a service's container, as its admin (or a Sentinel client)."""
        password = "REDIS_SENTINEL_PASSWORD" if sentinel else "REDIS_PASSWORD"
        port = ["-p", "26379"] if sentinel else []
        result = docker.run(
            "exec", "-e", f"REDISCLI_AUTH={self.env[password]}", self.container(service),
            "redis-cli", "--no-auth-warning", *port, *args, check=False, timeout=30,
        )  # fmt: skip
        return result.stdout

    def master(self) -> str:
        """The master's host name as sentinel-2 names it ('' if it names none)."""
        answer = self.cli(
            "sentinel-2", "SENTINEL", "get-master-addr-by-name", "mymaster", sentinel=True
        )
        return answer.split("\n")[0].strip()

    def peers(self, service: str) -> int:
        """How many other Sentinels `service` knows."""
        text = self.cli(service, "SENTINEL", "master", "mymaster", sentinel=True).split()
        pairs = dict(zip(text[::2], text[1::2], strict=False))
        return int(pairs.get("num-other-sentinels", 0))

    def replication(self, service: str) -> dict[str, str]:
        """INFO replication of a data node."""
        text = self.cli(service, "INFO", "replication")
        return dict(line.split(":", 1) for line in text.split() if ":" in line)


@pytest.fixture
def ha_project() -> Iterator[HAProject]:
    """redis, redis-replica and three Sentinels up (short timings); removed after."""
    problem = docker.reachable()
    if problem is not None:
        pytest.skip(f"no Docker engine: {problem}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "MQTT_"))}
    env.update(MQTT_BRIDGE_PASSWORD="unused", MQTT_DEVICE_PASSWORD="unused", MQTT_URL="mqtt://x")
    env.update({f"REDIS_{r}PASSWORD": secrets.token_hex(16) for r in ROLES})
    env.update(HA_ENV, SENTINEL_DOWN_AFTER_MS="1500", SENTINEL_FAILOVER_TIMEOUT_MS="6000")
    base = standins.base_images().get("REDIS_IMAGE")
    if base and docker.image_exists(base):
        env["REDIS_IMAGE"] = base
        found = docker.run(
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            base,
            "-c",
            "command -v redis-sentinel",
            check=False,
        )
        assert found.returncode == 0, f"{base} has no redis-sentinel: python -m devtools.standins"
    project = HAProject(f"sdha{os.getpid()}", env)
    try:
        project.compose("up", "-d", "redis", "redis-replica", *SENTINELS)
        yield project
    finally:
        project.compose("down", "-v", "--remove-orphans")


@pytest.mark.serial  # a compose stack and Sentinel's failover timing
def test_ha_profile_fails_over_and_the_old_master_rejoins(ha_project: HAProject) -> None:
    """Compose's own services: kill `redis`, the Sentinels promote `redis-replica`;
    `redis` restarted asks them and comes back as its replica, by host name."""
    wait(lambda: ha_project.master() == "redis", 60, "the Sentinels to know the master")
    wait(
        lambda: ha_project.replication("redis-replica").get("master_link_status") == "up",
        60,
        "the replica to sync",
    )
    for sentinel in SENTINELS:
        wait(lambda s=sentinel: ha_project.peers(s) == 2, 60, f"{sentinel} to find its peers")
    docker.run("kill", ha_project.container("redis"))
    took = wait(lambda: ha_project.master() == "redis-replica", 60, "the failover")
    print(f"FAILOVER compose ha profile: promoted after {took:.1f} s")
    assert ha_project.replication("redis-replica")["role"] == "master"
    docker.run("start", ha_project.container("redis"))
    wait(
        lambda: ha_project.replication("redis").get("master_host") == "redis-replica",
        60,
        "the old master to rejoin as a replica",
    )
    assert ha_project.replication("redis")["role"] == "slave"
    assert ha_project.master() == "redis-replica"


def wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `check` until true; the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.5)
    return time.monotonic() - started
