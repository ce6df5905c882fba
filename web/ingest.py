"""`POST /api/ingest`: readings pushed over HTTP by devices without MQTT (docs/mqtt.md).

No outbox here: the device retries until it gets 202, and a reading's
`seq` makes a retry harmless (the publish script drops a seq it has seen).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from shared.marks import MAX_AHEAD_S, Refused
from shared.reading import Reading, ReadingError
from web import limiter, worker
from web.auth import token_matches
from web.limiter import FailedLogins
from web.peers import request_client

logger = logging.getLogger(__name__)

bp = Blueprint("ingest", __name__, url_prefix="/api")

MAX_READINGS = 1000
# 1,000 readings of a few metrics each fit in well under a megabyte.
MAX_BODY_BYTES = 1024 * 1024
# Per source, readings per window, counted in Redis so every worker and
# replica shares the count: one reading a second from many sensors, or a
# device's backlog of 1,000 after an outage, passes; a runaway loop does not.
RATE_LIMIT = 3000
RATE_WINDOW = 60
EXTENSION = "sensor_display_ingest"
JSON = "application/json"


def _error(status: int, message: str, **headers: str) -> tuple[Response, int]:
    response = jsonify(error=message)
    response.headers.update(headers)
    return response, status


@bp.post("/ingest")
def ingest() -> tuple[Response, int]:
    """Take one reading or an array of them; 202 with how many were accepted."""
    token = current_app.config["SETTINGS"].ingest_token
    if not token:
        return _error(404, "ingest is off: set INGEST_TOKEN to turn it on")
    refused = _check_token(token)
    if refused:
        return refused
    request.max_content_length = MAX_BODY_BYTES  # beyond it: 413, body unread
    try:
        readings = parse_body(request.get_data(cache=False))
    except ReadingError as exc:
        return _error(400, str(exc))
    wait = _over_limit(readings)
    if wait:
        return _error(
            429, f"more than {RATE_LIMIT} readings in {RATE_WINDOW}s from one source",
            **{"Retry-After": str(wait)},
        )  # fmt: skip
    published = 0
    try:
        for reading in readings:
            worker.bus().publish(reading)
            published += 1
    except Refused as exc:  # marks rule 8, by Redis's clock and marks
        where = f"readings[{published}]" if len(readings) > 1 else "reading"
        return _error(400, f"{where}: {exc}; the {published} before it were accepted")
    except redis.RedisError as exc:
        logger.warning("ingest: Redis unavailable: %s", exc)
        return _error(503, "Redis is unavailable; retry (seq makes a retry harmless)")
    return jsonify(accepted=len(readings)), 202


def parse_body(body: bytes) -> list[Reading]:
    """One reading or a JSON array of 1 to MAX_READINGS; ReadingError naming the first fault."""
    try:
        obj = json.loads(body, parse_constant=_refuse)
    except (ValueError, RecursionError) as exc:
        raise ReadingError(f"body is not JSON: {str(exc)[:80]}") from None
    items = obj if isinstance(obj, list) else [obj]
    if not 1 <= len(items) <= MAX_READINGS:
        raise ReadingError(f"send one reading or an array of 1 to {MAX_READINGS}")
    readings = []
    for i, item in enumerate(items):
        where = f"readings[{i}]" if isinstance(obj, list) else "reading"
        try:
            reading = Reading.from_dict(item)
        except ReadingError as exc:
            raise ReadingError(f"{where}: {exc}") from None
        # The publish script refuses these too (marks rule 8); checked here
        # first so that nothing of a refused body is published.
        if reading.ts > time.time() + MAX_AHEAD_S:
            raise ReadingError(f"{where}: ts is more than {MAX_AHEAD_S // 3600} h in the future")
        readings.append(reading)
    return readings


def _refuse(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _check_token(token: str) -> tuple[Response, int] | None:
    failures: FailedLogins = current_app.extensions[EXTENSION]

    def match() -> bool | None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return (scheme.lower() == "bearer" and token_matches(given.strip(), token)) or None

    # The dashboard's rule for every token (web/limiter.py, `check`).
    checked = limiter.check(failures, request_client(), match, "wrong ingest token")
    if checked is True:
        return None
    if checked.wait:
        wait = str(int(checked.wait) + 1)
        return _error(429, "too many wrong tokens; try again later", **{"Retry-After": wait})
    return _error(
        401, "send Authorization: Bearer <INGEST_TOKEN>", **{"WWW-Authenticate": "Bearer"}
    )


def _over_limit(readings: list[Reading]) -> int:
    """Count the readings against their sources' windows; seconds to wait if over, else 0."""
    counts: dict[str, int] = {}
    for reading in readings:
        counts[reading.source] = counts.get(reading.source, 0) + 1
    window = int(time.time() // RATE_WINDOW)
    channel = worker.bus().channel
    keys = {source: f"{channel}:ingest:{window}:{source}" for source in counts}
    try:
        pipe = worker.bus().client.pipeline()
        for source, count in counts.items():
            pipe.incrby(keys[source], count)
            pipe.expire(keys[source], RATE_WINDOW * 2)
        totals = pipe.execute()[::2]
        over = [s for s, total in zip(counts, totals, strict=True) if total > RATE_LIMIT]
        if over:  # refused readings do not count
            pipe = worker.bus().client.pipeline()
            for source in counts:
                pipe.decrby(keys[source], counts[source])
            pipe.execute()
    except redis.RedisError:
        return 0  # publishing will fail and say so
    return RATE_WINDOW - int(time.time()) % RATE_WINDOW if over else 0


def openapi_paths(reading: dict[str, Any], json_body: Any, error: Any) -> dict[str, Any]:
    """The POST /api/ingest operation for /api/openapi.json, from this module's limits."""
    body = {
        "oneOf": [
            reading,
            {"type": "array", "items": reading, "minItems": 1, "maxItems": MAX_READINGS},
        ]
    }
    accepted = {
        "type": "object",
        "required": ["accepted"],
        "properties": {"accepted": {"type": "integer", "minimum": 1, "maximum": MAX_READINGS}},
    }
    return {
        "/api/ingest": {
            "post": {
                "summary": (
                    f"publish one reading or an array of 1 to {MAX_READINGS}"
                    f" (body at most {MAX_BODY_BYTES} bytes); `seq` makes a retry harmless"
                ),
                "security": [{"ingest": []}],
                "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
                "responses": {
                    "202": json_body(accepted, "every reading was published"),
                    "400": error(
                        "not JSON, not readings, an invalid one, or a ts more than"
                        f" {MAX_AHEAD_S // 3600} h ahead; `error` names it"
                    ),
                    "401": error("no Authorization: Bearer <INGEST_TOKEN>, or a wrong one"),
                    "404": error("ingest is off: INGEST_TOKEN is not set"),
                    "413": {"description": f"a body over {MAX_BODY_BYTES} bytes"},
                    "429": error(
                        f"too many wrong tokens, or more than {RATE_LIMIT} readings from one"
                        f" source in {RATE_WINDOW} s (Retry-After says when)"
                    ),
                    "503": error("Redis is unavailable: retry"),
                },
            }
        }
    }


def init_app(app: Flask) -> None:
    """Register the route; it answers 404 while INGEST_TOKEN is unset."""
    app.extensions[EXTENSION] = FailedLogins()
    app.register_blueprint(bp)
