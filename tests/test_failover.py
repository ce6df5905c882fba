"""Redis Sentinel failover (issue 17): real master, replica, three Sentinels, the whole stack.

Each test starts the cluster (tests/faults/sentinels.py), the recorder, two
producers at 10 readings/s, two web servers and 20 SSE clients that reconnect
with Last-Event-ID, all connecting through Sentinel as their own ACL users;
injects one fault; then checks that every reading made is in the database
once and reached every client once. `pytest -s` prints one row of the
durability table per fault (docs/redis-ha.md).
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults.rig import ENV, FIRST_SEQ, SENSOR, LoggedStack, ProducerProc, Rig, Tally, wait_for
from faults.sentinels import SentinelCluster

from producers.outbox import Outbox

# serial: Sentinel's 1.5 s down-after and the silence limit are timing.
pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.timeout(240)]

PRODUCERS = 2
CLIENTS = 20
# Silence a user may see: Sentinel's down-after (1.5 s here), the election,
# and each process's reconnect backoff; generous for a loaded 2-core machine.
MAX_SILENCE_S = 20.0
RESENT = re.compile(r"re-sending (\d+) readings")


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[tuple[SentinelCluster, Rig]]:
    """The cluster, the replica in sync, and the stack on it; all stopped at teardown."""
    cluster = SentinelCluster.start(tmp_path / "redis")
    stack = LoggedStack.create(tmp_path, {**ENV, **cluster.env("web")}, log_dir=tmp_path / "logs")
    rig = Rig(tmp_path, cluster, stack)  # type: ignore[arg-type]  # stop() is all it uses
    try:
        stack.start("recorder", ["-m", "recorder"], **cluster.env("recorder"))
        for i in range(PRODUCERS):
            start_producer(rig, cluster, i)
        rig._start_webs(2)
        rig._start_clients(CLIENTS)
        yield cluster, rig
    finally:
        rig.close()


def start_producer(rig: Rig, cluster: SentinelCluster, i: int) -> None:
    """A producer with a seeded outbox (the rig counts from its first seq)."""
    outbox, source = rig.tmp / f"outbox-{i}.sqlite3", f"p{i}"
    seed = Outbox(outbox)
    with seed.conn:
        seed.conn.execute("INSERT INTO seqs VALUES (?, ?, ?)", (source, SENSOR, FIRST_SEQ - 1))
    seed.close()
    name = f"producer-{i}"
    rig.stack.start(
        name,
        ["-m", "producers"],
        SOURCE=source,
        OUTBOX_PATH=str(outbox),
        **cluster.env("producer"),
    )
    rig.producers.append(ProducerProc(name, source, outbox))


def after_fault(rig: Rig, fault_at: float, timeout: float = 40.0) -> None:
    """Until every client has readings measured 2 s after the fault (the stack recovered)."""
    wait_for(
        lambda: all(c.live and c.live[-1].ts > fault_at + 2 for c in rig.clients),
        timeout,
        "readings measured after the fault at every client",
    )


def row(
    rig: Rig, tally: Tally, fault: str, since: float, fault_at: float, failover: float | None
) -> dict[str, object]:
    """Print one row of the durability table and assert nothing was lost or doubled."""
    baseline = tally.latencies(lambda c, r: r.at < since)
    after = tally.latencies(lambda c, r: r.at >= since)
    figures = tally.summary(fault, after, baseline)
    silence = max(
        (b.at - a.at for c in rig.clients for a, b in zip(c.live, c.live[1:], strict=False)),
        default=0.0,
    )
    resent = sum(
        int(n)
        for p in rig.producers
        for n in RESENT.findall((rig.tmp / "logs" / f"{p.name}.log").read_text(errors="replace"))
    )
    extra = {
        "failover_s": None if failover is None else round(failover, 2),
        "silence_s": round(silence, 2),
        "resent": resent,
    }
    print("FAILOVER " + " ".join(f"{k}={v}" for k, v in extra.items()), flush=True)
    figures.update(extra)
    assert figures["db_lost"] == 0, figures
    assert figures["db_dup"] == 0, figures
    assert figures["client_lost"] == 0, figures
    assert figures["client_dup"] == 0, figures
    assert figures["resets"] == 0, figures
    assert silence < MAX_SILENCE_S, figures
    return figures


def settle(seconds: float = 2.0) -> float:
    """Stream undisturbed for a while (the latency baseline); the time it ends."""
    time.sleep(seconds)
    return time.time()


def test_master_killed(ha: tuple[SentinelCluster, Rig]) -> None:
    """SIGKILL the master mid-stream: the replica takes over, nothing lost or doubled."""
    cluster, rig = ha
    since = settle()
    old = cluster.master
    fault_at = time.time()
    old.kill()
    failover = cluster.wait_failover(old.port)
    after_fault(rig, fault_at)
    # Back as compose restarts it (no role given): it asks the Sentinels and
    # rejoins as a replica, never as a second master holding stale data.
    cluster.restart(old)
    assert cluster.role(old) == "slave"
    tally = rig.finish()
    row(rig, tally, "master SIGKILL", since, fault_at, failover)


def test_master_killed_with_writes_the_replica_never_got(ha: tuple[SentinelCluster, Rig]) -> None:
    """The replica's link cut for 1 s, then the master SIGKILLed: acknowledged writes lost.

    Redis replicates asynchronously: the master acknowledged a second of
    readings (recorded, delivered to clients) that the promoted replica never
    had. The producers learn it from the new master's marks and re-send them;
    the database and the clients still hold each reading once.
    """
    cluster, rig = ha
    since = settle()
    old, replica = cluster.master, cluster.replica
    cluster.cut_replication()
    time.sleep(1.0)  # readings the replica never gets, below down-after (1.5 s)
    fault_at = time.time()
    old.kill()
    failover = cluster.wait_failover(old.port)
    cluster.mend_replication(replica)
    after_fault(rig, fault_at)
    tally = rig.finish()
    figures = row(rig, tally, "replica link cut 1 s, master SIGKILL", since, fault_at, failover)
    assert figures["resent"] > 0, "no acknowledged write was lost: the fault did not bite"


def test_master_paused_past_down_after(ha: tuple[SentinelCluster, Rig]) -> None:
    """SIGSTOP the master until the replica is promoted, then SIGCONT: split brain.

    The old master wakes up believing it is master, with connections and
    commands queued from before the pause. Whatever it accepts then is
    discarded when the Sentinels demote it; the producers' outboxes re-send
    it because the recorder's marks on the new master do not cover it.
    """
    cluster, rig = ha
    since = settle()
    old = cluster.master
    fault_at = time.time()
    cluster.pause(old)
    failover = cluster.wait_failover(old.port)
    time.sleep(1.0)  # well past down-after: the split brain is the point
    cluster.resume(old)
    demoted = wait_for(lambda: cluster.role(old) == "slave", 30, "the old master's demotion")
    print(f"FAILOVER old master demoted {demoted:.1f} s after SIGCONT")
    after_fault(rig, fault_at)
    tally = rig.finish()
    row(rig, tally, "master SIGSTOP past down-after, SIGCONT", since, fault_at, failover)


def test_sentinel_killed(ha: tuple[SentinelCluster, Rig]) -> None:
    """SIGKILL one Sentinel: every process keeps asking the other two; no one notices."""
    cluster, rig = ha
    since = settle()
    master = cluster.master_port()
    fault_at = time.time()
    cluster.sentinels[0].kill()
    time.sleep(4.0)  # every hub and the recorder ask Sentinel once a second
    assert cluster.master_port() == master
    after_fault(rig, fault_at)
    tally = rig.finish()
    row(rig, tally, "one Sentinel SIGKILL", since, fault_at, None)


def test_replica_killed(ha: tuple[SentinelCluster, Rig]) -> None:
    """SIGKILL the replica, restart it 4 s later: the master keeps taking readings."""
    cluster, rig = ha
    since = settle()
    master, replica = cluster.master, cluster.replica
    fault_at = time.time()
    replica.kill()
    time.sleep(4.0)
    assert cluster.master_port() == master.port
    cluster.restart(replica, replica_of=master.port)
    cluster.wait_replica_synced(replica)
    after_fault(rig, fault_at)
    tally = rig.finish()
    row(rig, tally, "replica SIGKILL, restarted", since, fault_at, None)


def test_resume_on_other_server_during_failover(ha: tuple[SentinelCluster, Rig]) -> None:
    """Acknowledged writes lost in a failover while a web server dies: its clients resume.

    The hardest combination: the readings the producers re-send have new
    stream ids, and the clients of the dead web server resume on the other
    with the id of a reading the new master never had. Each still gets
    every reading once.
    """
    cluster, rig = ha
    since = settle()
    old, replica = cluster.master, cluster.replica
    cluster.cut_replication()
    time.sleep(1.0)  # readings the replica never gets
    fault_at = time.time()
    old.kill()
    rig.stack.stop("web-0", signal.SIGKILL)
    failover = cluster.wait_failover(old.port)
    cluster.mend_replication(replica)
    after_fault(rig, fault_at)
    tally = rig.finish()
    figures = row(rig, tally, "link cut, master + web-0 SIGKILL", since, fault_at, failover)
    assert figures["resent"] > 0, "no acknowledged write was lost: the fault did not bite"
