"""GET/PUT /api/sensors/<source>/<sensor>/settings, and the settings /api/sensors carries.

Storage and validation are in shared/sensor_settings.py; this module is the
HTTP side. A PUT writes the one table the web may write in the history
database (docs/display.md, "Sensor settings"), on a short-lived connection of
its own; every other request only reads.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from shared import sensor_settings
from shared.reading import NAME_RE, unit_of
from web import auth, db
from web.db import HistoryUnavailable
from web.params import BadParameter

logger = logging.getLogger(__name__)

bp = Blueprint("sensor_settings", __name__, url_prefix="/api/sensors")


def _names(source: str, sensor: str) -> None:
    for field, value in (("source", source), ("sensor", sensor)):
        if not NAME_RE.fullmatch(value):
            raise BadParameter(field, "must be 1-64 characters of [A-Za-z0-9._-]")


@bp.get("/<source>/<sensor>/settings")
def get_settings(source: str, sensor: str) -> Response:
    """One sensor's settings (the defaults when nobody chose any)."""
    _names(source, sensor)
    chosen = db.read(lambda conn: sensor_settings.load(conn, source, sensor))
    return jsonify(source=source, sensor=sensor, **chosen.to_dict())


@bp.put("/<source>/<sensor>/settings")
def put_settings(source: str, sensor: str) -> tuple[Response, int] | Response:
    """Replace one sensor's settings; 400 naming the field when the body is wrong."""
    _names(source, sensor)
    if not auth.can_write():
        return jsonify(error="changing settings needs the full access token, not a view token"), 403
    body = request.get_json(silent=True)
    if body is None:
        return jsonify(error="the body must be JSON (Content-Type: application/json)"), 400
    try:
        chosen = sensor_settings.parse(body)
    except sensor_settings.InvalidSettings as exc:
        return jsonify(error=str(exc)), 400
    _write(source, sensor, chosen)
    logger.info("settings of %s/%s changed", source, sensor)
    return jsonify(source=source, sensor=sensor, **chosen.to_dict())


def _write(source: str, sensor: str, chosen: sensor_settings.SensorSettings) -> None:
    path = Path(current_app.config["SETTINGS"].database_path)
    if not path.exists():
        raise HistoryUnavailable(
            f"no history yet: {path.name} does not exist (is the recorder running?)"
        )
    conn = sqlite3.connect(path, timeout=5.0)
    try:
        sensor_settings.save(conn, source, sensor, chosen)
    except sqlite3.Error as exc:
        raise HistoryUnavailable(f"the settings could not be stored: {exc}") from None
    finally:
        conn.close()


def decorate(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add each sensor's settings to /api/sensors entries, and `display` to metrics shown
    otherwise than stored (another unit, or chosen decimals)."""
    chosen = db.read(sensor_settings.load_all)
    for entry in entries:
        mine = chosen.get((entry["source"], entry["sensor"]), sensor_settings.DEFAULT)
        entry["settings"] = mine.to_dict()
        for metric, info in entry["metrics"].items():
            conversion = mine.conversion(metric)
            if conversion is not None and conversion != sensor_settings.DEFAULT.conversion(metric):
                info["display"] = {
                    "symbol": conversion.symbol,
                    "scale": conversion.scale,
                    "offset": conversion.offset,
                    "decimals": conversion.decimals,
                }
            elif mine.decimals is not None:
                info["display"] = {"decimals": mine.decimals}
    return entries


# The CSV columns that hold a metric's value, in the raw and the bucketed exports.
VALUE_COLUMNS = frozenset({"value", "min", "avg", "max"})


def wants_display(args: Mapping[str, str]) -> bool:
    """`?display=1`: the CSV as the settings show it (names, units, no hidden sensors)."""
    raw = args.get("display", "").strip().lower()
    if raw in {"", "0", "false"}:
        return False
    if raw in {"1", "true"}:
        return True
    raise BadParameter("display", "must be 1 or 0")


def load_chosen(conn: sqlite3.Connection) -> sensor_settings.Chosen:
    """Every sensor's settings, read on the export's own connection."""
    return sensor_settings.load_all(conn)


def display_csv(
    header: list[str], rows: Iterable[list[Any]], chosen: sensor_settings.Chosen
) -> tuple[list[str], Iterator[list[Any]]]:
    """Export rows as the settings show them: a `name` column after `sensor`, values
    converted, a `unit` column at the end; hidden sensors left out."""
    at = {column: i for i, column in enumerate(header)}
    values = [i for column, i in at.items() if column in VALUE_COLUMNS]
    shown_header = [*header[: at["sensor"] + 1], "name", *header[at["sensor"] + 1 :], "unit"]

    def convert(row: list[Any]) -> list[Any] | None:
        source, sensor = str(row[at["source"]]).lstrip("'"), str(row[at["sensor"]]).lstrip("'")
        mine = chosen.get((source, sensor), sensor_settings.DEFAULT)
        if mine.hidden:
            return None
        metric = str(row[at["metric"]])
        conversion = mine.conversion(metric)
        out = list(row)
        if conversion is not None:
            for i in values:
                out[i] = round(
                    out[i] * conversion.scale + conversion.offset, conversion.decimals + 2
                )
        name = sensor_settings.display_name(chosen, source, sensor)
        unit = conversion.symbol if conversion else unit_of(metric)
        return [*out[: at["sensor"] + 1], name, *out[at["sensor"] + 1 :], unit]

    return shown_header, (shown for row in rows if (shown := convert(row)) is not None)


def openapi_schema() -> dict[str, Any]:
    """The settings body, for /api/openapi.json (bounds from shared/sensor_settings.py)."""
    units = {
        field: {"type": "string", "enum": list(sensor_settings.CONVERSIONS[suffix])}
        for suffix, field in sensor_settings.UNIT_FIELDS.items()
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": ["string", "null"], "maxLength": sensor_settings.MAX_NAME_CHARS},
            "hidden": {"type": "boolean"},
            "order": {
                "type": "integer",
                "minimum": -sensor_settings.MAX_ORDER,
                "maximum": sensor_settings.MAX_ORDER,
            },
            **units,
            "decimals": {
                "type": ["integer", "null"],
                "minimum": 0,
                "maximum": sensor_settings.MAX_DECIMALS,
            },
        },
    }


def openapi_paths(errors: dict[str, Any], json_body: Any) -> dict[str, Any]:
    """The GET/PUT settings operations for /api/openapi.json."""
    ref = {"$ref": "#/components/schemas/SensorSettings"}
    names = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string", "pattern": p}}
        for n, p in (("source", NAME_RE.pattern), ("sensor", NAME_RE.pattern))
    ]
    return {
        "/api/sensors/{source}/{sensor}/settings": {
            "parameters": names,
            "get": {
                "summary": "a sensor's display name, hidden, order, units and decimals",
                "responses": {"200": json_body(ref, "the settings"), **errors},
            },
            "put": {
                "summary": "replace a sensor's settings (absent fields take their defaults)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
                "responses": {
                    "200": json_body(ref, "the settings stored"),
                    "403": json_body({"$ref": "#/components/schemas/Error"}, "a view token"),
                    **errors,
                },
            },
        }
    }
