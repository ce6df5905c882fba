"""/metrics: Prometheus text summed over workers, recorder lag, sensor ages."""

from __future__ import annotations

import re

from web.metrics import render, render_bridges

LINE = re.compile(
    r'^(# (HELP|TYPE) \w+ .+|sensor_display_\w+(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? [-0-9.e+]+)$'
)


def test_workers_are_summed_and_every_line_is_valid_exposition() -> None:
    workers = [
        {"clients": 3, "events_out": 10, "connected": 1, "backlog_max": 2},
        {"clients": 4, "events_out": 5, "connected": 1, "backlog_max": 40},
    ]
    text = render(
        workers,
        {"inserted": 7.0, "ts": 0.0, "stream_lost": 6.0, "seq_lost": 0.0},
        [("pi", "bme280", 1.5)],
        {"lag": 2, "lag_s": 0.5, "pending": 1},
    )
    lines = text.strip().splitlines()
    assert all(LINE.match(line) for line in lines), [x for x in lines if not LINE.match(x)]
    assert "sensor_display_workers 2" in lines
    assert "sensor_display_clients 7" in lines
    assert "sensor_display_events_out_total 15" in lines
    assert "sensor_display_subscriptions_live 2" in lines
    assert "sensor_display_client_backlog_max 40" in lines  # the worst worker, not a sum
    assert "sensor_display_recorder_lag 2" in lines
    assert "sensor_display_recorder_lag_seconds 0.5" in lines
    assert "sensor_display_recorder_inserted_total 7" in lines
    assert "sensor_display_recorder_stream_lost_total 6" in lines
    assert "sensor_display_recorder_seq_lost_total 0" in lines
    assert 'sensor_display_sensor_last_seen_age_seconds{source="pi",sensor="bme280"} 1.5' in lines


def test_metrics_endpoint_answers_without_workers(client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "sensor_display_workers 0" in response.get_data(as_text=True)


def test_bridge_counters_are_labelled_and_junk_in_their_hash_is_left_out() -> None:
    report = {
        "messages:tasmota": 5.0,
        "refused:not_json": 2.0,
        "published": 4.0,
        "ts": 0.0,
        # Anyone who may write the hash can put anything there.
        'refused:x"} 1\nevil': 9.0,
        "published:extra": 9.0,
        "messages": 9.0,
        "unknown_field": 9.0,
    }
    lines = render_bridges({"pi-1": report}).strip().splitlines()
    assert all(LINE.match(line) for line in lines), [x for x in lines if not LINE.match(x)]
    samples = [line for line in lines if not line.startswith("#")]
    assert samples[:3] == [
        'sensor_display_mqtt_messages_total{bridge="pi-1",firmware="tasmota"} 5',
        'sensor_display_mqtt_refused_total{bridge="pi-1",reason="not_json"} 2',
        'sensor_display_mqtt_published_total{bridge="pi-1"} 4',
    ]
    assert samples[3].startswith('sensor_display_mqtt_status_age_seconds{bridge="pi-1"} ')
    assert len(samples) == 4
    assert render_bridges({}) == ""
