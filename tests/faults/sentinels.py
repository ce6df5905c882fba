"""A Redis master, its replica and three Sentinels on loopback, all real processes.

They run the compose `ha` profile's own scripts: deploy/redis/start.sh (the
ACL users of every role, plus the replication and Sentinel users) and
deploy/redis/sentinel.sh (Debian's `redis-sentinel`), with the timings
shortened so a failover takes a couple of seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from devtools.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
MASTER_NAME = "mymaster"
PASSWORDS = {
    "default": "admin-pw",
    "producer": "producer-pw",
    "web": "web-pw",
    "recorder": "recorder-pw",
    "replication": "replication-pw",
}
# Every role's password for the Sentinels (their `default` user: look up only).
SENTINEL_PASSWORD = "sentinel-pw"
# The Sentinels' `admin` user, also their `sentinel` user on the data nodes.
SENTINEL_ADMIN_PASSWORD = "sentinel-admin-pw"
SCRIPTS = ROOT / "deploy" / "redis"
# Shorter than the compose profile's 5000 ms (docs/redis-ha.md) to keep the
# tests short; long enough that a loaded CI machine does not fail over by itself.
DOWN_AFTER_MS = 1500
FAILOVER_TIMEOUT_MS = 6000
QUORUM = 2


def _executable(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is missing: apt-get install -y {name}")
    return found


@dataclass
class Proc:
    """One server process and where it listens."""

    name: str
    port: int
    workdir: Path
    process: subprocess.Popen | None = None
    paused: bool = False

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Send `sig` to the server process itself."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process is None:
            return
        if self.paused:
            self.signal(signal.SIGCONT)
            self.paused = False
        self.signal(signal.SIGKILL)
        self.process.wait()


@dataclass
class SentinelCluster:
    """Master, replica and three Sentinels; every fault a test needs, by name."""

    tmp: Path
    nodes: list[Proc] = field(default_factory=list)
    sentinels: list[Proc] = field(default_factory=list)
    # Once set, a (re)started node asks the Sentinels for its role, as in compose.
    sentinels_known: bool = False

    # -- start -------------------------------------------------------------

    @classmethod
    def start(cls, tmp: Path) -> SentinelCluster:
        """Start node 0 as master, node 1 as its replica, then the Sentinels."""
        cluster = cls(tmp)
        try:
            master = cluster._node(0)
            cluster._start_node(master)
            replica = cluster._node(1)
            cluster._start_node(replica, replica_of=master.port)
            cluster.wait_replica_synced(replica)
            for i in range(3):
                cluster._start_sentinel(i, master.port)
            cluster.sentinels_known = True
            cluster.wait_sentinels_ready()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _node(self, i: int) -> Proc:
        node = Proc(f"redis-{i}", free_port(), self.tmp / f"redis-{i}")
        node.workdir.mkdir(parents=True, exist_ok=True)
        self.nodes.append(node)
        return node

    def _start_node(self, node: Proc, replica_of: int | None = None) -> None:
        env = {
            "PATH": str(Path(_executable("redis-server")).parent) + ":/usr/bin:/bin",
            "REDIS_DATA_DIR": str(node.workdir),
            "REDIS_PORT": str(node.port),
            "REDIS_ANNOUNCE_HOST": "127.0.0.1",
            "REDIS_PASSWORD": PASSWORDS["default"],
            "REDIS_PRODUCER_PASSWORD": PASSWORDS["producer"],
            "REDIS_WEB_PASSWORD": PASSWORDS["web"],
            "REDIS_RECORDER_PASSWORD": PASSWORDS["recorder"],
            "REDIS_REPLICATION_PASSWORD": PASSWORDS["replication"],
            "REDIS_SENTINEL_ADMIN_PASSWORD": SENTINEL_ADMIN_PASSWORD,
        }
        if replica_of is not None:
            env["REDIS_REPLICA_OF"] = f"127.0.0.1:{replica_of}"
        if self.sentinels_known:
            env["REDIS_SENTINELS"] = self.sentinel_list
            env["REDIS_SENTINEL_PASSWORD"] = SENTINEL_PASSWORD
        args = ["--bind", "127.0.0.1", "--loglevel", "notice"]
        with (self.tmp / f"{node.name}.log").open("ab") as log:
            node.process = subprocess.Popen(
                ["sh", str(SCRIPTS / "start.sh"), *args], env=env, stdout=log, stderr=log
            )
        node.paused = False
        self._wait_ping(node.port, PASSWORDS["default"], node)

    def _start_sentinel(self, i: int, master_port: int) -> None:
        sentinel = Proc(f"sentinel-{i}", free_port(), self.tmp / f"sentinel-{i}")
        sentinel.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": str(Path(_executable("redis-sentinel")).parent) + ":/usr/bin:/bin",
            "SENTINEL_DIR": str(sentinel.workdir),
            "SENTINEL_PORT": str(sentinel.port),
            "SENTINEL_MONITOR": f"127.0.0.1 {master_port}",
            "SENTINEL_QUORUM": str(QUORUM),
            "SENTINEL_DOWN_AFTER_MS": str(DOWN_AFTER_MS),
            "SENTINEL_FAILOVER_TIMEOUT_MS": str(FAILOVER_TIMEOUT_MS),
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
            "REDIS_SENTINEL_ADMIN_PASSWORD": SENTINEL_ADMIN_PASSWORD,
        }
        with (self.tmp / f"{sentinel.name}.log").open("ab") as log:
            sentinel.process = subprocess.Popen(
                ["sh", str(SCRIPTS / "sentinel.sh"), "--bind", "127.0.0.1"],
                env=env,
                stdout=log,
                stderr=log,
            )
        self.sentinels.append(sentinel)
        self._wait_ping(sentinel.port, SENTINEL_PASSWORD, sentinel)

    def _wait_ping(self, port: int, password: str, proc: Proc, timeout: float = 10.0) -> None:
        client = redis.Redis(port=port, password=password, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if not proc.alive():
                        raise RuntimeError(f"{proc.name} exited at start; see its log") from None
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    # -- what the processes under test are given ---------------------------

    @property
    def sentinel_list(self) -> str:
        """REDIS_SENTINELS for the processes under test."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def env(self, user: str) -> dict[str, str]:
        """The environment of a process that connects as `user` through Sentinel.

        REDIS_URL's host and port are ignored in Sentinel mode; they point
        at a closed port here, so a process that did not follow Sentinel fails.
        """
        return {
            "REDIS_URL": f"redis://{user}:{PASSWORDS[user]}@127.0.0.1:1/0",
            "REDIS_SENTINELS": self.sentinel_list,
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        }

    # -- inspection --------------------------------------------------------

    def admin(self, node: Proc) -> redis.Redis:
        """An admin client of one data node (close it)."""
        return redis.Redis(port=node.port, password=PASSWORDS["default"], socket_timeout=2)

    def _ask_sentinels(self) -> list[dict]:
        answers = []
        for s in self.sentinels:
            if not s.alive() or s.paused:
                continue
            client = redis.Redis(port=s.port, password=SENTINEL_PASSWORD, socket_timeout=1)
            try:
                answers.append(client.sentinel_master(MASTER_NAME))
            except redis.RedisError:
                continue
            finally:
                client.close()
        return answers

    def master_port(self) -> int | None:
        """The master's port as a majority of live Sentinels name it, or None."""
        ports = [int(a["port"]) for a in self._ask_sentinels()]
        for port in set(ports):
            if ports.count(port) >= QUORUM:
                return port
        return None

    def node_at(self, port: int) -> Proc:
        """The data node listening on `port`."""
        return next(n for n in self.nodes if n.port == port)

    @property
    def master(self) -> Proc:
        """The current master (as the Sentinels see it)."""
        port = self.master_port()
        assert port is not None, "the Sentinels name no master"
        return self.node_at(port)

    @property
    def replica(self) -> Proc:
        """A data node other than the current master."""
        port = self.master_port()
        return next(n for n in self.nodes if n.port != port)

    def wait_replica_synced(self, node: Proc, timeout: float = 20.0) -> None:
        """Until `node` is a replica whose link to its master is up."""

        def synced() -> bool:
            client = self.admin(node)
            try:
                info = client.info("replication")
            except redis.RedisError:
                return False
            finally:
                client.close()
            return info.get("role") == "slave" and info.get("master_link_status") == "up"

        _wait(synced, timeout, f"{node.name} to sync as a replica")

    def wait_sentinels_ready(self, timeout: float = 20.0) -> None:
        """Until every live Sentinel knows the master, its replica and the other Sentinels."""
        live = [s for s in self.sentinels if s.alive()]

        def ready() -> bool:
            answers = self._ask_sentinels()
            return len(answers) == len(live) and all(
                int(a["num-slaves"]) >= 1 and int(a["num-other-sentinels"]) >= len(live) - 1
                for a in answers
            )

        _wait(ready, timeout, "the Sentinels to discover each other")

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> float:
        """Seconds until a majority of Sentinels names a master other than `old_port`."""
        start = time.monotonic()

        def moved() -> bool:
            port = self.master_port()
            return port is not None and port != old_port

        _wait(moved, timeout, "the Sentinels to promote the replica")
        return time.monotonic() - start

    def role(self, node: Proc) -> str | None:
        """`master` or `slave`, as the node itself says; None if it does not answer."""
        client = self.admin(node)
        try:
            return client.info("replication").get("role")
        except redis.RedisError:
            return None
        finally:
            client.close()

    # -- faults ------------------------------------------------------------

    def pause(self, node: Proc) -> None:
        """SIGSTOP: the node keeps its sockets open and answers nothing."""
        node.signal(signal.SIGSTOP)
        node.paused = True

    def resume(self, node: Proc) -> None:
        """SIGCONT after `pause`."""
        node.signal(signal.SIGCONT)
        node.paused = False

    def cut_replication(self) -> None:
        """Break the replica's link and keep it broken: the master's writes reach no replica.

        A wrong `masterauth` makes every reconnect fail its AUTH. (Cutting
        the link with a proxy does not hold: the Sentinels "fix" a replica
        that follows another address than the master's.)
        """
        replica, master = self.admin(self.replica), self.admin(self.master)
        try:
            replica.config_set("masterauth", "not-the-replication-password")
            master.client_kill_filter(_type="replica")
        finally:
            replica.close()
            master.close()

    def mend_replication(self, node: Proc) -> None:
        """Give `node` the right `masterauth` again."""
        client = self.admin(node)
        try:
            client.config_set("masterauth", PASSWORDS["replication"])
        finally:
            client.close()

    def restart(self, node: Proc, replica_of: int | None = None) -> None:
        """Start a killed data node again on its data, as compose would (start.sh asks Sentinel)."""
        self._start_node(node, replica_of=replica_of)

    def stop(self) -> None:
        """Kill everything (tests own their data: nothing to shut down gracefully)."""
        for proc in [*self.sentinels, *self.nodes]:
            proc.kill()


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
