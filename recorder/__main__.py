"""`python -m recorder`: record the stream into the history database until SIGTERM.

`python -m recorder import FILE...` and `python -m recorder backup PATH` work
on the same database (DATABASE_PATH); docs/history.md.
"""

from __future__ import annotations

import contextlib
import logging
import sys

from recorder import backup, importer
from recorder.consumer import run
from shared import migrations, store
from shared.logs import startup

logger = logging.getLogger("recorder")


def main(argv: list[str] | None = None) -> int:
    """Entry point: record, or the `import` / `backup` command."""
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else ""
    if command == "backup":
        settings = startup("sensor-display recorder backup")
        return backup.run(settings.database_path, args[1:])
    if command == "import":
        settings = startup("sensor-display recorder import")
        with contextlib.closing(store.connect(settings.database_path)) as conn:
            try:
                store.init_db(conn)
            except migrations.SchemaError as exc:
                print(exc, file=sys.stderr)
                return 1
            return importer.run(conn, args[1:], max_sensors=settings.max_sensors)
    if command:
        print(f"unknown command {command!r}: use import FILE... or backup PATH", file=sys.stderr)
        return 2
    settings = startup("sensor-display recorder")
    logger.info("recording %s into %s", settings.redis_channel, settings.database_path)
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
