"""Start and stop the stack's processes: Redis, recorder, producers, web servers.

Each child runs in its own process group, so stopping it also stops what it
started (gunicorn's workers), and nothing is left behind on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Poll until `url` answers 2xx; raise with the reason when the deadline passes."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status < 300:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


@dataclass
class Stack:
    """A set of child processes sharing one environment."""

    env: dict[str, str]
    log_dir: Path | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    redis: RedisServer | None = None

    @classmethod
    def create(
        cls, data_dir: Path, overrides: dict[str, str] | None = None, log_dir: Path | None = None
    ) -> Stack:
        """An environment with its own database and outbox under `data_dir`."""
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_PATH": str(data_dir / "dashboard.sqlite3"),
                "OUTBOX_PATH": str(data_dir / "outbox.sqlite3"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(overrides or {})
        return cls(env=env, log_dir=log_dir)

    def start_redis(self) -> str:
        """Start a private Redis unless REDIS_URL or REDIS_SENTINELS is set; where Redis is."""
        if self.env.get("REDIS_SENTINELS"):
            return f"the master the Sentinels name ({self.env['REDIS_SENTINELS']})"
        if not self.env.get("REDIS_URL"):
            self.redis = RedisServer().start()
            self.env["REDIS_URL"] = self.redis.url
        return self.env["REDIS_URL"]

    def start(self, name: str, args: list[str], **extra_env: str) -> subprocess.Popen:
        """Start `python <args>` as `name` in its own process group."""
        env = {**self.env, **extra_env}
        out = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if out is not subprocess.DEVNULL:
            out.close()  # the child has its own copy; ours would leak (ResourceWarning)
        self.procs[name] = proc
        return proc

    def start_web(self, name: str = "web", port: int | None = None, **extra_env: str) -> str:
        """Start `python -m web` and wait for /healthz; its base URL."""
        port = port or free_port()
        proc = self.start(name, ["-m", "web"], PORT=str(port), **extra_env)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc=proc)
        return url

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Signal a child's process group and wait; SIGKILL if it lingers."""
        self.stop_together([name], sig, timeout)

    def stop_together(
        self, names: list[str], sig: int = signal.SIGTERM, timeout: float = 15.0
    ) -> None:
        """Signal each child's group, then wait for all (they wind down side by side)."""
        procs = [proc for name in names if (proc := self.procs.pop(name, None)) is not None]
        for proc in procs:
            _signal_group(proc, sig)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()

    def stop_all(self) -> None:
        """Stop every child (producers first, so nothing is made unrecorded), then Redis."""
        self.stop_together([name for name in self.procs if name.startswith("producer")])
        self.stop_together(list(self.procs))
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
