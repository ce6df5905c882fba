"""The producer's outbox: seqs kept across restarts, bounds, and what settling drops or re-sends."""

from __future__ import annotations

import time
from pathlib import Path

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
