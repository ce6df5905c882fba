"""The Flask application: settings, blueprints, error handlers."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from shared.settings import Settings
from web import (
    alerts,
    api,
    auth,
    ingest,
    metrics,
    openapi,
    pages,
    peers,
    pwa,
    sensor_settings,
    stream,
    worker,
)
from web.db import HistoryTimeout, HistoryUnavailable
from web.params import BadParameter

logger = logging.getLogger(__name__)


def build_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Settings from the environment, unless `test_config` brings its own SETTINGS (tests)."""
    app = Flask(__name__)
    if test_config:
        app.config.update(test_config)
    # Read one way everywhere: current_app.config["SETTINGS"].
    app.config["SETTINGS"] = app.config.get("SETTINGS") or Settings.from_env()
    app.json.sort_keys = False  # type: ignore[attr-defined]
    worker.init_app(app)
    peers.init_app(app)
    pages.init_app(app)
    pwa.init_app(app)
    auth.init_app(app)
    ingest.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(sensor_settings.bp)
    app.register_blueprint(alerts.bp)
    app.register_blueprint(openapi.bp)
    stream.init_app(app)
    app.register_blueprint(metrics.bp)
    _register_errors(app)
    return app


def _register_errors(app: Flask) -> None:
    @app.errorhandler(BadParameter)
    def bad_parameter(exc: BadParameter) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 400

    @app.errorhandler(HistoryUnavailable)
    def no_history(exc: HistoryUnavailable) -> tuple[Response, int]:
        response = jsonify(error=str(exc))
        if isinstance(exc, HistoryTimeout):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response, 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(error=f"{exc.name}: {exc.description}"), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        logger.error("unhandled error", exc_info=exc)
        return jsonify(error="internal error; see the server log"), 500
