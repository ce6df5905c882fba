"""Query parameters: parsed and validated, or a 400 that names the parameter."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from shared.reading import METRIC_RE, NAME_RE

MAX_LIST = 32
MAX_TIME = 4102444800  # 2100-01-01
SPACE = " \t"  # only these around list items; other whitespace is an error
UNIX_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")
ISO_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


class Bounds(NamedTuple):
    """An integer parameter's default and limits (validation and /api/openapi.json read these)."""

    default: int
    low: int
    high: int


class BadParameter(ValueError):
    """A query parameter that cannot be used; answered with HTTP 400."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"parameter {name!r}: {problem}")
        self.name = name


def names(args: Mapping[str, str], name: str) -> frozenset[str] | None:
    """A comma list of source or sensor names (spaces around commas allowed); None if empty."""
    raw = args.get(name, "")
    if not raw.strip(SPACE):
        return None
    if len(raw) > MAX_LIST * 66:  # 32 names of 64 characters, commas and spaces
        raise BadParameter(name, f"at most {MAX_LIST} names")
    items = [item.strip(SPACE) for item in raw.split(",")]
    if len(items) > MAX_LIST:
        raise BadParameter(name, f"at most {MAX_LIST} names")
    for item in items:
        if not NAME_RE.fullmatch(item):
            raise BadParameter(name, "names are 1-64 characters of [A-Za-z0-9._-]")
    return frozenset(items)


def required_name(args: Mapping[str, str], name: str) -> str:
    """One source or sensor name that must be present."""
    value = args.get(name, "")
    if not value:
        raise BadParameter(name, "is required")
    if not NAME_RE.fullmatch(value):
        raise BadParameter(name, "must be 1-64 characters of [A-Za-z0-9._-]")
    return value


def metric(args: Mapping[str, str], name: str = "metric") -> str:
    """A metric name that must be present."""
    value = args.get(name, "")
    if not value:
        raise BadParameter(name, "is required")
    if not METRIC_RE.fullmatch(value):
        raise BadParameter(name, "must match [a-z][a-z0-9_]{0,63}")
    return value


def timestamp(args: Mapping[str, str], name: str, default: float) -> float:
    """Unix seconds or ISO 8601 (naive means UTC), between 1970 and 2100."""
    raw = _present(args, name)
    if raw is None:
        return default
    # Exact shapes, not float()/fromisoformat() leniency ("1e9", "1_0", "nan",
    # week dates): what the OpenAPI description says is what is accepted.
    if UNIX_RE.fullmatch(raw):
        value = float(raw)
    elif ISO_RE.fullmatch(raw):
        value = _iso(name, raw)
    else:
        raise BadParameter(name, "must be Unix seconds or ISO 8601")
    if not 0 <= value <= MAX_TIME:
        raise BadParameter(name, "must be a time between 1970 and 2100")
    return value


def _iso(name: str, raw: str) -> float:
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadParameter(name, "must be Unix seconds or ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _present(args: Mapping[str, str], name: str) -> str | None:
    """The raw value, None when absent; present but empty is an error, not a default."""
    if name not in args:
        return None
    if not args[name]:
        raise BadParameter(name, "must not be empty")
    return args[name]


def integer(args: Mapping[str, str], name: str, bounds: Bounds) -> int:
    """A bounded integer."""
    default, low, high = bounds
    raw = _present(args, name)
    if raw is None:
        return default
    # isascii: "²".isdigit() is true but int("²") raises.
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise BadParameter(name, f"must be an integer from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise BadParameter(name, f"must be an integer from {low} to {high}")
    return value


def time_range(
    args: Mapping[str, str], default_span: float, max_span: float
) -> tuple[float, float]:
    """`since` and `until`, ordered, and no wider than `max_span` seconds."""
    until = timestamp(args, "until", time.time())
    since = timestamp(args, "since", until - default_span)
    if since >= until:
        raise BadParameter("since", "must be before until")
    if until - since > max_span:
        raise BadParameter("since", f"the range may span at most {max_span / 86400:g} days")
    return since, until


def only_channel(args: Mapping[str, str], configured: str) -> None:
    """flask-sse's `?channel=`: this server streams one channel; naming another is a 400."""
    raw = args.get("channel")
    if raw is not None and raw.strip() != configured:
        raise BadParameter("channel", "this server streams only its configured channel")
