"""GET /api/openapi.json: an OpenAPI 3.1 description of every route, built from the code's limits.

The limits come from the modules that enforce them (params, api, reading, ingest), so
the description cannot drift from the validation; the tests fuzz the API
against it with schemathesis.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from shared.events import STREAM_ID_RE
from shared.reading import (
    MAX_METRICS,
    MAX_SEQ,
    MAX_TS,
    METRIC_MAX,
    METRIC_RE,
    MIN_TS,
    NAME_RE,
    UNITS,
)
from web import alerts, api, auth, ingest, params, sensor_settings

bp = Blueprint("openapi", __name__, url_prefix="/api")

JSON = "application/json"
NAME = f"^{NAME_RE.pattern}$"
_N = NAME_RE.pattern
NAME_LIST = rf"^[ \t]*({_N}[ \t]*,[ \t]*){{0,{params.MAX_LIST - 1}}}{_N}[ \t]*$|^[ \t]*$"
METRIC = f"^{METRIC_RE.pattern}$"
# A metric a reading may carry: METRIC_RE ending in one of the unit suffixes
# (the length limit is the propertyNames' maxLength).
READING_METRIC = "^[a-z][a-z0-9_]*_(" + "|".join(sorted(UNITS)) + ")$"
STREAM_ID = f"^{STREAM_ID_RE.pattern}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


# An empty value means "absent" everywhere (handy for scripts and forms).
EMPTY = {"type": "string", "maxLength": 0}


def _time(name: str, default: str) -> dict[str, Any]:
    schema = {
        "anyOf": [
            {"type": "string", "pattern": f"^{params.UNIX_RE.pattern}$"},
            {"type": "string", "pattern": f"^{params.ISO_RE.pattern}$"},
            EMPTY,
        ]
    }
    text = f"Unix seconds or ISO 8601 (naive = UTC), 1970-2100; default {default}"
    return _query(name, schema, text)


def _integer(name: str, bounds: params.Bounds, text: str = "") -> dict[str, Any]:
    schema = {"anyOf": [{"type": "integer", "minimum": bounds.low, "maximum": bounds.high}, EMPTY]}
    return _query(name, schema, text or f"default {bounds.default}")


def _names(name: str) -> dict[str, Any]:
    schema = {"type": "string", "pattern": NAME_LIST, "maxLength": params.MAX_LIST * 66}
    return _query(name, schema, f"comma list of at most {params.MAX_LIST} {name} names")


def _filters() -> list[dict[str, Any]]:
    return [
        _names("source"),
        _names("sensor"),
        _time("since", "until - 1 h; any span"),
        _time("until", "now"),
    ]


def _readings_params() -> list[dict[str, Any]]:
    return [
        *_filters(),
        _integer(
            "limit", api.READINGS_LIMIT, f"readings per page; default {api.READINGS_LIMIT.default}"
        ),
        _query(
            "cursor",
            {"type": "string", "maxLength": 64},
            "the `next` of the previous page, with the same other parameters",
        ),
    ]


def _export_params() -> list[dict[str, Any]]:
    return [
        *_filters(),
        _query(
            "tier",
            {"type": "string", "enum": list(api.TIERS)},
            "raw (default): a row per value; 1m or 1h: a row per bucket of min/avg/max/n",
        ),
        _integer("limit", api.EXPORT_LIMIT, "at most this many; default: all"),
    ]


def _series_params() -> list[dict[str, Any]]:
    one = {"type": "string", "pattern": NAME}
    return [
        _query("source", one, "the source", required=True),
        _query("sensor", one, "the sensor", required=True),
        _query("metric", {"type": "string", "pattern": METRIC}, "the metric", required=True),
        _time("since", "until - 1 h; any span (starts at the series' first data if before it)"),
        _time("until", "now"),
        _integer("points", api.SERIES_POINTS),
    ]


def _stream_params(channel: str) -> list[dict[str, Any]]:
    return [
        _names("source"),
        _names("sensor"),
        _query(
            "last_event_id",
            {"type": "string", "pattern": STREAM_ID},
            "resume after this id (the Last-Event-ID header wins)",
        ),
        _query(
            "channel",
            {"type": "string", "enum": [channel]},
            "accepted for flask-sse clients; any channel but the configured one is a 400",
        ),
    ]


def _api_errors() -> dict[str, Any]:
    return {
        "400": _error("a parameter is malformed or out of range; `error` names it"),
        "503": _error("the history database is not there yet or cannot be read"),
    }


def _paths(channel: str) -> dict[str, Any]:
    return {
        "/api/sensors": {
            "get": {
                "summary": "every known source/sensor with its metrics and last values",
                "responses": {"200": _json(_ref("Sensors"), "the sensors"), **_api_errors()},
            }
        },
        "/api/alerts": {
            "get": {
                "summary": "alert states (firing first), rules, recent transitions, targets",
                "responses": {"200": _json(_ref("Alerts"), "the alerts"), **_api_errors()},
            }
        },
        "/api/readings": {
            "get": {
                "summary": "raw readings, oldest first, a page at a time (`next` -> `cursor`)",
                "parameters": _readings_params(),
                "responses": {"200": _json(_ref("Readings"), "the readings"), **_api_errors()},
            }
        },
        "/api/series": {
            "get": {
                "summary": (
                    "one metric downsampled to buckets of min/avg/max/n,"
                    " from the finest history tier that covers the range"
                ),
                "parameters": _series_params(),
                "responses": {"200": _json(_ref("Series"), "the buckets"), **_api_errors()},
            }
        },
        "/api/export.csv": {
            "get": {
                "summary": "any range as CSV, streamed: raw values or 1m/1h buckets",
                "parameters": _export_params(),
                "responses": {
                    "200": {
                        "description": (
                            "raw: ts,time_utc,source,sensor,seq,metric,value;"
                            " 1m/1h: t,time_utc,source,sensor,metric,min,avg,max,n"
                        ),
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **_api_errors(),
                },
            }
        },
        "/stream": {
            "get": {
                "summary": "Server-Sent Events: `event: reading` per matching reading, resumable",
                "parameters": _stream_params(channel),
                "responses": {
                    "200": {
                        "description": "an endless SSE stream (retry, comments, events)",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _error("a malformed filter, last_event_id or channel"),
                },
            }
        },
        **sensor_settings.openapi_paths(_api_errors(), _json),
        **ingest.openapi_paths(_ref("Reading"), _json, _error),
        **_probe_paths(),
    }


def _probe_paths() -> dict[str, Any]:
    ready = {
        "type": "object",
        "required": ["ready", "problems"],
        "properties": {
            "ready": {"type": "boolean"},
            "problems": {"type": "array", "items": {"type": "string"}},
            "last_event_age_s": {"type": ["number", "null"]},
        },
    }
    return {
        "/healthz": {
            "get": {
                "summary": "the process answers",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "the Redis subscription is live and the history readable",
                "security": [],
                "responses": {"200": _json(ready, "ready"), "503": _json(ready, "not ready")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text, every worker together",
                "responses": {
                    "200": {
                        "description": "Prometheus exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "this description",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
            }
        },
    }


def _schemas() -> dict[str, Any]:
    number = {"type": "number"}
    reading = {
        "type": "object",
        "required": ["source", "sensor", "ts", "values"],
        "additionalProperties": False,
        "properties": {
            "source": {"type": "string", "pattern": NAME},
            "sensor": {"type": "string", "pattern": NAME},
            "ts": {"type": "number", "minimum": MIN_TS, "maximum": MAX_TS},
            "seq": {"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
            "values": {
                "type": "object",
                "propertyNames": {"pattern": READING_METRIC, "maxLength": METRIC_MAX},
                "additionalProperties": number,
                "minProperties": 1,
                "maxProperties": MAX_METRICS,
            },
        },
    }
    metric = {
        "type": "object",
        "required": ["last", "unit"],
        "properties": {"last": number, "unit": {"type": "string"}},
    }
    unit = {
        "type": "object",
        "required": ["symbol", "digits", "label"],
        "properties": {
            "symbol": {"type": "string"},
            "digits": {"type": "integer"},
            "label": {"type": "string"},
        },
    }
    sensor = {
        "type": "object",
        "required": ["source", "sensor", "metrics", "last_seen", "last_error"],
        "properties": {
            "source": {"type": "string"},
            "sensor": {"type": "string"},
            "metrics": {"type": "object", "additionalProperties": metric},
            "last_seen": number,
            "last_error": {"type": ["string", "null"]},
        },
    }
    bucket = {
        "type": "object",
        "required": ["t", "min", "avg", "max", "n"],
        "properties": {**{k: number for k in ("t", "min", "avg", "max")}, "n": {"type": "integer"}},
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "Reading": reading,
        "Readings": {
            "type": "object",
            "required": ["readings", "next"],
            "properties": {
                "readings": {"type": "array", "items": _ref("Reading")},
                "next": {
                    "type": ["string", "null"],
                    "description": "pass as `cursor` for the next page; null on the last",
                },
            },
        },
        "Sensors": {
            **_wrap("sensors", sensor),
            "required": ["sensors", "units"],
            "properties": {
                "sensors": {"type": "array", "items": sensor},
                "units": {"type": "object", "additionalProperties": unit},
            },
        },
        "Alerts": alerts.openapi_schema(),
        "SensorSettings": sensor_settings.openapi_schema(),
        "Series": {
            "type": "object",
            "required": ["source", "sensor", "metric", "buckets"],
            "properties": {
                "source": {"type": "string"},
                "sensor": {"type": "string"},
                "metric": {"type": "string"},
                "buckets": {"type": "array", "items": bucket},
            },
        },
    }


def _wrap(key: str, items: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": items}},
    }


def spec(channel: str, protected: bool) -> dict[str, Any]:
    """The OpenAPI document; with `protected`, the token schemes apply to every route."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "sensor-display",
            "version": "1",
            "description": "Live sensor readings and their history (docs/architecture.md).",
        },
        "paths": _paths(channel),
        "components": {
            "schemas": _schemas(),
            # POST /api/ingest takes its own token, whatever ACCESS_TOKEN says.
            "securitySchemes": {"ingest": {"type": "http", "scheme": "bearer"}},
        },
    }
    if protected:
        doc["components"]["securitySchemes"].update(
            bearer={"type": "http", "scheme": "bearer"},
            session={"type": "apiKey", "in": "cookie", "name": auth.COOKIE},
        )
        doc["security"] = [{"bearer": []}, {"session": []}]
        for item in doc["paths"].values():
            for method in ("get", "put"):
                if method not in item or item[method].get("security") == []:
                    continue
                item[method]["responses"].setdefault("401", _error("no valid token or session"))
                item[method]["responses"].setdefault("429", _error("too many failed tokens"))
    return doc


@bp.get("/openapi.json")
def openapi() -> Response:
    """This server's OpenAPI description."""
    settings = current_app.config["SETTINGS"]
    return jsonify(spec(settings.redis_channel, protected=bool(settings.access_token)))
