"""The exactly-once marks protocol, rule by rule as shared/marks.py states them, on a real Redis."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from producers.outbox import Outbox
from recorder.consumer import Recorder
from shared import marks, store
from shared.bus import Bus
from shared.events import Event, stream_id_key
from shared.marks import Forgotten, HighWater
from shared.reading import Reading
from web.hub import Hub

KEY = ("pi", "demo")


def reading(seq: int | None) -> Reading:
    return Reading(source="pi", sensor="demo", ts=time.time(), seq=seq, values={"t_c": 1.0})


def test_rule_1_counting_starts_high_and_survives_a_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    first = box.next_seq(*KEY)
    assert first >= int((time.time() - 60) * 1000)  # a wiped outbox never reuses old seqs
    box.add(reading(first))
    box.close()
    assert Outbox(tmp_path / "outbox.sqlite3").next_seq(*KEY) == first + 1


def test_rule_1_readings_without_seq_are_never_repeats(redis_client: redis.Redis) -> None:
    bus = Bus(redis_client)
    assert bus.publish(reading(None)) is not None
    assert bus.publish(reading(None)) is not None
    assert bus.marks.published() == {}


def test_rule_2_publish_once_against_the_published_mark(redis_client: redis.Redis) -> None:
    bus = Bus(redis_client)
    assert bus.publish(reading(5)) is not None
    assert bus.marks.published() == {KEY: 5}
    assert bus.publish(reading(5)) is None
    assert bus.publish(reading(4)) is None
    assert len(bus.read_after("0-0")) == 1


def test_rule_2_publish_once_against_the_recorded_mark(redis_client: redis.Redis) -> None:
    bus = Bus(redis_client)
    bus.marks.record({KEY: 9})  # Redis lost the published hash, the recorder restored its own
    assert bus.publish(reading(9)) is None
    assert bus.publish(reading(10)) is not None


@pytest.mark.parametrize(("recorded", "mark"), [(None, -1), (3, 3)])
def test_rule_3_forgotten_names_the_highest_seq_redis_still_knows(
    redis_client: redis.Redis, recorded: int | None, mark: int
) -> None:
    bus = Bus(redis_client)
    if recorded is not None:
        bus.marks.record({KEY: recorded})
    with pytest.raises(Forgotten) as caught:
        bus.publish(reading(8), published=7)  # we had 7 accepted; Redis knows less
    assert caught.value.mark == mark
    assert bus.read_after("0-0") == []  # refused atomically: nothing overtook the lost ones


def test_rule_3_the_producer_requeues_above_the_forgotten_mark(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    for seq in range(1, 6):
        box.add(reading(seq))
    box.mark_sent([row for row, _ in box.unsent()])
    assert box.published_marks() == {KEY: 5}
    assert box.requeue_after(*KEY, 3) == 2
    assert [r.seq for _, r in box.unsent()] == [4, 5]


def test_rule_4_recorded_marks_follow_the_commit_and_come_back_from_the_database(
    redis_client: redis.Redis, db
) -> None:
    bus = Bus(redis_client)
    for seq in (1, 2, 3):
        bus.publish(reading(seq))
    recorder = Recorder(bus, db)
    recorder.prepare()
    recorder.step(block_ms=100)
    assert store.high_water(db) == {KEY: 3}
    assert bus.marks.recorded() == {KEY: 3}
    redis_client.flushall()  # Redis restarted without persistence
    recorder.prepare()
    assert bus.marks.recorded() == {KEY: 3}


def test_rule_5_the_producer_drops_recorded_rows_and_resends_lost_ones(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    for seq in range(1, 7):
        box.add(reading(seq))
    box.mark_sent([row for row, _ in box.unsent()])
    # Recorded up to 2; Redis says it has published up to 4 only (it lost 5 and 6).
    dropped, requeued = box.settle({KEY: 2}, {KEY: 4}, grace=-1)
    assert (dropped, requeued) == (2, 2)
    assert [r.seq for _, r in box.unsent()] == [5, 6]
    assert marks.known_to_redis({}, KEY) == -1  # no published mark: every row is resent


def test_rule_5_a_recent_send_is_given_time_to_be_recorded(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    box.add(reading(1))
    box.mark_sent([row for row, _ in box.unsent()])
    assert box.settle({}, {}) == (0, 0)  # within RESEND_GRACE: not resent yet


def test_rule_6_the_hold_position_keeps_unrecorded_entries(redis_client: redis.Redis) -> None:
    redis_client.config_set("stream-node-max-entries", 1)  # trim exactly
    bus = Bus(redis_client, retention=1, max_retention=60)
    first = bus.publish(reading(1))
    bus.marks.set_hold(stream_id_key(first)[0])
    assert bus.marks.hold() == stream_id_key(first)[0]
    time.sleep(1.2)  # the retention is the point: let the first entry age past it
    bus.publish(reading(2))
    assert bus.first_id() == first
    assert bus.marks.recorded() == {}  # the hold position is not a sensor's mark


def test_rule_6_the_hold_position_is_the_first_pending_else_the_last_delivered() -> None:
    assert marks.hold_position("1700000000123-4", None) == 1700000000123
    assert marks.hold_position("1700000000123-4", "1700000000100-0") == 1700000000100


def test_rule_7_high_water_takes_only_new_seqs() -> None:
    seen = HighWater()
    assert [seen.advance(KEY, s) for s in (0, 1, 1, 0, 5, 3)] == [
        True,
        True,
        False,
        False,
        True,
        False,
    ]
    assert seen == {KEY: 5}


def test_rule_7_the_hub_skips_old_ids_and_repeated_seqs(redis_client: redis.Redis) -> None:
    hub = Hub(redis_client, Bus(redis_client), ring_size=8)
    assert hub.accept(Event("100-0", reading(1))) == 1
    assert hub.accept(Event("100-0", reading(2))) == 0  # id not after the last one
    assert hub.accept(Event("101-0", reading(1))) == 0  # seq re-sent after Redis came back
    assert hub.accept(Event("102-0", reading(2))) == 1
    assert hub.stats.duplicates == 2


def test_rule_5_a_mark_above_every_assigned_seq_deletes_nothing(tmp_path: Path, caplog) -> None:
    """A recorded mark of 2^63-1 (forged or foreign) must not prune this outbox."""
    box = Outbox(tmp_path / "outbox.sqlite3")
    for seq in range(1, 4):
        box.add(reading(seq))
    box.mark_sent([row for row, _ in box.unsent()])
    with caplog.at_level("ERROR"):
        dropped, _ = box.settle({KEY: 2**63 - 1}, {KEY: 3}, grace=-1)
    assert dropped == 0
    assert "above every seq this producer assigned" in caplog.text
    assert box.settle({KEY: 2}, {KEY: 3}, grace=-1)[0] == 2  # a real mark still prunes


def test_rule_8_a_seq_far_beyond_the_mark_is_refused(redis_client: redis.Redis) -> None:
    """seq 2^63-1 after seq 5: refused, so the real producer's seq 6 is still new."""
    bus = Bus(redis_client)
    assert bus.publish(reading(5)) is not None
    with pytest.raises(marks.Refused, match="too far"):
        bus.publish(reading(2**63 - 1))
    assert bus.publish(reading(6)) is not None
    # A wiped outbox restarts its counter at the clock in ms: that jump is allowed.
    assert bus.publish(reading(int(time.time() * 1000))) is not None


def test_rule_8_a_reading_from_the_far_future_is_refused(redis_client: redis.Redis) -> None:
    """ts more than a day ahead of Redis's clock: refused, nothing stored, no mark moved."""
    bus = Bus(redis_client)
    ahead = Reading(source="pi", sensor="demo", ts=4070908800.0, seq=1, values={"t_c": 1.0})
    with pytest.raises(marks.Refused, match="ahead of the Redis clock"):
        bus.publish(ahead)
    assert bus.last_id() is None
    assert bus.marks.published() == {}
    soon = Reading(source="pi", sensor="demo", ts=time.time() + 3600, seq=1, values={"t_c": 1.0})
    assert bus.publish(soon) is not None  # an hour of clock skew is fine


def test_rule_9_a_gap_holds_the_recorded_mark_until_filled_or_given_up() -> None:
    gaps = marks.Gaps()
    assert gaps.stored(KEY, 6, 5, now=0.0) is None  # the next seq: no gap
    assert gaps.stored(KEY, 9, 6, now=1.0) == 6  # 7 and 8 missing: hold at 6
    assert gaps.recorded(KEY, 9) == 6
    assert gaps.stored(KEY, 10, 9, now=2.0) is None
    assert gaps.stored(KEY, 7, 10, now=3.0) is None
    assert gaps.recorded(KEY, 10) == 7  # 8 still missing
    assert gaps.stored(KEY, 8, 10, now=4.0) is None
    assert gaps.recorded(KEY, 10) == 10  # filled
    assert KEY not in gaps
    gaps.stored(KEY, 20, 10, now=5.0)
    assert gaps.expire(now=5.0 + marks.GAP_WAIT / 2) == []
    assert gaps.expire(now=6.0 + marks.GAP_WAIT) == [(KEY, 11, 20)]  # 11..19 given up
    assert gaps.recorded(KEY, 20) == 20


def test_rule_10_the_audit_lowers_a_published_mark_the_stream_never_gave(
    redis_client: redis.Redis, db
) -> None:
    from recorder.audit import StreamAudit

    bus = Bus(redis_client)
    bus.publish(reading(1))
    recorder = Recorder(bus, db)
    recorder.prepare()
    recorder.step(block_ms=100)
    audit = StreamAudit(bus)
    redis_client.hset(bus.marks.published_key, "pi/demo", 99)  # forged
    other = ("pi", "other")
    redis_client.hset(bus.marks.published_key, "pi/other", 5)
    assert audit.run(recorder.recorded(), [KEY, other]) == 0  # snapshot: 99 and 5
    redis_client.hset(bus.marks.published_key, "pi/other", 6)  # moved meanwhile: left alone
    assert audit.run(recorder.recorded(), [KEY, other]) == 0
    assert bus.marks.published() == {KEY: 1, other: 6}
    assert audit.lowered == 1
