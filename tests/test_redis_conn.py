"""shared/redis_conn.py: one URL, or the master that Sentinel names (real Sentinels)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from faults.rig import wait_for
from faults.sentinels import MASTER_NAME, SENTINEL_ADMIN_PASSWORD, SentinelCluster

from shared import redis_conn
from shared.bus import Bus
from shared.reading import Reading
from shared.settings import Settings, SettingsError, table

# serial: a Sentinel failover (1.5 s down-after) is timing.
pytestmark = pytest.mark.serial


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ()),
        ("s1:26379", (("s1", 26379),)),
        ("s1:26379, s2:26380 ,s3:1", (("s1", 26379), ("s2", 26380), ("s3", 1))),
        ("[::1]:26379", (("::1", 26379),)),
    ],
)
def test_sentinel_list_is_parsed(raw: str, expected: tuple) -> None:
    """REDIS_SENTINELS: comma-separated host:port pairs, spaces tolerated."""
    assert Settings.from_env({"REDIS_SENTINELS": raw}).redis_sentinels == expected


@pytest.mark.parametrize("raw", ["s1", "s1:", ":26379", "s1:port", "s1:0", "s1:65536", "s1:-1"])
def test_bad_sentinel_list_names_the_setting(raw: str) -> None:
    """A malformed entry is refused with the setting's name and the entry."""
    with pytest.raises(SettingsError, match="REDIS_SENTINELS"):
        Settings.from_env({"REDIS_SENTINELS": f"ok:1,{raw}"})


def test_sentinel_master_name_and_password() -> None:
    """The master name defaults to mymaster and is checked; the password is a secret row."""
    settings = Settings.from_env({"REDIS_SENTINEL_PASSWORD": "hunter2"})
    assert settings.redis_sentinel_master == "mymaster"
    assert settings.redis_sentinel_password == "hunter2"
    rows = {row.metadata["env"]: row for row in table()}
    assert rows["REDIS_SENTINEL_PASSWORD"].metadata.get("secret") is True
    with pytest.raises(SettingsError, match="REDIS_SENTINEL_MASTER"):
        Settings.from_env({"REDIS_SENTINEL_MASTER": "my master"})


def test_url_mode_is_unchanged(redis_url: str) -> None:
    """Without Sentinels, REDIS_URL is the server, and nothing asks Sentinel."""
    settings = Settings.from_env({"REDIS_URL": redis_url})
    client = redis_conn.client(settings)
    assert client.ping()
    assert redis_conn.current_master(client) is None
    client.close()


# --- against real Sentinels -------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelCluster]:
    """One master, one replica, three Sentinels for this module."""
    running = SentinelCluster.start(Path(tmp_path_factory.mktemp("sentinel")))
    yield running
    running.stop()


def reading(seq: int) -> Reading:
    """A valid reading of one test sensor."""
    return Reading(source="conn", sensor="demo", ts=time.time(), seq=seq, values={"t_c": 1.0})


def test_each_role_reaches_the_master_as_its_user(cluster: SentinelCluster) -> None:
    """REDIS_URL's host is ignored; its user and password log in on the master."""
    client = redis_conn.client(Settings.from_env(cluster.env("web")))
    assert client.client_info()["user"] == "web"
    assert client.connection_pool.get_master_address()[1] == cluster.master.port
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.publish("readings", "{}")  # the web user reads, never publishes
    client.close()


def test_wrong_sentinel_password_is_a_clear_error(cluster: SentinelCluster) -> None:
    """A bad REDIS_SENTINEL_PASSWORD fails to find a master, saying why."""
    env = {**cluster.env("web"), "REDIS_SENTINEL_PASSWORD": "wrong"}
    client = redis_conn.client(Settings.from_env(env))
    with pytest.raises(redis.ConnectionError, match="No master found"):
        client.ping()


def test_pool_is_bounded_and_follows_sentinel(cluster: SentinelCluster) -> None:
    """The web pool: at most N connections, callers wait; all on the current master."""
    settings = Settings.from_env(cluster.env("web"))
    client = redis_conn.pooled_client(settings, 2, socket_timeout=5)
    held = [client.connection_pool.get_connection() for _ in range(2)]
    started = time.monotonic()
    client.connection_pool.timeout = 0.3
    with pytest.raises(redis.ConnectionError):
        client.connection_pool.get_connection()
    assert time.monotonic() - started >= 0.25
    assert {(c.host, c.port) for c in held} == {("127.0.0.1", cluster.master.port)}
    for connection in held:
        client.connection_pool.release(connection)
    assert client.ping()
    client.close()


def test_failover_is_followed_and_the_script_reloaded(cluster: SentinelCluster) -> None:
    """After a failover: master_moved says so, the bus publishes on the new master.

    The script cache is not replicated: the new master answers NOSCRIPT, the
    producer (which may not load scripts) waits, and the recorder, which
    reconnects as soon as Sentinel names the new master, loads it again.
    """
    settings = Settings.from_env(cluster.env("producer"))
    recorder = Bus.for_settings(
        redis_conn.client(Settings.from_env(cluster.env("recorder"))), settings
    )
    recorder.load_scripts()
    bus = Bus.for_settings(redis_conn.client(settings, socket_timeout=5), settings)
    assert bus.publish(reading(1)) is not None
    subscriber = redis_conn.client(Settings.from_env(cluster.env("web")))
    pubsub = subscriber.pubsub()
    pubsub.subscribe("readings")
    assert not redis_conn.master_moved(subscriber, pubsub.connection)
    old = cluster.master
    admin = redis.Redis(port=cluster.sentinels[0].port, **sentinel_admin())
    admin.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
    cluster.wait_failover(old.port)
    new = cluster.master
    new_admin = cluster.admin(new)
    assert new_admin.script_exists(bus._publish.sha) == [False]
    wait_for(lambda: redis_conn.master_moved(subscriber, pubsub.connection), 10, "the move")
    # What a producer does before publishing: ask Sentinel, drop idle
    # connections to the old master; the next publish goes to the new one.
    assert redis_conn.current_master(bus.client) == ("127.0.0.1", new.port)
    with pytest.raises((redis.exceptions.NoScriptError, redis.exceptions.NoPermissionError)):
        bus.publish(reading(2), published=1)
    assert redis_conn.current_master(recorder.client) == ("127.0.0.1", new.port)
    recorder.load_scripts()
    assert bus.publish(reading(2), published=1) is not None
    assert new_admin.script_exists(bus._publish.sha) == [True]
    assert bus.marks.published()[("conn", "demo")] == 2
    pubsub.close()
    for client in (bus.client, recorder.client, subscriber, admin, new_admin):
        client.close()
    cluster.wait_replica_synced(old)


def sentinel_admin() -> dict[str, str]:
    """Credentials of the Sentinels' admin user."""
    return {"username": "admin", "password": SENTINEL_ADMIN_PASSWORD}
