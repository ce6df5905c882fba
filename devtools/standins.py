"""Local stand-ins for the base images, where no container registry answers.

`python -m devtools.standins [PLATFORM ...]` makes, for each platform
(linux/amd64 when none is given), a Debian root filesystem with debootstrap
(from the machine's own apt mirror), imports it, and builds on it the small
images in .ci/standins/ shaped like the official bases the Dockerfiles and
the compose file name. They stay in the local image store, are never pushed,
and are reused on the next run (a recipe change rebuilds only what changed,
through the build cache). Needs root (debootstrap), and for arm platforms
QEMU registered with binfmt_misc. `base_images()` names them as the build
arguments and compose variables that select base images (docs/deploy.md,
"Images in CI").
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devtools import docker

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / ".ci" / "standins"
REPOSITORY = "sensor-display-standin"
SUITE = "bookworm"
BUILD_PLATFORM = "linux/amd64"

# Docker platform -> (Debian architecture, tag suffix).
PLATFORMS = {
    "linux/amd64": ("amd64", "amd64"),
    "linux/arm64": ("arm64", "arm64"),
    "linux/arm/v7": ("armhf", "armv7"),
}

# Stand-in -> (the image it builds on, the variable that selects it, the files
# its build context needs besides its Dockerfile). In build order.
STANDINS = {
    "python-slim": ("debian", "PYTHON_IMAGE", ()),
    "python-build": ("python-slim", "PYTHON_BUILD_IMAGE", ("build-ca.pem",)),
    "node": ("debian", "NODE_IMAGE", ("build-ca.pem",)),
    "redis": ("debian", "REDIS_IMAGE", ()),
    "nginx": ("debian", "NGINX_IMAGE", ("nginx.conf", "nginx-entrypoint.sh")),
}
# Off the build platform only the producer image is built: it needs these.
FOREIGN = ("python-slim", "python-build")


def tag(name: str, platform: str) -> str:
    """The local tag of stand-in `name` for `platform`."""
    return f"{REPOSITORY}/{name}:{SUITE}-{PLATFORMS[platform][1]}"


def base_images(platform: str = BUILD_PLATFORM) -> dict[str, str]:
    """Build arguments / compose variables selecting the stand-ins for `platform`."""
    names = STANDINS if platform == BUILD_PLATFORM else FOREIGN
    images = {STANDINS[n][1]: tag(n, platform) for n in names}
    # The web image's asset stage runs on the build platform whatever the target.
    images["NODE_IMAGE"] = tag("node", BUILD_PLATFORM)
    return images


def present(platform: str = BUILD_PLATFORM) -> bool:
    """True if every stand-in `platform` needs is in the local image store."""
    return all(docker.image_exists(image) for image in base_images(platform).values())


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The first Debian mirror in the machine's apt sources that carries SUITE."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for file in files:
        text = file.read_text() if file.is_file() else ""
        for stanza in re.split(r"\n\s*\n", text):  # deb822: one source per stanza
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if SUITE in fields.get("Suites", "").split() and fields.get("URIs"):
                return fields["URIs"].split()[0]
        for uri, suite in re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if suite == SUITE:
                return uri
    raise RuntimeError(f"no apt source for Debian {SUITE} under {apt_dir}")


def bootstrap(platform: str, workdir: Path) -> float:
    """Make a minimal Debian for `platform` into the `debian` stand-in; seconds taken."""
    arch = PLATFORMS[platform][0]
    rootfs = workdir / f"rootfs-{arch}"
    started = time.monotonic()
    foreign = platform != BUILD_PLATFORM
    cmd = ["debootstrap", "--variant=minbase", f"--arch={arch}"]
    # Off the build platform the second stage runs the target's own binaries,
    # through QEMU (binfmt_misc), in a chroot.
    cmd += ["--foreign"] if foreign else []
    _run([*cmd, SUITE, str(rootfs), debian_mirror()])
    if foreign:
        _run(["chroot", str(rootfs), "/debootstrap/debootstrap", "--second-stage"])
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (rootfs / leftover).glob("*"):
            if path.is_file():
                path.unlink()
    context = workdir / f"debian-{arch}"
    context.mkdir()
    _run(["tar", "-C", str(rootfs), "-cf", str(context / "rootfs.tar"), "."])
    shutil.rmtree(rootfs, ignore_errors=True)
    docker.build(RECIPES / "debian.Dockerfile", context, tag("debian", platform), platform=platform)
    shutil.rmtree(context, ignore_errors=True)
    return time.monotonic() - started


def _run(cmd: list[str]) -> None:
    """Run a setup command; RuntimeError with the tail of its output on failure."""
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {(result.stdout + result.stderr)[-3000:]}")


def _ca_bundle() -> Path:
    """This machine's CA bundle, as its own TLS clients use it."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise RuntimeError("no CA bundle found (install ca-certificates)")


def build(name: str, platform: str, workdir: Path) -> float:
    """Build stand-in `name` for `platform` on its parent; seconds taken."""
    parent, _variable, files = STANDINS[name]
    context = workdir / f"{name}-{PLATFORMS[platform][1]}"
    context.mkdir()
    for file in files:
        source = _ca_bundle() if file == "build-ca.pem" else RECIPES / file
        shutil.copy2(source, context / file)
    return docker.build(
        RECIPES / f"{name}.Dockerfile",
        context,
        tag(name, platform),
        platform=platform,
        build_args={"BASE": tag(parent, platform)},
    )


def ensure(platform: str) -> dict[str, float]:
    """Make every stand-in `platform` needs; seconds per step (cached ones are quick)."""
    names = [n for n in STANDINS if platform == BUILD_PLATFORM or n in FOREIGN]
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="standins-") as tmp:
        if not docker.image_exists(tag("debian", platform)):
            timings["debian"] = bootstrap(platform, Path(tmp))
        for name in names:
            timings[name] = build(name, platform, Path(tmp))
    return timings


def main(argv: list[str]) -> int:
    """Build the stand-ins for the platforms named, side by side; print what they are."""
    parser = argparse.ArgumentParser(prog="python -m devtools.standins", description=__doc__)
    parser.add_argument("platforms", nargs="*", default=[BUILD_PLATFORM], choices=PLATFORMS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Emulated package installs use one core each: the platforms build in parallel.
    with ThreadPoolExecutor(max_workers=len(args.platforms)) as pool:
        timings = dict(zip(args.platforms, pool.map(ensure, args.platforms), strict=True))
    for platform, steps in timings.items():
        for step, seconds in steps.items():
            logger.info("%s %s: %.0f s", platform, step, seconds)
        for variable, image in base_images(platform).items():
            logger.info("%s %s=%s", platform, variable, image)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
