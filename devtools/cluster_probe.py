"""`python -m devtools.cluster_probe`: what sharded pub/sub would save on a Redis Cluster.

Starts a three-master Redis Cluster on loopback (the system's redis-server,
>= 7.0), publishes the same readings with PUBLISH and with SPUBLISH (hash-
tagged so one stream, its marks and its channel share a slot), and prints
what the nodes that own nothing of it spent: cluster-bus messages and CPU.
The figures back the plan in docs/redis-ha.md ("Past one shard").
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from devtools.redis_server import free_port

# One slot for everything of a channel: `{readings}:stream`, `{readings}:published`...
TAG = "{readings}"
READING = json.dumps(
    {
        "data": {
            "source": "pi-livingroom",
            "sensor": "bme280",
            "ts": 1763712000.125,
            "seq": 4211,
            "values": {"temperature_c": 21.53, "humidity_pct": 40.2, "pressure_hpa": 1013.25},
        },
        "type": "reading",
        "id": "1763712000125-0",
    }
)


def start_cluster(tmp: Path, nodes: int = 3) -> list[subprocess.Popen]:
    """Start `nodes` cluster-enabled servers and join them; the processes."""
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if server is None or cli is None:
        raise SystemExit("needs redis-server and redis-cli >= 7.0 (apt-get install redis-server)")
    ports = [free_port() for _ in range(nodes)]
    procs = []
    for port in ports:
        workdir = tmp / str(port)
        workdir.mkdir()
        args = [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
    for port in ports:
        _wait_ping(port)
    addresses = [f"127.0.0.1:{p}" for p in ports]
    subprocess.run(
        [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    client = redis.RedisCluster(host="127.0.0.1", port=ports[0])
    deadline = time.monotonic() + 20
    while client.cluster_info()["cluster_state"] != "ok":
        if time.monotonic() > deadline:
            raise SystemExit("the cluster did not become ready")
        time.sleep(0.1)
    client.close()
    return procs


def _wait_ping(port: int) -> None:
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit(f"redis-server on {port} did not start")


def _bystander_cost(nodes: list[redis.Redis]) -> tuple[int, float]:
    """(cluster-bus messages received, CPU seconds) summed over `nodes`."""
    messages, cpu = 0, 0.0
    for node in nodes:
        info = node.execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
        messages += int(info.get("cluster_stats_messages_received", 0))
        stats = node.info("cpu")
        cpu += float(stats["used_cpu_user"]) + float(stats["used_cpu_sys"])
    return messages, cpu


def measure(port: int, command: str, count: int) -> dict[str, float]:
    """Publish `count` readings with `command` on the slot's owner; what the others spent."""
    cluster = redis.RedisCluster(host="127.0.0.1", port=port)
    owner_node = cluster.get_node_from_key(TAG)
    owner = redis.Redis(host=owner_node.host, port=owner_node.port)
    others = [
        redis.Redis(host=n.host, port=n.port)
        for n in cluster.get_primaries()
        if n.port != owner_node.port
    ]
    subscriber = owner.pubsub()
    (subscriber.ssubscribe if command == "SPUBLISH" else subscriber.subscribe)(TAG)
    before_msgs, before_cpu = _bystander_cost(others)
    started = time.perf_counter()
    pipe = owner.pipeline(transaction=False)
    for i in range(count):
        pipe.execute_command(command, TAG, READING)
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    elapsed = time.perf_counter() - started
    time.sleep(1.0)  # let the bus deliver (and the cluster cron tick) before reading counters
    after_msgs, after_cpu = _bystander_cost(others)
    received = 0
    while subscriber.get_message(timeout=0.2) is not None:
        received += 1
    figures = {
        "messages": count,
        "publish_per_s": round(count / elapsed),
        "bus_messages_at_other_nodes": after_msgs - before_msgs,
        "cpu_ms_at_other_nodes": round((after_cpu - before_cpu) * 1000, 1),
        "received_by_subscriber": received - 1,  # minus the (s)subscribe confirmation
    }
    subscriber.close()
    for client in (owner, *others):
        client.close()
    cluster.close()
    return figures


def main() -> int:
    """Start a cluster, measure both ways, print JSON lines, stop the cluster."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="readings per command")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sensor-display-cluster-") as tmp:
        procs = start_cluster(Path(tmp))
        try:
            port = int(procs[0].args[2])
            for command in ("PUBLISH", "SPUBLISH"):
                print(json.dumps({"command": command, **measure(port, command, args.count)}))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
