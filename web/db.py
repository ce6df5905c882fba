"""The dashboard database, read-only, one connection per request."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flask import Flask, g

from shared import migrations, store
from web.services import services


class HistoryUnavailable(Exception):
    """The recorder has not created the database yet, or it cannot be read."""


def get_db() -> sqlite3.Connection:
    """This request's read-only connection to the history."""
    if "db" not in g:
        g.db = open_db()
    return g.db


def open_db() -> sqlite3.Connection:
    """A read-only connection at the schema version this code knows; the caller closes it."""
    path = Path(services().settings.database_path)
    if not path.exists():
        raise HistoryUnavailable(
            f"no history yet: {path.name} does not exist (is the recorder running?)"
        )
    try:
        conn = store.connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise HistoryUnavailable(f"the history cannot be opened: {exc}") from None
    try:
        migrations.check(conn)
    except (migrations.SchemaError, sqlite3.Error) as exc:
        conn.close()
        raise HistoryUnavailable(str(exc)) from None
    return conn


def close_db(exc: BaseException | None = None) -> None:
    """Close the connection at the end of the request."""
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app: Flask) -> None:
    """Register the teardown."""
    app.teardown_appcontext(close_db)
