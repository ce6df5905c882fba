"""The producer's outbox: seqs kept across restarts, bounds, and what settling drops or re-sends."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from producers import outbox
from producers.outbox import Outbox
from shared.reading import Reading


def test_outbox_keeps_seq_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    first = box.next_seq("pi", "demo")
    for i in range(3):
        box.add(
            Reading(
                source="pi", sensor="demo", ts=1763712000.0 + i, seq=first + i, values={"t_c": 1.0}
            )
        )
    box.close()
    again = Outbox(path)
    assert again.next_seq("pi", "demo") == first + 3
    assert [r.seq for _, r in again.unsent()] == [first, first + 1, first + 2]


def test_outbox_bound_drops_the_oldest_and_says_so(tmp_path: Path, caplog) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_rows=100)
    for i in range(150):
        box.add(Reading(source="pi", sensor="demo", ts=time.time(), seq=i, values={"t_c": 1.0}))
    assert box.enforce_bounds() == 50
    assert [r.seq for _, r in box.unsent(1)] == [50]
    assert "dropped the 50 oldest" in caplog.text


def test_settle_requeues_what_redis_lost_for_sensors_added_later(tmp_path: Path) -> None:
    # The publisher thread's connection opens before any sensor has a row.
    sampler = Outbox(tmp_path / "o.sqlite3")
    publisher = sampler.reopen()
    reading = Reading(source="pi", sensor="late", ts=time.time(), seq=7, values={"t_c": 1.0})
    sampler.add(reading)
    [(row_id, _)] = publisher.unsent()
    publisher.mark_sent([row_id])
    # Redis restarted empty: neither recorded nor known as published.
    assert publisher.settle({}, {}, grace=-1.0) == (0, 1)
    assert [r.seq for _, r in publisher.unsent()] == [7]


def test_a_message_is_stored_whole_with_its_delivery_or_not_at_all(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    same_sensor = [
        Reading(source="s", sensor="n", ts=time.time(), values={"t_c": v}) for v in (1, 2)
    ]
    stored = box.add_all(same_sensor, b"message-1")
    assert [r.seq for r in stored] == [stored[0].seq, stored[0].seq + 1]  # numbered in turn
    assert box.delivered(b"message-1")
    box.conn.execute("PRAGMA query_only = ON")  # the disk is full, as far as we know
    with pytest.raises(sqlite3.OperationalError):
        box.add_all(same_sensor, b"message-2")
    assert not box.delivered(b"message-2")
    assert box.next_seq("s", "n") == stored[1].seq + 1  # the failed message took no seq
    box.close()


def test_only_the_last_deliveries_are_remembered(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(outbox, "MAX_DELIVERIES", 10)
    monkeypatch.setattr(outbox, "PRUNE_DELIVERIES_EVERY", 5)
    box = Outbox(tmp_path / "o.sqlite3")
    reading = Reading(source="s", sensor="n", ts=time.time(), values={"t_c": 1.0})
    for i in range(30):
        box.add_all([reading], f"m{i}".encode())
    box.add_all([reading], b"m3")  # a packet id come round again: the newest now
    remembered = {i for i in range(30) if box.delivered(f"m{i}".encode())}
    assert set(range(20, 30)) <= remembered <= set(range(15, 30)) | {3}
    assert 3 in remembered
    assert box.conn.execute("SELECT count(*) FROM deliveries").fetchone()[0] <= 16
    box.close()


def test_the_docs_state_how_many_deliveries_are_remembered() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "mqtt.md").read_text()
    assert f"the last {outbox.MAX_DELIVERIES:,} digests" in docs
