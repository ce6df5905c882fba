"""The history database, read-only: one connection per request, and the hub's helpers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flask import Flask, current_app, g

from shared import store
from shared.events import Event


class HistoryUnavailable(Exception):
    """The recorder has not created the database yet, or it cannot be read."""


def get_db() -> sqlite3.Connection:
    """This request's read-only connection to the history."""
    if "db" not in g:
        path = Path(current_app.config["SETTINGS"].database_path)
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


def latest_events(path: Path) -> list[Event]:
    """The newest stored reading per sensor (empty if there is no database): the hub's seed."""
    if not path.exists():
        return []
    conn = store.connect(path, readonly=True)
    try:
        return store.latest(conn)
    finally:
        conn.close()


def events_after(path: Path, last_id: str, limit: int) -> list[Event]:
    """Stored events after a stream id, for resumes the stream cannot serve."""
    conn = store.connect(path, readonly=True)
    try:
        return store.events_after(conn, last_id, limit=limit)
    finally:
        conn.close()


def init_app(app: Flask) -> None:
    """Register the teardown."""
    app.teardown_appcontext(close_db)
