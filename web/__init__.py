"""The web side: a Flask app served by gunicorn with gevent workers.

Kept free of imports so `python -m web` can monkey-patch before Flask and
redis load; the app itself lives in `web.app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `test_config`."""
    from web.app import build_app

    return build_app(test_config)
