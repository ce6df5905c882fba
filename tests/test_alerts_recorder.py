"""The evaluator and the Apprise notifier with real parts: SQLite, redis-server, HTTP receivers."""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from recorder.alerts import Evaluator, load_states
from recorder.notifier import Notifier, TargetError, parse_targets, status_json
from shared import alerts, store
from shared.events import Event
from shared.reading import Reading
from tests.alert_receiver import receiver

RULES = """
[[rule]]
name = "pi-hot"
metric = "pi/pi_cpu/cpu_temp_c"
above = 80.0
for = "5m"
clear = 75.0
"""
SECRET = "hunter2-Tok3n"
T0 = float(int(time.time()) - 7200)


def rules(text: str = RULES) -> list[alerts.Rule]:
    import tomllib

    return alerts.parse_rules(tomllib.loads(text))


def trace(start_seq: int = 1, t0: float = T0) -> list[Event]:
    """10 min at 70, 15 min at 85, 10 min at 70, one reading every 10 s."""
    values = [70.0] * 60 + [85.0] * 90 + [70.0] * 60
    return [
        Event(
            f"{int((t0 + i * 10) * 1000)}-0",
            Reading(
                source="pi",
                sensor="pi_cpu",
                ts=t0 + i * 10,
                seq=start_seq + i,
                values={"cpu_temp_c": v},
            ),
        )
        for i, v in enumerate(values)
    ]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = store.connect(tmp_path / "dashboard.sqlite3")
    store.init_db(c)
    yield c
    c.close()


def evaluator(conn: sqlite3.Connection, notifier: Notifier | None = None, **kw) -> Evaluator:
    ev = Evaluator(rules(), conn, notifier=notifier, **kw)
    ev.prepare()
    return ev


def notifier_for(conn: sqlite3.Connection, urls: list[str], **kw) -> Notifier:
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    n = Notifier(parse_targets(urls), path, retry_first=0.1, **kw)
    n.start()
    return n


def test_a_hot_pi_gives_one_firing_and_one_resolved_at_json_and_ntfy(
    conn: sqlite3.Connection, redis_client: redis.Redis
) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("readings")
    with receiver() as rec_json, receiver() as rec_ntfy:
        notifier = notifier_for(
            conn,
            [rec_json.json_url(), rec_ntfy.ntfy_url("pi-alerts")],
            public_url="https://sensors.example",
        )
        ev = evaluator(conn, notifier, client=redis_client)
        for i in range(0, 210, 7):  # batches, as the recorder hands them over
            ev.observe(trace()[i : i + 7])
        got = rec_json.wait_for(2)
        ntfy = rec_ntfy.wait_for(2)
        notifier.stop()
    assert [r.title for r in got] == ["FIRING: pi-hot", "RESOLVED: pi-hot"]
    assert "pi/pi_cpu/cpu_temp_c is 85, above 80 since" in got[0].message
    assert got[0].message.endswith("https://sensors.example")
    assert [r.title for r in ntfy] == ["FIRING: pi-hot", "RESOLVED: pi-hot"]
    assert all(r.body.get("topic") == "pi-alerts" for r in ntfy)
    # Both on the channel as `event: alert` material; nothing more.
    messages = []
    deadline = time.monotonic() + 5
    while len(messages) < 2 and time.monotonic() < deadline:
        m = pubsub.get_message(timeout=0.5)
        if m:
            messages.append(json.loads(m["data"]))
    assert [(m["type"], m["data"]["kind"], m["data"]["state"]) for m in messages] == [
        ("alert", "firing", "firing"),
        ("alert", "resolved", "ok"),
    ]
    rows = conn.execute("SELECT kind, pending FROM alert_transitions ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("firing", "[]"), ("resolved", "[]")]


class Lines(logging.Handler):
    """What the process's log handler (on the root logger) would write."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    """Every record that reaches the root logger at DEBUG, as a deployment's log would show."""
    root, handler = logging.getLogger(), Lines()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_failing_receiver_gets_it_once_it_recovers_and_no_secret_is_logged(
    conn: sqlite3.Connection, log_lines: Lines
) -> None:
    statuses: list[dict] = []
    with receiver(fail_first=3) as rec:
        url = rec.json_url(SECRET)
        notifier = notifier_for(
            conn, [url], report=lambda _id, s: statuses.append(json.loads(status_json(s)))
        )
        ev = evaluator(conn, notifier)
        ev.observe(trace()[:150])
        got = rec.wait_for(1)
        assert rec.requests == 4  # three failures, then the one that arrived
        notifier.stop()
    assert [r.title for r in got] == ["FIRING: pi-hot"]
    assert got[0].headers["Authorization"].startswith("Basic ")  # the secret was used...
    assert any(not s["ok"] and "500" in s["last_error"] for s in statuses)
    assert statuses[-1]["ok"]
    assert statuses[-1]["sent"] == 1
    assert statuses[-1]["failures"] == 3
    assert statuses[-1]["target"] == f"json://127.0.0.1:{rec.port}"
    # ...and never written: Apprise's and urllib3's request logs stay out of the log.
    assert [r for r in log_lines.records if r.name.startswith(("apprise", "urllib3"))] == []
    logged = "\n".join(r.getMessage() for r in log_lines.records)
    assert "could not send FIRING: pi-hot" in logged
    assert SECRET not in logged
    assert all(SECRET not in json.dumps(s) for s in statuses)


def test_a_restart_in_the_middle_of_for_keeps_the_schedule(conn: sqlite3.Connection) -> None:
    events = trace()
    first = evaluator(conn)
    assert first.observe(events[:80]) == []  # 3m20s into the 5 minutes
    assert first.states[("pi-hot", "pi/pi_cpu/cpu_temp_c")].state == "pending"
    second = evaluator(conn)  # a new process on the same database
    sent = second.observe(events[80:])
    assert [(t.title, t.at - events[0].reading.ts) for t in sent] == [
        ("FIRING: pi-hot", 900),
        ("RESOLVED: pi-hot", 1500),
    ]
    # The stream replayed from the start (a new consumer group): nothing again.
    third = evaluator(conn)
    assert third.observe(events) == []
    assert conn.execute("SELECT count(*) FROM alert_transitions").fetchone()[0] == 2


def test_undelivered_notifications_are_sent_after_a_restart(conn: sqlite3.Connection) -> None:
    with receiver() as rec:
        port = rec.port
    # Nothing listens on the port now: the first process cannot deliver.
    first_notifier = notifier_for(conn, [f"json://127.0.0.1:{port}/hook"])
    evaluator(conn, first_notifier).observe(trace()[:150])
    first_notifier.stop()
    assert conn.execute("SELECT pending FROM alert_transitions").fetchone()[0] != "[]"
    with receiver(port=port) as rec:
        second_notifier = notifier_for(conn, [rec.json_url()])
        evaluator(conn, second_notifier)
        got = rec.wait_for(1)
        time.sleep(0.3)  # and nothing more arrives
        second_notifier.stop()
    assert [r.title for r in got] == ["FIRING: pi-hot"]
    assert rec.titles() == ["FIRING: pi-hot"]


def test_stale_fires_without_readings_and_resolves_on_the_next(conn: sqlite3.Connection) -> None:
    now = [1_700_000_000.0]
    stale_rules = rules(RULES + 'stale = "2m"\n')
    ev = Evaluator(stale_rules, conn, clock=lambda: now[0])
    ev.prepare()
    assert ev.tick() == []
    now[0] += 119
    assert ev.tick() == []
    now[0] += 1
    assert [t.title for t in ev.tick()] == ["FIRING: pi-hot"]
    now[0] += 60
    assert ev.tick() == []
    reading = Reading(source="pi", sensor="pi_cpu", ts=now[0], seq=1, values={"cpu_temp_c": 50})
    assert [t.title for t in ev.observe([Event("1-0", reading)])] == ["RESOLVED: pi-hot"]
    assert load_states(conn)[("pi-hot", "pi/pi_cpu/cpu_temp_c")].state == "ok"


def test_a_rule_removed_from_the_file_takes_its_state_along(conn: sqlite3.Connection) -> None:
    evaluator(conn).observe(trace()[:100])
    assert load_states(conn)
    Evaluator(rules(RULES.replace("pi-hot", "pi-warm")), conn).prepare()
    assert [k[0] for k in load_states(conn)] == ["pi-warm"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("bogus://nothing/here", "ALERT_URLS entry 1 (bogus://...) is not a URL Apprise"),
        ("no-scheme-" + SECRET, "ALERT_URLS entry 1 (?://...)"),
    ],
)
def test_a_bad_url_is_refused_without_showing_it(url: str, message: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_targets([url])
    assert message in str(caught.value)
    assert SECRET not in str(caught.value)


def test_labels_never_hold_secrets() -> None:
    urls = [
        f"tgram://123456:{SECRET}/987654",
        f"ntfys://ntfy.sh/{SECRET}",
        f"mailtos://me:{SECRET}@example.com?to=x@example.com",
        f"gotify://gotify.example/{SECRET}",
    ]
    targets = parse_targets(urls)
    assert [t.label for t in targets][1:] == [
        "ntfys://ntfy.sh",
        "mailtos://example.com",
        "gotify://gotify.example",
    ]
    for t in targets:
        assert SECRET not in t.label
        assert t.redact(f"failed at {SECRET}!") == "failed at ***!"


def test_a_hanging_service_never_holds_up_the_readings(conn: sqlite3.Connection) -> None:
    """Notifications go out on their own threads: evaluation returns while a target hangs."""
    with socket.create_server(("127.0.0.1", 0)) as hanging:  # accepts, never answers
        port = hanging.getsockname()[1]
        notifier = notifier_for(conn, [f"json://127.0.0.1:{port}/hook"])
        ev = evaluator(conn, notifier)
        started = time.monotonic()
        sent = ev.observe(trace())
        elapsed = time.monotonic() - started
        status = notifier.workers[0].status
        notifier.stopping = True  # its thread ends after the attempt in flight
    assert [t.title for t in sent] == ["FIRING: pi-hot", "RESOLVED: pi-hot"]
    # Apprise waits 4 s for an answer before it gives up on one attempt.
    assert elapsed < 3.0
    assert status.sent == 0


def test_states_made_before_the_alert_migration_survive_it(tmp_path: Path) -> None:
    """A database whose alert tables the evaluator created itself (schema 1) upgrades in place."""
    from importlib import resources

    from shared import migrations

    path = tmp_path / "old.sqlite3"
    old = store.connect(path)
    migrations._v1_tiers(old)
    old.executescript(resources.files("shared").joinpath("alerts.sql").read_text())
    old.execute("PRAGMA user_version = 1")
    old.commit()
    first = Evaluator(rules(), old)
    first.prepare()
    first.observe(trace()[:80])  # pending, 3m20s into the 5 minutes
    old.close()

    conn = store.connect(path)
    store.init_db(conn)
    assert migrations.version(conn) == migrations.VERSION
    second = evaluator(conn)
    assert second.states[("pi-hot", "pi/pi_cpu/cpu_temp_c")].state == "pending"
    assert [t.title for t in second.observe(trace()[80:])] == ["FIRING: pi-hot", "RESOLVED: pi-hot"]
    conn.close()
