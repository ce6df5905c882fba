"""docs/alerts.md says what the code does: its rules parse, its examples are real output."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from recorder import notifier
from shared import alerts

DOC = (Path(__file__).resolve().parent.parent / "docs" / "alerts.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.S)


def test_every_toml_block_is_a_valid_rules_file() -> None:
    found = blocks("toml")
    assert len(found) >= 2
    for block in found:
        text = "\n".join(line.removeprefix("   ") for line in block.splitlines())
        assert alerts.parse_rules(tomllib.loads(text))


def test_the_cookbook_covers_what_the_issue_asks() -> None:
    cookbook = alerts.parse_rules(tomllib.loads(blocks("toml")[-1]))
    names = {r.name for r in cookbook}
    assert {"pi-hot", "pi-throttled", "fan-stopped", "humidity-high", "livingroom-silent"} <= names


def test_the_check_output_shown_is_the_real_one() -> None:
    start = "\n".join(line.removeprefix("   ") for line in blocks("toml")[0].splitlines())
    [rule] = alerts.parse_rules(tomllib.loads(start))
    shown = re.search(r"\$ python -m shared.alerts --check alerts.toml\n\s*(.*)\n", DOC)
    assert shown is not None
    assert shown.group(1).strip() == alerts.describe(rule)


def test_the_notification_bodies_shown_are_the_real_ones() -> None:
    since = datetime(2026, 11, 27, 17, 45, 3, tzinfo=UTC).timestamp()
    common = {
        "rule": "pi-hot",
        "metric": "pi/pi_cpu/cpu_temperature_c",
        "threshold": 80.0,
        "direction": "above",
        "clear": 75.0,
        "reason": "threshold",
        "since": since,
    }
    firing = alerts.Transition(kind="firing", value=85.2, at=since + 300, **common)
    resolved = alerts.Transition(kind="resolved", value=74.1, at=since + 720, **common)
    texts = blocks("text")
    assert texts[0].strip() == firing.body("https://sensors.example.org/")
    assert texts[1].strip() == resolved.body()


def test_the_retry_schedule_is_the_code_s() -> None:
    assert notifier.RETRY_FIRST == 1.0
    assert "retried after 1, 2, 4, ... seconds, at most\n5 minutes apart" in DOC
    assert notifier.RETRY_MAX == 5 * 60
    assert "is a day old" in DOC
    assert notifier.GIVE_UP_AFTER == 86400
