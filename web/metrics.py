"""GET /metrics: Prometheus text for every worker of every replica together.

Each worker writes its counters to a short-lived Redis hash every few
seconds; any worker answers a scrape by summing them, so a scrape through a
load balancer sees the whole system, not one worker.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from dataclasses import asdict

import gevent
import redis
from flask import Blueprint, Response

from shared import store
from web import alerts, db, worker
from web.hub import RING_SIZE, Hub

logger = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)

PUSH_EVERY = 2.0
TTL = 15
COUNTERS = {
    "received": "messages received on the channel",
    "rejected": "channel messages dropped as invalid",
    "duplicates": "channel messages dropped as repeats",
    "alerts": "alert transitions received on the channel",
    "reconnects": "Redis subscription reconnects",
    "dropped_slow": "clients dropped for falling behind",
    "events_out": "events written to clients",
    "bytes_out": "bytes of events written to clients",
    "refused_sensors": "readings refused because MAX_SENSORS sensors were live",
}

RECORDER = {
    "lag": ("recorder_lag", "gauge", "stream entries the recorder has not read"),
    "lag_s": ("recorder_lag_seconds", "gauge", "age of the oldest entry not yet recorded"),
    "pending": ("recorder_pending", "gauge", "entries read but not yet stored"),
    "inserted": ("recorder_inserted_total", "counter", "readings stored by the recorder"),
    "refused_sensors": (
        "recorder_refused_sensors_total",
        "counter",
        "readings the recorder refused: their sensor is new and the history holds MAX_SENSORS",
    ),
    "sensors": ("recorder_sensors", "gauge", "sensors the history holds (at most MAX_SENSORS)"),
    "stream_lost": (
        "recorder_stream_lost_total",
        "counter",
        "stream entries deleted before the recorder read them (trimmed by a Redis user, or the"
        " recorder stopped past STREAM_MAX_RETENTION)",
    ),
    "gaps": (
        "recorder_seq_gaps_total",
        "counter",
        "times a sensor's seqs skipped some the recorder never got; their producer is asked again",
    ),
    "seq_lost": (
        "recorder_seq_lost_total",
        "counter",
        "readings of such gaps no producer re-sent in time: missing from the history",
    ),
    "marks_lowered": (
        "recorder_published_marks_lowered_total",
        "counter",
        "published marks above everything the stream delivered (trimmed or forged), lowered",
    ),
    "ts": ("recorder_status_age_seconds", "gauge", "seconds since the recorder reported"),
    "storage_ok": (
        "recorder_history_writable",
        "gauge",
        "1 while the recorder can write the history; 0 while it cannot (disk full, read-only)"
        " and acknowledges nothing",
    ),
}

# An MQTT bridge's report (hash <channel>:mqtt:<source>, written by
# producers/mqtt; docs/architecture.md, "Other ways in and out"): field ->
# (metric, type, help, label of `field:<label>` fields or None).
BRIDGE = {
    "messages": (
        "mqtt_messages_total",
        "counter",
        "MQTT messages received on the bridge's subscriptions",
        "firmware",
    ),
    "readings": ("mqtt_readings_total", "counter", "readings decoded from MQTT", "firmware"),
    "refused": (
        "mqtt_refused_total",
        "counter",
        "messages (or sensors of one) refused, by reason (docs/mqtt.md)",
        "reason",
    ),
    "unknown": (
        "mqtt_unknown_fields_total",
        "counter",
        "fields dropped for want of a known unit",
        "firmware",
    ),
    "ignored": (
        "mqtt_ignored_total",
        "counter",
        "messages that are not measurements (commands, states of the bridge itself)",
        None,
    ),
    "published": ("mqtt_published_total", "counter", "bridge readings Redis took", None),
    "repeats": (
        "mqtt_repeats_total",
        "counter",
        "bridge readings Redis dropped as already published",
        None,
    ),
    "reconnects": ("mqtt_reconnects_total", "counter", "reconnections to the broker", None),
    "redelivered": (
        "mqtt_redelivered_total",
        "counter",
        "broker redeliveries of messages already stored: acknowledged, not stored again",
        None,
    ),
    "connected": ("mqtt_connected", "gauge", "1 while the bridge is connected to its broker", None),
    "ts": ("mqtt_status_age_seconds", "gauge", "seconds since the bridge reported", None),
}
LABEL_RE = re.compile(r"[a-z0-9_]{1,32}")


def worker_key(channel: str) -> str:
    """This worker's hash: one per host and pid."""
    return f"{channel}:metrics:{socket.gethostname()}:{os.getpid()}"


def push_forever(hub: Hub, client: redis.Redis, channel: str) -> None:
    """Publish this worker's counters until the hub stops."""
    key = worker_key(channel)
    while not hub.stopping:
        try:
            stats = asdict(hub.stats)
            stats["connected"] = int(hub.connected)
            hub.stats.backlog_max = 0  # a gauge over the push interval
            with client.pipeline() as pipe:
                pipe.hset(key, mapping=stats).expire(key, TTL).execute()
        except redis.RedisError as exc:
            logger.debug("metrics push failed: %s", exc)
        gevent.sleep(PUSH_EVERY)


def _workers(client: redis.Redis, channel: str) -> list[dict[str, float]]:
    out = []
    for key in client.scan_iter(match=f"{channel}:metrics:*", count=100):
        raw = client.hgetall(key)
        out.append({k.decode(): float(v) for k, v in raw.items()})
    return out


def render(
    workers: list[dict[str, float]],
    recorder: dict[str, float],
    ages: list[tuple[str, str, float]],
    lag: dict[str, float] | None = None,
) -> str:
    """The exposition text."""
    lines = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP sensor_display_{name} {help_}")
        lines.append(f"# TYPE sensor_display_{name} {kind}")
        lines.extend(f"sensor_display_{name}{labels} {value:g}" for labels, value in samples)

    metric("workers", "gauge", "web workers reporting", [("", len(workers))])
    metric(
        "clients",
        "gauge",
        "SSE clients connected",
        [("", sum(w.get("clients", 0) for w in workers))],
    )
    metric(
        "subscriptions_live",
        "gauge",
        "workers whose Redis subscription is live",
        [("", sum(w.get("connected", 0) for w in workers))],
    )
    metric(
        "client_backlog_max",
        "gauge",
        f"most events one client had queued in the last few seconds (the ring holds {RING_SIZE})",
        [("", max((w.get("backlog_max", 0) for w in workers), default=0))],
    )
    metric(
        "sensors_live",
        "gauge",
        "most sensors one worker holds live (at most MAX_SENSORS)",
        [("", max((w.get("sensors", 0) for w in workers), default=0))],
    )
    for name, help_ in COUNTERS.items():
        metric(f"{name}_total", "counter", help_, [("", sum(w.get(name, 0) for w in workers))])
    rec = {**recorder, **(lag or {})}  # read live from Redis: right even while the recorder is down
    for key, (name, kind, help_) in RECORDER.items():
        if key in rec:
            value = time.time() - rec[key] if key == "ts" else rec[key]
            metric(name, kind, help_, [("", value)])
    metric(
        "sensor_last_seen_age_seconds",
        "gauge",
        "seconds since a sensor's last reading",
        [(f'{{source="{s}",sensor="{n}"}}', age) for s, n, age in ages],
    )
    return "\n".join(lines) + "\n"


def render_bridges(bridges: dict[str, dict[str, float]]) -> str:
    """The MQTT bridges' part: every counter labelled with its bridge (its SOURCE)."""
    samples: dict[str, list[str]] = {field: [] for field in BRIDGE}
    for bridge, report in sorted(bridges.items()):
        for key, value in sorted(report.items()):
            field, _, label = key.partition(":")
            if field not in BRIDGE or bool(label) != bool(BRIDGE[field][3]):
                continue
            if label and not LABEL_RE.fullmatch(label):
                continue
            labels = f'bridge="{bridge}"' + (f',{BRIDGE[field][3]}="{label}"' if label else "")
            shown = time.time() - value if field == "ts" else value
            samples[field].append(f"sensor_display_{BRIDGE[field][0]}{{{labels}}} {shown:g}")
    lines = []
    for field, (name, kind, help_, _) in BRIDGE.items():
        if samples[field]:
            lines.append(f"# HELP sensor_display_{name} {help_}")
            lines.append(f"# TYPE sensor_display_{name} {kind}")
            lines += samples[field]
    return "".join(line + "\n" for line in lines)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format 0.0.4."""
    bus = worker.bus()
    try:
        workers = _workers(bus.client, bus.channel)
        recorder = bus.recorder_status()
        lag = bus.recorder_lag()
        bridges = bus.bridge_statuses()
    except redis.RedisError as exc:
        logger.warning("metrics from Redis unavailable: %s", exc)
        workers, recorder, lag, bridges = [], {}, None, {}
    now = time.time()
    try:
        ages = [
            (e.reading.source, e.reading.sensor, now - e.reading.ts) for e in db.read(store.latest)
        ]
    except db.HistoryUnavailable:
        ages = []
    body = render(workers, recorder, ages, lag) + render_bridges(bridges)
    try:
        body += alerts.render_metrics(alerts.firing_count(), alerts.targets())
    except db.HistoryUnavailable:
        body += alerts.render_metrics(0, alerts.targets())
    return Response(body, mimetype="text/plain", headers={"Cache-Control": "no-cache"})
