"""The servers the tests and benchmarks start: waiting until one listens, stopping one."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable


def wait_listening(
    proc: subprocess.Popen,
    name: str,
    address: tuple[str, int],
    log: Callable[[], str],
    timeout: float = 10.0,
) -> None:
    """Until `proc` accepts connections at `address`; its log in the error if it fails to."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log()}")
        try:
            socket.create_connection(address, timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(
        f"{name} did not listen on {address[0]}:{address[1]} within {timeout}s: {log()}"
    )


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM (it saves what it keeps), then SIGKILL if it is still there after `timeout`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
