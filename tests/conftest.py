"""Fixtures: a real Redis, the Flask app, and the whole stack as real processes."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from devtools.redis_server import RedisServer
from devtools.stack import Stack
from shared.settings import Settings


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """In CI (SENSOR_DISPLAY_NO_SKIP=1) a skipped test is a failed test."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and os.environ.get("SENSOR_DISPLAY_NO_SKIP")
        and not hasattr(report, "wasxfail")
    ):
        report.outcome = "failed"
        report.longrepr = f"skipped, but CI must run it: {report.longrepr}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures tests measured (`record_property("figure", text)`)."""
    figures = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        for name, value in getattr(report, "user_properties", ())
        if name == "figure"
    ]
    if figures:
        terminalreporter.section("measured")
        for figure in dict.fromkeys(figures):
            terminalreporter.write_line(figure)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the emptied session Redis."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    """An empty dashboard database in memory."""
    from shared import store

    conn = store.connect(":memory:")
    store.init_db(conn)
    yield conn
    conn.close()


@pytest.fixture
def make_settings(tmp_path: Path, redis_url: str):
    """Build Settings from an env dict over test defaults (Redis, temp databases)."""

    def make(**env: str) -> Settings:
        base = {
            "REDIS_URL": redis_url,
            "DATABASE_PATH": str(tmp_path / "dashboard.sqlite3"),
            "OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
            "SOURCE": "test-host",
            "HEARTBEAT_INTERVAL": "1",
        }
        return Settings.from_env({**base, **env})

    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    """Default test settings."""
    return make_settings()


@pytest.fixture
def app(settings: Settings):
    """The Flask app on the test Redis and a fresh database."""
    from shared import store
    from web import create_app

    conn = store.connect(settings.database_path)
    store.init_db(conn)
    conn.close()
    return create_app({"TESTING": True, "SETTINGS": settings})


@pytest.fixture
def client(app):
    """Flask's test client."""
    return app.test_client()


@dataclass
class RunningStack:
    """The whole system as real processes, for integration and browser tests."""

    stack: Stack
    url: str
    redis_url: str
    database_path: Path


@pytest.fixture
def stack(tmp_path: Path, redis_url: str) -> Iterator[RunningStack]:
    """Recorder, a fast demo producer and `python -m web` (2 gevent workers)."""
    running = Stack.create(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "INTERVAL": "0.25",
            "WEB_WORKERS": "2",
            "HEARTBEAT_INTERVAL": "1",
            "SOURCE": "test-host",
            "SENSORS": "demo",
        },
        log_dir=tmp_path / "logs",
    )
    try:
        running.start("recorder", ["-m", "recorder"])
        running.start("producer", ["-m", "producers"])
        url = running.start_web()
        yield RunningStack(running, url, redis_url, Path(running.env["DATABASE_PATH"]))
    finally:
        running.stop_all()
