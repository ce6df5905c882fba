"""deploy/docker/healthcheck.py: the images' HEALTHCHECK, run as Docker would."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "docker" / "healthcheck.py"


def check(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run the script with exactly this environment, as in a container."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_fresh_follows_the_wal_and_expands_variables(tmp_path: Path) -> None:
    """A stale database with a fresh -wal is live; the path may be $OUTBOX_PATH."""
    db = tmp_path / "outbox.sqlite3"
    db.write_bytes(b"")
    old = time.time() - 3600
    os.utime(db, (old, old))
    assert check("fresh", "$OUTBOX_PATH", "300", OUTBOX_PATH=str(db)).returncode == 1
    Path(f"{db}-wal").write_bytes(b"")
    assert check("fresh", "$OUTBOX_PATH", "300", OUTBOX_PATH=str(db)).returncode == 0


def test_fresh_allows_three_intervals(tmp_path: Path) -> None:
    """A producer ticking every 10 minutes is not stale after 5."""
    db = tmp_path / "outbox.sqlite3"
    db.write_bytes(b"")
    old = time.time() - 900
    os.utime(db, (old, old))
    assert check("fresh", str(db), "300", INTERVAL="600").returncode == 0
    result = check("fresh", str(db), "300", INTERVAL="1")
    assert result.returncode == 1
    assert "last written" in result.stderr


def test_sqlite(tmp_path: Path) -> None:
    """A real database passes; a missing or corrupt one fails with the reason."""
    db = tmp_path / "dashboard.sqlite3"
    assert check("sqlite", str(db)).returncode == 1
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE t (x)")
    assert check("sqlite", str(db)).returncode == 0
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"not a database" * 100)
    assert check("sqlite", str(bad)).returncode == 1


def test_http_fails_when_nothing_listens() -> None:
    """No server on PORT: unhealthy, with the URL in the message."""
    result = check("http", "/healthz", PORT="1")
    assert result.returncode == 1
    assert "127.0.0.1:1/healthz" in result.stderr


@pytest.mark.parametrize("args", [[], ["http"], ["bogus", "x"]])
def test_usage(args: list[str]) -> None:
    """Wrong arguments are a usage error (2), not a verdict."""
    assert check(*args).returncode == 2
