"""Alert rules and their state machine (docs/alerts.md): pure, no I/O but the rules file.

A rule watches every metric its pattern matches; each (rule, metric) pair has
its own state: ok, pending (the threshold is crossed but not for `for` yet)
or firing. `observe` takes one reading's value, `tick` the passage of time
(stale and repeat); both return the new state and the notifications due.

`python -m shared.alerts --check FILE` validates a rules file and prints it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

RULE_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A pattern part: the name charsets of shared/reading.py, plus `*`.
_NAME_PART_RE = re.compile(r"[A-Za-z0-9._*-]{1,64}")
_METRIC_PART_RE = re.compile(r"[a-z*][a-z0-9_*]{0,63}")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smh]?)")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
FIELDS = ("name", "metric", "above", "below", "for", "clear", "stale", "repeat")
MAX_DURATION = 30 * 86400.0

OK, PENDING, FIRING = "ok", "pending", "firing"
THRESHOLD, STALE = "threshold", "stale"


class RulesError(ValueError):
    """A rules file that cannot be used; the message is one sentence naming the rule and field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One `[[rule]]` table, validated."""

    name: str
    metric: str  # source/sensor/metric; `*` matches within a part
    above: float | None = None
    below: float | None = None
    for_s: float = 0.0
    clear: float  # resolves once the value is back past this
    stale_s: float | None = None
    repeat_s: float | None = None

    @property
    def threshold(self) -> float:
        """The value that must be crossed."""
        return self.above if self.above is not None else self.below  # type: ignore[return-value]

    @property
    def direction(self) -> str:
        """`above` or `below`."""
        return "above" if self.above is not None else "below"

    def matches(self, source: str, sensor: str, metric: str) -> bool:
        """True if this rule watches that metric."""
        parts = self.metric.split("/")
        return all(fnmatchcase(n, p) for n, p in zip((source, sensor, metric), parts, strict=True))

    def breached(self, value: float) -> bool:
        """The value is past the threshold (strictly)."""
        return value > self.threshold if self.above is not None else value < self.threshold

    def cleared(self, value: float) -> bool:
        """The value is back at or past `clear` (the hysteresis)."""
        return value <= self.clear if self.above is not None else value >= self.clear

    def to_dict(self) -> dict[str, Any]:
        """The rule as the API and `--check` show it (durations in seconds)."""
        return {
            "name": self.name,
            "metric": self.metric,
            self.direction: self.threshold,
            "clear": self.clear,
            "for": self.for_s,
            "stale": self.stale_s,
            "repeat": self.repeat_s,
        }


def parse_duration(raw: object) -> float:
    """Seconds from `90`, `"90s"`, `"5m"` or `"1.5h"`; ValueError otherwise."""
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int | float):
        seconds = float(raw)
    elif isinstance(raw, str) and (m := _DURATION_RE.fullmatch(raw.strip())):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError
    if not 0 <= seconds <= MAX_DURATION or not math.isfinite(seconds):
        raise ValueError
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest of `45s`, `5m`, `1h30m` that says it."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")


def load_rules(path: str | Path) -> list[Rule]:
    """Read and validate a rules file; RulesError with one sentence if it is bad."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"alerts file {path} cannot be read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(f"alerts file {path} is not valid TOML: {exc}") from None
    return parse_rules(doc, str(path))


def parse_rules(doc: dict[str, Any], where: str = "alerts file") -> list[Rule]:
    """Validate a parsed TOML document: `[[rule]]` tables only, unique names."""
    extra = sorted(set(doc) - {"rule"})
    if extra:
        raise RulesError(f"{where}: unknown top-level key {extra[0]!r} (only [[rule]] tables)")
    tables = doc.get("rule")
    if not isinstance(tables, list) or not tables:
        raise RulesError(f"{where} has no [[rule]] tables")
    rules: list[Rule] = []
    for index, table in enumerate(tables, start=1):
        if not isinstance(table, dict):
            raise RulesError(f"{where}: rule #{index} is not a table (write it as [[rule]])")
        rule = _rule(table, f"{where}: rule {_label(table, index)}")
        if any(r.name == rule.name for r in rules):
            raise RulesError(f"{where}: rule {rule.name!r} field 'name' is used twice")
        rules.append(rule)
    return rules


def _label(table: dict[str, Any], index: int) -> str:
    name = table.get("name")
    return repr(name) if isinstance(name, str) and RULE_NAME_RE.fullmatch(name) else f"#{index}"


def _rule(table: dict[str, Any], where: str) -> Rule:
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise RulesError(
            f"{where} has an unknown field {unknown[0]!r} (known: {', '.join(FIELDS)})"
        )
    name = table.get("name")
    if not isinstance(name, str) or not RULE_NAME_RE.fullmatch(name):
        raise RulesError(f"{where} field 'name' must be 1-64 characters of [A-Za-z0-9._-]")
    metric = _metric(table.get("metric"), where)
    if ("above" in table) == ("below" in table):
        raise RulesError(f"{where} needs exactly one of the fields 'above' and 'below'")
    direction = "above" if "above" in table else "below"
    threshold = _number(table[direction], where, direction)
    clear = _number(table.get("clear", threshold), where, "clear")
    if (clear > threshold) if direction == "above" else (clear < threshold):
        raise RulesError(
            f"{where} field 'clear' ({clear:g}) must not be {direction} the threshold {threshold:g}"
        )
    stale, repeat = (_duration(table, f, where) for f in ("stale", "repeat"))
    if stale == 0 or repeat == 0:
        raise RulesError(f"{where} field '{'stale' if stale == 0 else 'repeat'}' must be over 0")
    return Rule(
        name=name,
        metric=metric,
        above=threshold if direction == "above" else None,
        below=threshold if direction == "below" else None,
        for_s=_duration(table, "for", where) or 0.0,
        clear=clear,
        stale_s=stale,
        repeat_s=repeat,
    )


def _metric(raw: object, where: str) -> str:
    parts = raw.split("/") if isinstance(raw, str) else []
    ok = len(parts) == 3 and all(_NAME_PART_RE.fullmatch(p) for p in parts[:2])
    if not ok or not _METRIC_PART_RE.fullmatch(parts[2]):
        raise RulesError(
            f"{where} field 'metric' must be source/sensor/metric such as"
            " pi/pi_cpu/cpu_temp_c (* matches within a part)"
        )
    return "/".join(parts)


def _number(raw: object, where: str, field: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise RulesError(f"{where} field {field!r} must be a number, not {raw!r}")
    return float(raw)


def _duration(table: dict[str, Any], field: str, where: str) -> float | None:
    if field not in table:
        return None
    try:
        return parse_duration(table[field])
    except ValueError:
        raise RulesError(
            f"{where} field {field!r} must be a duration such as 90s, 5m or 1h"
            f" (at most 30 days), not {table[field]!r}"
        ) from None


# -- the state machine -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """Where one (rule, metric) pair stands, and what the next decision needs."""

    rule: str
    metric: str  # the concrete source/sensor/metric
    state: str = OK
    since: float  # when the current state began (for firing: when the breach began)
    reason: str = ""  # THRESHOLD or STALE while pending or firing
    value: float | None = None  # the newest value evaluated
    last_ts: float | None = None  # measurement time of the newest reading evaluated
    last_seq: int | None = None  # its seq, so a replay is recognised as one
    seen_at: float  # evaluator clock when the newest reading arrived (the stale timer)
    notified_at: float | None = None  # evaluator clock of the last FIRING sent (repeat)


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """A notification due: the pair fired, fired again (repeat) or resolved."""

    kind: str  # FIRING or "resolved"
    rule: str
    metric: str
    value: float | None
    threshold: float
    direction: str  # above or below
    clear: float
    reason: str  # THRESHOLD or STALE
    since: float  # when the breach or the silence began
    at: float  # when it happened
    repeat: bool = False

    @property
    def title(self) -> str:
        """`FIRING: <name>` or `RESOLVED: <name>`."""
        return f"{self.kind.upper()}: {self.rule}"

    def body(self, public_url: str = "") -> str:
        """What happened, in a few lines: metric, value, threshold, since when, a link."""
        since = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        value = "no value" if self.value is None else f"{self.value:g}"
        lasted = format_duration(max(self.at - self.since, 0.0))
        if self.reason == STALE:
            what = f"has sent nothing for {lasted}, since {since} (last value {value})"
            if self.kind == RESOLVED:
                what = f"is reporting again after {lasted} of silence (value {value})"
        elif self.kind == FIRING:
            what = f"is {value}, {self.direction} {self.threshold:g} since {since} ({lasted})"
        else:
            back = "below" if self.direction == "above" else "above"
            what = (
                f"is {value}, back {back} {self.clear:g}; it was"
                f" {self.direction} {self.threshold:g} for {lasted} from {since}"
            )
        lines = [f"{self.metric} {what}"]
        if public_url:
            lines.append(public_url)
        return "\n".join(lines)


RESOLVED = "resolved"


def initial(rule: Rule, metric: str, now: float) -> State:
    """A pair never evaluated: ok, with its stale timer starting now."""
    return State(rule=rule.name, metric=metric, since=now, seen_at=now)


def is_replay(state: State, ts: float, seq: int | None) -> bool:
    """A reading not newer than the newest evaluated: by seq when both have one, else by time."""
    if seq is not None and state.last_seq is not None:
        return seq <= state.last_seq
    return state.last_ts is not None and ts <= state.last_ts


def observe(
    rule: Rule, state: State, value: float, ts: float, seq: int | None, now: float
) -> tuple[State, list[Transition]]:
    """One reading of the pair's metric (measured at `ts`, arriving at `now`)."""
    if is_replay(state, ts, seq):
        return state, []
    out: list[Transition] = []
    state = replace(state, value=value, last_ts=ts, last_seq=seq, seen_at=now)
    if state.state == FIRING and state.reason == STALE:
        out.append(_transition(rule, state, RESOLVED, ts))
        state = replace(state, state=OK, since=ts, reason="")
    if state.state == FIRING:
        if rule.cleared(value):
            out.append(_transition(rule, state, RESOLVED, ts))
            state = replace(state, state=OK, since=ts, reason="")
        return state, out
    if not rule.breached(value):
        if state.state != OK:
            state = replace(state, state=OK, since=ts, reason="")
        return state, out
    if state.state == OK:
        state = replace(state, state=PENDING, since=ts, reason=THRESHOLD)
    if ts - state.since >= rule.for_s:
        state = replace(state, state=FIRING, notified_at=now)
        out.append(_transition(rule, state, FIRING, ts))
    return state, out


def tick(rule: Rule, state: State, now: float) -> tuple[State, list[Transition]]:
    """Time passing with no reading: a silent metric fires; a firing one repeats."""
    if rule.stale_s is not None and state.state != FIRING and now - state.seen_at >= rule.stale_s:
        state = replace(state, state=FIRING, since=state.seen_at, reason=STALE, notified_at=now)
        return state, [_transition(rule, state, FIRING, now)]
    if (
        state.state == FIRING
        and rule.repeat_s is not None
        and now - (state.notified_at or state.since) >= rule.repeat_s
    ):
        state = replace(state, notified_at=now)
        return state, [_transition(rule, state, FIRING, now, repeat=True)]
    return state, []


def _transition(rule: Rule, state: State, kind: str, at: float, repeat: bool = False) -> Transition:
    return Transition(
        kind=kind,
        rule=rule.name,
        metric=state.metric,
        value=state.value,
        threshold=rule.threshold,
        direction=rule.direction,
        clear=rule.clear,
        reason=state.reason or THRESHOLD,
        since=state.since,
        at=at,
        repeat=repeat,
    )


# -- on the Redis channel: `event: alert` for the dashboards -----------------

ALERT_KEYS = frozenset(
    {"rule", "metric", "state", "since", "value", "kind", "reason", "threshold", "direction"}
    | {"clear", "at", "source", "sensor"}
)
# What the hub looks for before parsing: a reading message can never hold it
# (names exclude quotes), and the recorder writes it exactly so.
ALERT_MARK = b'"type":"alert"'


def targets_key(channel: str) -> str:
    """The Redis hash where the recorder's notifier reports each target's health."""
    return f"{channel}:alerts:targets"


class AlertMessageError(ValueError):
    """A channel message of type alert that is not one the recorder writes."""


def alert_message(transition: Transition, state: State) -> str:
    """The channel message for a transition (flask-sse format, type alert)."""
    source, sensor, _ = transition.metric.split("/")
    data = {
        "rule": transition.rule,
        "metric": transition.metric,
        "state": state.state,
        "since": state.since,
        "value": transition.value,
        "kind": transition.kind,
        "reason": transition.reason,
        "threshold": transition.threshold,
        "direction": transition.direction,
        "clear": transition.clear,
        "at": transition.at,
        "source": source,
        "sensor": sensor,
    }
    return json.dumps({"data": data, "type": "alert"}, separators=(",", ":"), allow_nan=False)


def parse_alert_message(raw: str | bytes) -> dict[str, Any]:
    """The `data` of an alert message, checked field by field; AlertMessageError otherwise."""
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError):
        raise AlertMessageError("alert message is not JSON") from None
    data = msg.get("data") if isinstance(msg, dict) and msg.get("type") == "alert" else None
    if not isinstance(data, dict) or set(data) != ALERT_KEYS:
        raise AlertMessageError("alert message must be {data: {...}, type: alert}")
    parts = data["metric"].split("/") if isinstance(data["metric"], str) else []
    checks = {
        "rule": isinstance(data["rule"], str) and RULE_NAME_RE.fullmatch(data["rule"]),
        "metric": len(parts) == 3
        and all(_NAME_PART_RE.fullmatch(p) and "*" not in p for p in parts)
        and [data["source"], data["sensor"]] == parts[:2],
        "state": data["state"] in (OK, PENDING, FIRING),
        "kind": data["kind"] in (FIRING, RESOLVED),
        "reason": data["reason"] in (THRESHOLD, STALE),
        "direction": data["direction"] in ("above", "below"),
    }
    for name in ("since", "value", "threshold", "clear", "at"):
        value = data[name]
        checks[name] = (value is None and name == "value") or (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise AlertMessageError(f"alert message field {bad[0]!r} is not valid")
    return data


# -- python -m shared.alerts --check FILE -------------------------------------


def describe(rule: Rule) -> str:
    """One line per rule, as `--check` prints it."""
    parts = [f"{rule.name}: {rule.metric} {rule.direction} {rule.threshold:g}"]
    if rule.for_s:
        parts.append(f"for {format_duration(rule.for_s)}")
    if rule.clear != rule.threshold:
        parts.append(f"clears at {rule.clear:g}")
    if rule.stale_s is not None:
        parts.append(f"stale after {format_duration(rule.stale_s)}")
    if rule.repeat_s is not None:
        parts.append(f"repeats every {format_duration(rule.repeat_s)}")
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """`--check FILE`: exit 0 and print the rules, or 2 and print why the file is bad."""
    parser = argparse.ArgumentParser(prog="python -m shared.alerts", description=__doc__)
    parser.add_argument("--check", metavar="FILE", required=True, help="validate a rules file")
    args = parser.parse_args(argv)
    try:
        rules = load_rules(args.check)
    except RulesError as exc:
        print(exc, file=sys.stderr)
        return 2
    for rule in rules:
        print(describe(rule))
    print(f"{len(rules)} rule{'s' if len(rules) != 1 else ''} OK", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
