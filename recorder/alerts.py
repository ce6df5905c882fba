"""The one alert evaluator, inside the recorder (docs/architecture.md, "Alerts").

The recorder sees every reading once, in stream order, however many web
replicas run; so evaluating here gives one notification per transition.
State per (rule, metric) and every transition live in the history database,
written in one transaction per batch, after the readings and before the
stream entries are acknowledged: a crash re-delivers the batch and the state
machine recognises each reading as a replay by its seq.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from shared import alerts
from shared.alerts import FIRING, Rule, RulesError, State, Transition, alert_message, targets_key
from shared.events import Event
from shared.settings import Settings

if TYPE_CHECKING:  # Apprise is imported by the recorder only, never by web workers
    from recorder.notifier import Notifier, TargetStatus

logger = logging.getLogger(__name__)

# Transitions older than this are dropped from the history when the recorder starts.
KEEP_TRANSITIONS_DAYS = 400
# Distinct metrics whose matching rules are remembered (the cache is cleared past it).
MATCH_CACHE = 100_000

Key = tuple[str, str]  # (rule, metric)


_STATE_FIELDS = tuple(State.__dataclass_fields__)
_UPSERT_STATE = (
    f"INSERT OR REPLACE INTO alert_state ({', '.join(_STATE_FIELDS)})"  # noqa: S608 - field names
    f" VALUES ({', '.join('?' * len(_STATE_FIELDS))})"
)
_TRANSITION_FIELDS = tuple(Transition.__dataclass_fields__)
_INSERT_TRANSITION = (
    f"INSERT INTO alert_transitions ({', '.join(_TRANSITION_FIELDS)}, pending)"  # noqa: S608
    f" VALUES ({', '.join('?' * (len(_TRANSITION_FIELDS) + 1))})"
)


def load_states(conn: sqlite3.Connection) -> dict[Key, State]:
    """Every stored state."""
    rows = conn.execute(f"SELECT {', '.join(_STATE_FIELDS)} FROM alert_state")  # noqa: S608
    return {(r[0], r[1]): State(**dict(zip(_STATE_FIELDS, r, strict=True))) for r in rows}


def pending_transitions(
    conn: sqlite3.Connection, since: float
) -> list[tuple[int, Transition, list]]:
    """Stored transitions after `since` that some target has not received."""
    rows = conn.execute(
        f"SELECT id, {', '.join(_TRANSITION_FIELDS)}, pending FROM alert_transitions"  # noqa: S608
        " WHERE pending != '[]' AND at >= ? ORDER BY id",
        (since,),
    )
    out = []
    for row in rows:
        values = dict(zip(_TRANSITION_FIELDS, row[1:-1], strict=True))
        values["repeat"] = bool(values["repeat"])
        out.append((row[0], Transition(**values), json.loads(row[-1])))
    return out


@dataclass
class Evaluator:
    """Runs every rule over every reading and keeps the states in the database."""

    rules: Sequence[Rule]
    conn: sqlite3.Connection
    notifier: Notifier | None = None
    client: redis.Redis | None = None  # for `event: alert` on the channel
    channel: str = "readings"
    clock: Callable[[], float] = time.time
    states: dict[Key, State] = field(default_factory=dict)
    transitions: int = 0
    _matching: dict[tuple[str, str, str], tuple[Rule, ...]] = field(default_factory=dict)

    def prepare(self) -> None:
        """Store the rules, load the states, resume undelivered notifications.

        The tables are the history's (migration 2, shared/alerts.sql): the
        recorder upgrades the schema before it starts the evaluator.
        """
        now = self.clock()
        names = {r.name for r in self.rules}
        with self.conn:
            self.conn.execute("DELETE FROM alert_rules")
            self.conn.executemany(
                "INSERT INTO alert_rules VALUES (?, ?)",
                [(r.name, json.dumps(r.to_dict())) for r in self.rules],
            )
            # A rule taken out of the file takes its states with it.
            for rule, metric in list(load_states(self.conn)):
                if rule not in names:
                    self.conn.execute(
                        "DELETE FROM alert_state WHERE rule = ? AND metric = ?", (rule, metric)
                    )
            self.conn.execute(
                "DELETE FROM alert_transitions WHERE at < ?", (now - KEEP_TRANSITIONS_DAYS * 86400,)
            )
        self.states = load_states(self.conn)
        # A rule naming one metric exactly watches it from the start, so a
        # sensor that never reports at all still goes stale.
        fresh = [
            alerts.initial(r, r.metric, now)
            for r in self.rules
            if "*" not in r.metric and (r.name, r.metric) not in self.states
        ]
        self._commit(fresh, [])
        self.states.update({(s.rule, s.metric): s for s in fresh})
        if self.notifier is not None:
            self._resume(now)
        logger.info("alerts: %d rules, %d states", len(self.rules), len(self.states))

    def _resume(self, now: float) -> None:
        from recorder.notifier import GIVE_UP_AFTER

        assert self.notifier is not None

        for row_id, transition, pending in pending_transitions(self.conn, now - GIVE_UP_AFTER):
            self.notifier.send(row_id, transition, only=pending)

    def rules_for(self, source: str, sensor: str, metric: str) -> tuple[Rule, ...]:
        """The rules watching a metric (cached: a few metrics recur at every reading)."""
        key = (source, sensor, metric)
        found = self._matching.get(key)
        if found is None:
            if len(self._matching) >= MATCH_CACHE:
                self._matching.clear()
            found = self._matching[key] = tuple(
                r for r in self.rules if r.matches(source, sensor, metric)
            )
        return found

    def observe(self, events: Iterable[Event]) -> list[Transition]:
        """Evaluate a batch of readings in order; commit; notify and publish what changed."""
        now = self.clock()
        changed: dict[Key, State] = {}
        out: list[tuple[Transition, State]] = []
        for event in events:
            r = event.reading
            for metric, value in r.values.items():
                for rule in self.rules_for(r.source, r.sensor, metric):
                    name = f"{r.source}/{r.sensor}/{metric}"
                    key = (rule.name, name)
                    state = self.states.get(key) or alerts.initial(rule, name, now)
                    state, sent = alerts.observe(rule, state, value, r.ts, r.seq, now)
                    self.states[key] = changed[key] = state
                    out.extend((t, state) for t in sent)
        return self._apply(changed, out)

    def tick(self) -> list[Transition]:
        """Stale and repeat timers; runs with or without readings."""
        now = self.clock()
        changed: dict[Key, State] = {}
        out: list[tuple[Transition, State]] = []
        by_name = {r.name: r for r in self.rules}
        for key, state in self.states.items():
            rule = by_name.get(key[0])
            if rule is None:
                continue
            new, sent = alerts.tick(rule, state, now)
            if sent:
                changed[key] = new
                out.extend((t, new) for t in sent)
        self.states.update(changed)
        return self._apply(changed, out)

    def _apply(
        self, changed: dict[Key, State], out: list[tuple[Transition, State]]
    ) -> list[Transition]:
        if not changed:
            return []
        ids = self._commit(list(changed.values()), [t for t, _ in out])
        for row_id, (transition, state) in zip(ids, out, strict=True):
            logger.info("alert %s %s (%s)", transition.title, transition.metric, transition.reason)
            if self.notifier is not None:
                self.notifier.send(row_id, transition)
            if not transition.repeat:
                self._publish(transition, state)
        self.transitions += len(out)
        return [t for t, _ in out]

    def _commit(self, states: list[State], transitions: list[Transition]) -> list[int]:
        pending = json.dumps(self.notifier.target_ids if self.notifier else [])
        ids = []
        with self.conn:
            self.conn.executemany(_UPSERT_STATE, [tuple(asdict(s).values()) for s in states])
            for t in transitions:
                cursor = self.conn.execute(_INSERT_TRANSITION, (*asdict(t).values(), pending))
                ids.append(cursor.lastrowid or 0)
        return ids

    def _publish(self, transition: Transition, state: State) -> None:
        if self.client is None:
            return
        try:
            self.client.publish(self.channel, alert_message(transition, state))
        except redis.RedisError as exc:  # the dashboard re-reads /api/alerts; the state is stored
            logger.warning("alert %s not pushed to the dashboards: %s", transition.title, exc)

    def firing(self) -> int:
        """How many (rule, metric) pairs are firing."""
        return sum(1 for s in self.states.values() if s.state == FIRING)


def evaluate(step: Callable[..., Any], *args: object) -> None:
    """Run one evaluator step; a failure is logged, never a reason to stop recording."""
    try:
        step(*args)
    except Exception:  # the readings are stored whatever happens to the alerts
        logger.exception("alert evaluation failed")


def start_alerts(
    settings: Settings, conn: sqlite3.Connection, client: redis.Redis
) -> Evaluator | None:
    """The evaluator and notifier the settings ask for, or None without ALERTS_FILE.

    A bad rules file or URL stops the recorder here with one sentence (exit 2).
    """
    if settings.alerts_file is None:
        if settings.alert_urls:
            logger.warning("ALERT_URLS is set but ALERTS_FILE is not: no alerts will be sent")
        return None
    from recorder.notifier import Notifier, TargetError, parse_targets, status_json

    try:
        rules = alerts.load_rules(settings.alerts_file)
        targets = parse_targets(settings.alert_urls)
    except (RulesError, TargetError) as exc:
        print(f"sensor-display recorder: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    key = targets_key(settings.redis_channel)

    def report(target_id: str, status: TargetStatus) -> None:
        client.hset(key, target_id, status_json(status))

    try:
        client.delete(key)  # targets no longer configured go with it
    except redis.RedisError as exc:
        logger.warning("could not reset the notifier status: %s", exc)
    notifier = Notifier(
        targets, settings.database_path, public_url=settings.public_url, report=report
    )
    evaluator = Evaluator(rules, conn, notifier, client, settings.redis_channel)
    evaluator.prepare()
    notifier.start()
    if not targets:
        logger.warning("ALERT_URLS is empty: alerts are evaluated and shown, not sent")
    return evaluator
