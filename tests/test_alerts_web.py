"""Alerts on the web side: `event: alert` through the hub, /api/alerts, /metrics."""

from __future__ import annotations

import json
import time

import pytest
import redis

from recorder.alerts import Evaluator
from shared import alerts, store
from shared.alerts import targets_key
from shared.bus import Bus
from shared.events import Event
from shared.reading import Reading
from shared.settings import Settings
from web.hub import Hub
from web.stream import Filter, stream_events

RULES = alerts.parse_rules(
    {
        "rule": [
            {"name": "pi-hot", "metric": "pi/*/cpu_temp_c", "above": 80, "clear": 75},
            {"name": "humid", "metric": "*/bme280/humidity_pct", "above": 70, "for": "5m"},
        ]
    }
)


def alert_message(kind: str = "firing", sensor: str = "pi_cpu") -> bytes:
    rule = RULES[0]
    metric = f"pi/{sensor}/cpu_temp_c"
    state = alerts.State(rule="pi-hot", metric=metric, state=kind, since=100.0, seen_at=100.0)
    transition = alerts.Transition(
        kind=kind if kind == "firing" else "resolved",
        rule=rule.name,
        metric=metric,
        value=85.5,
        threshold=80.0,
        direction="above",
        clear=75.0,
        reason="threshold",
        since=100.0,
        at=130.0,
    )
    return alerts.alert_message(transition, state).encode()


def reading_message(seq: int, sensor: str = "pi_cpu") -> bytes:
    r = Reading(source="pi", sensor=sensor, ts=time.time(), seq=seq, values={"cpu_temp_c": 50.0})
    return json.dumps({"data": r.to_dict(), "type": "reading"}).encode()


@pytest.fixture
def hub(redis_client: redis.Redis) -> Hub:
    return Hub(redis_client, Bus(redis_client), ring_size=64)


def test_an_alert_message_becomes_an_alert_event_not_a_malformed_reading(hub: Hub) -> None:
    assert hub.accept_message(alert_message()) == 1
    assert hub.accept_message(reading_message(1)) == 1
    assert hub.stats.rejected == 0
    assert hub.stats.alerts == 1
    alert, reading = (e.payload for e in hub.entries(0))
    assert alert.startswith(b"event:alert\ndata:{")
    assert b"\nid:" not in alert  # alerts do not move the client's Last-Event-ID
    data = json.loads(alert.split(b"data:", 1)[1])
    assert data["rule"] == "pi-hot"
    assert data["state"] == "firing"
    assert data["value"] == 85.5
    assert reading.startswith(b"event:reading\n")


BAD_ALERTS = [
    b'{"data":{"rule":"x"},"type":"alert"}',
    alert_message().replace(b'"state":"firing"', b'"state":"<b>"'),
    alert_message().replace(b'"rule":"pi-hot"', b'"rule":"<img src=x>"'),
    alert_message().replace(b'"value":85.5', b'"value":"85"'),
    alert_message().replace(b'"source":"pi"', b'"source":"other"'),
    b'{"data":{}, "type":"alert"',
]


@pytest.mark.parametrize("data", BAD_ALERTS)
def test_a_malformed_alert_is_dropped_and_counted(hub: Hub, data: bytes) -> None:
    assert hub.accept_message(data) == 0
    assert hub.stats.rejected == 1
    assert hub.head == 0


def test_a_filtered_client_gets_the_alerts_of_its_sensors_only(hub: Hub) -> None:
    body = stream_events(
        hub, Filter(sensors=frozenset({"pi_cpu"})), None, heartbeat=5, history=None
    )
    assert next(body).startswith(b"retry:")
    hub.accept_message(alert_message(sensor="bme280"))
    hub.accept_message(alert_message(sensor="pi_cpu"))
    chunk = next(body)
    body.close()
    assert chunk.count(b"event:alert") == 1
    assert b'"metric":"pi/pi_cpu/cpu_temp_c"' in chunk
    assert hub.stats.clients == 0


def seed(settings: Settings) -> None:
    """The recorder's evaluator on the app's database: pi-hot fires, humid is pending."""
    conn = store.connect(settings.database_path)
    store.init_db(conn)
    ev = Evaluator(RULES, conn)
    ev.prepare()
    now = time.time()
    events = [
        Event(
            None,
            Reading(source="pi", sensor="pi_cpu", ts=now - 60, seq=1, values={"cpu_temp_c": 70.0}),
        ),
        Event(
            None,
            Reading(source="pi", sensor="pi_cpu", ts=now - 30, seq=2, values={"cpu_temp_c": 86.0}),
        ),
        Event(
            None,
            Reading(
                source="pi", sensor="bme280", ts=now - 30, seq=1, values={"humidity_pct": 75.0}
            ),
        ),
    ]
    ev.observe(events)
    conn.close()


def test_api_alerts_lists_firing_first_with_rules_and_transitions(app, client, settings) -> None:
    assert client.get("/api/alerts").get_json() == {
        "alerts": [],
        "rules": [],
        "transitions": [],
        "targets": [],
    }
    seed(settings)
    body = client.get("/api/alerts").get_json()
    assert [(a["rule"], a["metric"], a["state"], a["value"]) for a in body["alerts"]] == [
        ("pi-hot", "pi/pi_cpu/cpu_temp_c", "firing", 86.0),
        ("humid", "pi/bme280/humidity_pct", "pending", 75.0),
    ]
    assert set(body["alerts"][0]) >= {"rule", "metric", "state", "since", "value"}
    assert [r["name"] for r in body["rules"]] == ["humid", "pi-hot"]
    assert body["rules"][1]["above"] == 80
    assert body["rules"][1]["clear"] == 75
    assert [(t["rule"], t["kind"]) for t in body["transitions"]] == [("pi-hot", "firing")]


def test_failing_targets_show_in_api_and_metrics(app, client, settings, redis_client) -> None:
    seed(settings)
    redis_client.hset(
        targets_key(settings.redis_channel),
        "abc123",
        json.dumps(
            {
                "target": "ntfy://127.0.0.1",
                "ok": False,
                "sent": 2,
                "failures": 5,
                "given_up": 0,
                "queued": 1,
                "last_error": "error=500",
                "last_ok": 0,
                "last_failure": 1,
            }
        ),
    )
    body = client.get("/api/alerts").get_json()
    assert body["targets"][0]["target"] == "ntfy://127.0.0.1"
    assert body["targets"][0]["ok"] is False
    text = client.get("/metrics").get_data(as_text=True)
    lines = text.splitlines()
    assert "sensor_display_alerts_firing 1" in lines
    assert 'sensor_display_alert_target_up{target="ntfy://127.0.0.1"} 0' in lines
    assert 'sensor_display_alert_notification_failures_total{target="ntfy://127.0.0.1"} 5' in lines
    assert 'sensor_display_alert_notifications_queued{target="ntfy://127.0.0.1"} 1' in lines
