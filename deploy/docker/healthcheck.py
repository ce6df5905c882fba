"""Container health checks, standard library only (the images have no curl).

    healthcheck.py http PATH            GET http://127.0.0.1:$PORT/PATH answers 2xx
    healthcheck.py fresh FILE SECONDS   FILE (or its -wal/-journal) changed lately
    healthcheck.py sqlite FILE          FILE opens read-only as an SQLite database

FILE may name an environment variable (``$OUTBOX_PATH``): exec-form
HEALTHCHECK and compose ``test:`` lists are not run by a shell. Exit status 0
means healthy, 1 unhealthy, with one line on stderr saying why.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path


def check_http(path: str) -> str | None:
    """None if the local server answers `path` with 2xx, else the reason."""
    port = os.environ.get("PORT", "9999")
    url = f"http://127.0.0.1:{port}/{path.lstrip('/')}"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return None if 200 <= response.status < 300 else f"{url}: HTTP {response.status}"
    except (OSError, urllib.error.URLError) as exc:
        return f"{url}: {exc}"


def check_fresh(file: Path, seconds: float, now: float | None = None) -> str | None:
    """None if `file` or its WAL/journal changed within `seconds`, else the reason.

    SQLite in WAL mode writes the -wal file and touches the main file only at a
    checkpoint, so the newest of the three is what shows a live writer. A
    producer ticks every INTERVAL seconds; the limit is never below 3 ticks.
    """
    limit = max(seconds, 3 * float(os.environ.get("INTERVAL", "1") or 1))
    mtimes = []
    for candidate in (file, Path(f"{file}-wal"), Path(f"{file}-journal")):
        try:
            mtimes.append(candidate.stat().st_mtime)
        except OSError:
            continue
    if not mtimes:
        return f"{file}: missing"
    age = (time.time() if now is None else now) - max(mtimes)
    return None if age <= limit else f"{file}: last written {age:.0f}s ago (limit {limit:.0f}s)"


def check_sqlite(file: Path) -> str | None:
    """None if `file` is a readable SQLite database, else the reason."""
    if not file.is_file():
        return f"{file}: missing"
    uri = f"{file.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=3)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return f"{file}: {exc}"
    return None


def main(argv: list[str]) -> int:
    """Run the check named by argv[0]; 0 healthy, 1 unhealthy, 2 usage."""
    args = [os.path.expandvars(a) for a in argv]
    if len(args) == 2 and args[0] == "http":
        problem = check_http(args[1])
    elif len(args) == 3 and args[0] == "fresh":
        problem = check_fresh(Path(args[1]), float(args[2]))
    elif len(args) == 2 and args[0] == "sqlite":
        problem = check_sqlite(Path(args[1]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
