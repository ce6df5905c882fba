"""`python -m recorder`: record the stream into the history database until SIGTERM."""

from __future__ import annotations

import logging
import sys

from recorder.consumer import run
from shared.logs import startup

logger = logging.getLogger("recorder")


def main() -> int:
    """Entry point."""
    settings = startup("sensor-display recorder")
    logger.info("recording %s into %s", settings.redis_channel, settings.database_path)
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
