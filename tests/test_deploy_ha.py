"""The compose `ha` profile, as `docker-compose config` renders it, and its documented timings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_deploy_static import compose

ROOT = Path(__file__).resolve().parent.parent
HA_ENV = {
    "REDIS_SENTINELS": "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379",
    "REDIS_SENTINEL_PASSWORD": "sentinel-secret",
    "REDIS_SENTINEL_ADMIN_PASSWORD": "sentinel-admin-secret",
    "REDIS_REPLICATION_PASSWORD": "replication-secret",
}
APPS = ["web", "recorder", "producer-demo", "producer-server", "producer-pi"]


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
