"""The dashboard database, read-only, one connection per request."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flask import Flask, g

from shared import store
from web.services import services


class HistoryUnavailable(Exception):
    """The recorder has not created the database yet, or it cannot be read."""


def get_db() -> sqlite3.Connection:
    """This request's read-only connection to the history."""
    if "db" not in g:
        path = Path(services().settings.database_path)
        if not path.exists():
            raise HistoryUnavailable(
                f"no history yet: {path.name} does not exist (is the recorder running?)"
            )
        try:
            g.db = store.connect(path, readonly=True)
        except sqlite3.Error as exc:
            raise HistoryUnavailable(f"the history cannot be opened: {exc}") from None
    return g.db


def close_db(exc: BaseException | None = None) -> None:
    """Close the connection at the end of the request."""
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app: Flask) -> None:
    """Register the teardown."""
    app.teardown_appcontext(close_db)
