"""The Flask application: settings, blueprints, error handlers."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from shared.settings import Settings
from web import api, auth, db, ingest, metrics, openapi, pages, stream, worker
from web.db import HistoryUnavailable
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
    db.init_app(app)
    pages.init_app(app)
    auth.init_app(app)
    ingest.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(stream.bp)
    app.register_blueprint(metrics.bp)
    _register_errors(app)
    return app


def _register_errors(app: Flask) -> None:
    @app.errorhandler(BadParameter)
    def bad_parameter(exc: BadParameter) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 400

    @app.errorhandler(HistoryUnavailable)
    def no_history(exc: HistoryUnavailable) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(error=f"{exc.name}: {exc.description}"), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        logger.error("unhandled error", exc_info=exc)
        return jsonify(error="internal error; see the server log"), 500
