"""`python -m recorder backup PATH`: a consistent copy of the history while everything runs.

SQLite's online backup API copies the database inside one read transaction:
in WAL mode that is a snapshot the recorder keeps writing past, so the copy
is exactly the history at one instant. Restore: see docs/history.md.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from pathlib import Path

from shared import migrations, store


class BackupError(RuntimeError):
    """A backup that cannot be made; the message is one sentence."""


def backup(database: Path, target: Path) -> int:
    """Copy `database` to `target` (which must not exist); the copy's size in bytes."""
    if not database.exists():
        raise BackupError(f"there is no history at {database} to back up")
    if target.exists():
        raise BackupError(f"{target} exists already; give a new file name")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory")
    partial = target.with_name(f".{target.name}.partial")
    try:
        source = store.connect(database, readonly=True)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)  # all pages in one step: one snapshot
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            copy.commit()
        finally:
            copy.close()
            source.close()
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"the backup failed: {exc}") from None
    return target.stat().st_size


def run(database: Path, argv: list[str]) -> int:
    """The command: one line saying what was written, or why not."""
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m recorder backup PATH  (PATH: a new file)", file=sys.stderr)
        return 2
    target = Path(argv[0])
    start = time.monotonic()
    try:
        size = backup(database, target)
    except BackupError as exc:
        print(exc, file=sys.stderr)
        return 1
    with contextlib.closing(store.connect(target, readonly=True)) as conn:
        version = migrations.version(conn)
    print(
        f"backed up {database} to {target}: {size / 1e6:,.1f} MB, schema version {version},"
        f" in {time.monotonic() - start:.1f} s"
    )
    return 0
