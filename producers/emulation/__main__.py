"""Build a fake host to run the real drivers on: `python -m producers.emulation pi DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from producers.emulation.commands import write_vcgencmd
from producers.emulation.sysfs import build_pi_tree, build_x300_tree


def build_host(kind: str, directory: Path) -> str:
    """Write DIR/sys and DIR/bin for `kind`; return the shell line that uses them."""
    sysfs, bin_dir = directory / "sys", directory / "bin"
    if kind == "pi":
        build_pi_tree(sysfs)
        # Under-voltage seen since boot, not now: the common "weak USB supply" story.
        write_vcgencmd(bin_dir / "vcgencmd", temp="47.2", throttled="0x50000")
        sensors = "pi_cpu,hwmon"
    else:
        build_x300_tree(sysfs)
        sensors = "hwmon"
    return f'SYSFS_ROOT={sysfs} PATH="{bin_dir}:$PATH" SENSORS={sensors} python -m producers --once'


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the tree, print how to run the producer on it."""
    parser = argparse.ArgumentParser(prog="python -m producers.emulation", description=__doc__)
    parser.add_argument("kind", choices=["pi", "x300"], help="which host to imitate")
    parser.add_argument("directory", type=Path, help="an empty or missing directory")
    args = parser.parse_args(argv)
    if args.directory.exists() and any(args.directory.iterdir()):
        parser.error(f"{args.directory} is not empty")
    print(build_host(args.kind, args.directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
