"""Alert rules and the state machine, on replayed traces: exactly the notifications a user gets."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from shared import alerts
from shared.alerts import Rule, RulesError, State, Transition

Trace = Iterable[tuple[float, float | None]]


def rule(**fields: object) -> Rule:
    table = {"name": "pi-hot", "metric": "pi/pi_cpu/cpu_temp_c", "above": 80.0, **fields}
    return alerts.parse_rules({"rule": [table]})[0]


def run(
    r: Rule, trace: Trace, state: State | None = None, seq0: int = 0
) -> tuple[State, list[Transition]]:
    """Feed (time, value) pairs; None is a second with no reading. Ticks every step."""
    sent: list[Transition] = []
    seq = seq0
    for t, value in trace:
        if state is None:
            state = alerts.initial(r, "pi/pi_cpu/cpu_temp_c", t)
        if value is not None:
            seq += 1
            state, out = alerts.observe(r, state, value, t, seq, t)
            sent += out
        state, out = alerts.tick(r, state, t)
        sent += out
    assert state is not None
    return state, sent


def steady(start: float, end: float, f: Callable[[float], float | None], step: float = 10.0):
    t = start
    while t < end:
        yield t, f(t)
        t += step


def titles(sent: list[Transition]) -> list[str]:
    return [t.title for t in sent]


def test_hot_for_five_minutes_then_cool_gives_one_firing_and_one_resolved() -> None:
    r = rule(**{"for": "5m", "clear": 75.0})
    trace = [
        *steady(0, 600, lambda t: 70.0),
        *steady(600, 1500, lambda t: 85.0),  # 15 minutes hot
        *steady(1500, 1800, lambda t: 78.0),  # cooler, still above the clear level
        *steady(1800, 2400, lambda t: 74.0),
    ]
    _, sent = run(r, trace)
    assert titles(sent) == ["FIRING: pi-hot", "RESOLVED: pi-hot"]
    firing, resolved = sent
    assert firing.at == 900
    assert firing.since == 600
    assert resolved.at == 1800
    assert resolved.value == 74.0
    assert "pi/pi_cpu/cpu_temp_c is 85, above 80 since" in firing.body()
    assert "back below 75" in resolved.body("https://sensors.example")
    assert resolved.body("https://sensors.example").endswith("\nhttps://sensors.example")


def test_a_four_minute_spike_sends_nothing() -> None:
    r = rule(**{"for": "5m", "clear": 75.0})
    trace = [
        *steady(0, 600, lambda t: 70.0),
        *steady(600, 840, lambda t: 90.0),
        *steady(840, 3600, lambda t: 70.0),
    ]
    state, sent = run(r, trace)
    assert sent == []
    assert state.state == "ok"


def test_bouncing_around_the_threshold_after_firing_sends_nothing_more() -> None:
    r = rule(**{"for": "5m", "clear": 75.0})
    trace = [
        *steady(0, 400, lambda t: 85.0),
        *steady(400, 7200, lambda t: 79.0 if int(t / 10) % 2 else 81.0),
    ]
    state, sent = run(r, trace)
    assert titles(sent) == ["FIRING: pi-hot"]
    assert state.state == "firing"


def test_without_hysteresis_it_resolves_at_the_threshold_and_needs_for_again() -> None:
    r = rule(**{"for": "1m"})
    trace = [*steady(0, 100, lambda t: 85.0), (100, 80.0), *steady(110, 150, lambda t: 85.0)]
    _, sent = run(r, trace)
    assert titles(sent) == ["FIRING: pi-hot", "RESOLVED: pi-hot"]


def test_repeat_renotifies_on_schedule_while_firing() -> None:
    r = rule(**{"for": "0s", "clear": 75.0, "repeat": "1h"})
    _, sent = run(r, [*steady(0, 3 * 3600 + 600, lambda t: 85.0), (3 * 3600 + 600, 70.0)])
    assert titles(sent) == ["FIRING: pi-hot"] * 4 + ["RESOLVED: pi-hot"]
    assert [t.at for t in sent[:4]] == [0, 3600, 7200, 10800]
    assert [t.repeat for t in sent] == [False, True, True, True, False]


def test_stale_fires_when_silent_and_resolves_when_it_reports_again() -> None:
    r = rule(stale="2m")
    trace = [
        *steady(0, 100, lambda t: 50.0),
        *steady(100, 400, lambda t: None),  # silent from t=90
        (400, 50.0),
    ]
    _, sent = run(r, trace)
    assert titles(sent) == ["FIRING: pi-hot", "RESOLVED: pi-hot"]
    assert sent[0].reason == "stale"
    assert sent[0].at == 210
    assert sent[0].since == 90
    assert "has sent nothing for 2m" in sent[0].body()
    assert sent[1].at == 400
    assert "reporting again after 5m10s" in sent[1].body()


def test_a_metric_never_seen_goes_stale_from_the_start() -> None:
    r = rule(stale="2m")
    _, sent = run(r, steady(0, 300, lambda t: None))
    assert titles(sent) == ["FIRING: pi-hot"]


def test_a_restart_in_the_middle_of_for_keeps_the_schedule() -> None:
    r = rule(**{"for": "5m", "clear": 75.0})
    trace = [*steady(0, 600, lambda t: 70.0), *steady(600, 1500, lambda t: 85.0)]
    _, whole = run(r, trace)
    # Stop 2 minutes into the 5: the state goes through its stored form.
    first, sent = run(r, [p for p in trace if p[0] < 720])
    assert first.state == "pending"
    assert sent == []
    stored = dataclasses.asdict(first)
    restarted = State(**stored)
    _, rest = run(r, [p for p in trace if p[0] >= 720], restarted, seq0=first.last_seq or 0)
    assert rest == whole
    assert rest[0].at == 900


def test_a_replayed_or_redelivered_reading_never_refires() -> None:
    r = rule(**{"for": "1m", "clear": 75.0})
    trace = [*steady(0, 200, lambda t: 85.0), *steady(200, 300, lambda t: 70.0)]
    state, sent = run(r, trace)
    assert titles(sent) == ["FIRING: pi-hot", "RESOLVED: pi-hot"]
    # The whole stream again, with its original seqs (a replay after a crash).
    again, more = run(r, trace, state)
    assert more == []
    assert again.state == "ok"
    # Without seqs (stock flask-sse): an older or equal time is a repeat.
    again, out = alerts.observe(r, again, 99.0, 250.0, None, 400.0)
    assert out == []
    assert again.value == 70.0


def test_below_rules_mirror_above() -> None:
    r = alerts.parse_rules(
        {
            "rule": [
                {"name": "fan", "metric": "*/hwmon/fan*_rpm", "below": 300, "clear": 500, "for": 30}
            ]
        }
    )[0]
    assert r.matches("server", "hwmon", "fan2_rpm")
    assert not r.matches("server", "demo", "fan_rpm")
    state = alerts.initial(r, "server/hwmon/fan2_rpm", 0)
    sent: list[Transition] = []
    for seq, (t, v) in enumerate([(0, 900), (10, 0), (40, 0), (50, 400), (60, 900)], 1):
        state, out = alerts.observe(r, state, v, t, seq, t)
        sent += out
    assert [(t.title, t.at) for t in sent] == [("FIRING: fan", 40), ("RESOLVED: fan", 60)]


def test_wildcards_match_within_a_part_only() -> None:
    r = rule(metric="*/*/*_c")
    assert r.matches("pi", "bme280", "temperature_c")
    assert not r.matches("pi", "bme280", "humidity_pct")


GOOD = """
[[rule]]
name = "pi-hot"
metric = "pi/pi_cpu/cpu_temp_c"
above = 80.0
for = "5m"
clear = 75.0
stale = "2m"
repeat = "1h"

[[rule]]
name = "humid"
metric = "*/bme280/humidity_pct"
above = 70
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "has no [[rule]] tables"),
        ("[[rule]\n", "is not valid TOML"),
        ("title = 'x'\n[[rule]]\nname='a'", "unknown top-level key 'title'"),
        ("[[rule]]\nname = 'a b'", "rule #1 field 'name' must be"),
        ("[[rule]]\nname = 'a'\nmetric = 'pi/cpu'\nabove = 1", "rule 'a' field 'metric'"),
        ("[[rule]]\nname = 'a'\nmetric = 'a/b/Temp'\nabove = 1", "rule 'a' field 'metric'"),
        ("[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'", "rule 'a' needs exactly one of"),
        ("[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'\nabove = 1\nbelow = 0", "exactly one"),
        ("[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'\nabove = '80'", "rule 'a' field 'above'"),
        ("[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'\nabove = nan", "rule 'a' field 'above'"),
        (
            "[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'\nabove = 80\nclear = 85",
            "rule 'a' field 'clear' (85) must not be above the threshold 80",
        ),
        (
            "[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'\nbelow = 80\nclear = 70",
            "rule 'a' field 'clear' (70) must not be below the threshold 80",
        ),
        ("[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'\nabove = 1\nfor = '5 min'", "field 'for'"),
        ("[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'\nabove = 1\nfor = -1", "field 'for'"),
        ("[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'\nabove = 1\nstale = '0s'", "field 'stale'"),
        ("[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'\nabove = 1\nrepeat = '40d'", "field 'repeat'"),
        ("[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'\nabove = 1\nthreshold = 2", "unknown field"),
        (GOOD + "[[rule]]\nname = 'humid'\nmetric = 'a/b/c_c'\nabove = 1", "'humid' field 'name'"),
        ("rule = 3", "has no [[rule]] tables"),
    ],
)
def test_a_bad_file_is_refused_with_one_sentence_naming_rule_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    with pytest.raises(RulesError) as caught:
        alerts.load_rules(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot be read: No such file"):
        alerts.load_rules(tmp_path / "nope.toml")


def test_durations() -> None:
    assert [alerts.parse_duration(d) for d in ("90s", "5m", "1.5h", 30, "45")] == [
        90,
        300,
        5400,
        30,
        45,
    ]
    assert alerts.format_duration(5400) == "1h30m"
    assert alerts.format_duration(0) == "0s"


def test_check_prints_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(GOOD)
    done = subprocess.run(
        [sys.executable, "-m", "shared.alerts", "--check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "pi-hot: pi/pi_cpu/cpu_temp_c above 80, for 5m, clears at 75, stale after 2m,"
        " repeats every 1h",
        "humid: */bme280/humidity_pct above 70",
    ]
    assert "2 rules OK" in done.stderr


def test_check_refuses_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text("[[rule]]\nname = 'a'\nmetric = 'a/b/c_c'\nabove = 1\nfor = 'soon'")
    done = subprocess.run(
        [sys.executable, "-m", "shared.alerts", "--check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().endswith(
        "field 'for' must be a duration such as 90s, 5m or 1h (at most 30 days), not 'soon'"
    )
