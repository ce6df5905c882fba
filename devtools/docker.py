"""The Docker command line, as the image tests and the stand-in builder use it.

The Dockerfiles need BuildKit (`FROM --platform=$BUILDPLATFORM`). A client of
Docker 23 or later without the buildx plugin cannot reach BuildKit at all, and
such a client may come first on PATH; an older client reaches the daemon's own
BuildKit with DOCKER_BUILDKIT=1. `cli()` picks the first client on PATH that
can build (docs/deploy.md, "Images in CI").
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
from pathlib import Path


class DockerError(RuntimeError):
    """A docker command failed; the message carries its output."""


def _clients() -> list[str]:
    """Every executable named `docker` on PATH, in PATH order."""
    found = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / "docker"
        if os.access(candidate, os.X_OK) and str(candidate) not in found:
            found.append(str(candidate))
    return found


def _can_build(client: str) -> bool:
    """True if `client` reaches BuildKit: buildx installed, or a pre-23 client."""
    run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=30)
    if run([client, "buildx", "version"]).returncode == 0:
        return True
    version = run([client, "version", "--format", "{{.Client.Version}}"]).stdout.strip()
    major = version.split(".", 1)[0]
    return major.isdigit() and int(major) < 23


@functools.cache
def cli() -> str:
    """The docker client to use; DockerError if none is installed or can build."""
    clients = _clients()
    for client in clients:
        if _can_build(client):
            return client
    raise DockerError(f"no docker client that can use BuildKit on PATH (found: {clients})")


def reachable() -> str | None:
    """None if a Docker engine answers, else why not."""
    try:
        result = run("version", "--format", "{{.Server.Version}}", check=False, timeout=20)
    except (DockerError, OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if result.returncode != 0:
        return (result.stderr or result.stdout).strip()
    return None


def run(
    *args: str,
    check: bool = True,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess:
    """`docker ARGS...`, output captured as text; DockerError on failure when `check`."""
    full_env = {**os.environ, "DOCKER_BUILDKIT": "1", **(env or {})}
    result = subprocess.run(
        [cli(), *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )
    if check and result.returncode != 0:
        raise DockerError(f"docker {' '.join(args)}: {result.stderr[-4000:] or result.stdout}")
    return result


def build(
    dockerfile: Path,
    context: Path,
    tag: str,
    *,
    platform: str | None = None,
    build_args: dict[str, str] | None = None,
    timeout: float = 3600,
) -> float:
    """Build `dockerfile` in `context` as `tag` with BuildKit; the seconds it took."""
    args = ["build", "--progress=plain", "-f", str(dockerfile), "-t", tag]
    if platform:
        args += ["--platform", platform]
    for name, value in (build_args or {}).items():
        args += ["--build-arg", f"{name}={value}"]
    started = time.monotonic()
    run(*args, str(context), timeout=timeout)
    return time.monotonic() - started


def image_exists(tag: str) -> bool:
    """True if `tag` is in the local image store."""
    return run("image", "inspect", tag, check=False, timeout=30).returncode == 0


def image_size(tag: str) -> int:
    """The image's size in bytes, as `docker images` reports it."""
    return int(run("image", "inspect", "-f", "{{.Size}}", tag).stdout.strip())


@functools.cache
def compose_cli() -> list[str]:
    """`docker compose` (v2) if the client has it, else `docker-compose` (1.29)."""
    probe = subprocess.run(
        [cli(), "compose", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode == 0:
        return [cli(), "compose"]
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / "docker-compose"
        if os.access(candidate, os.X_OK):
            return [str(candidate)]
    raise DockerError("neither `docker compose` nor `docker-compose` is installed")
