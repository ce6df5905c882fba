"""`python -m producers`: read the configured sensors and publish every reading."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from producers.drivers import SensorError, names_for
from producers.outbox import Outbox
from producers.runner import Producer, Sensor, build_sensors, sample
from shared.logs import startup
from shared.settings import Settings

logger = logging.getLogger("producers")


def read_once(settings: Settings) -> int:
    """Print one reading per sensor as JSON lines; 0 if any sensor was read."""
    read, errors = 0, []
    for name in names_for(settings):
        try:
            reading = sample(Sensor(name), settings, seq=None)
        except SensorError as exc:
            errors.append(f"{name}: {exc}")
            logger.error("%s: %s", name, exc)
            continue
        print(reading.to_json(), flush=True)
        read += 1
    if not read:
        print("no sensor could be read (" + "; ".join(errors) + ")", file=sys.stderr)
        return 1
    return 0


def run(settings: Settings) -> int:
    """Run until SIGTERM or Ctrl-C."""
    sensors = build_sensors(settings)
    if not sensors:
        logger.error(
            "no sensor to read: SENSORS=%s found nothing on this host", ",".join(settings.sensors)
        )
        return 1
    outbox = Outbox(
        settings.outbox_path, max_rows=settings.outbox_max_rows, max_age=settings.outbox_max_age
    )
    producer = Producer(settings, sensors, outbox)

    def stop(signum: int, frame: FrameType | None) -> None:
        producer.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info(
        "producing %s as source %r every %gs (outbox %s)",
        ",".join(s.name for s in sensors),
        settings.source,
        settings.interval,
        settings.outbox_path,
    )
    producer.run()
    outbox.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m producers", description=__doc__)
    parser.add_argument(
        "--once", action="store_true", help="read every sensor once, print JSON lines, exit"
    )
    args = parser.parse_args(argv)
    settings = startup("sensor-display producer")
    return read_once(settings) if args.once else run(settings)


if __name__ == "__main__":
    sys.exit(main())
