"""`python -m producers.mqtt`: the MQTT bridge (docs/mqtt.md).

`python -m producers.mqtt forget SOURCE/SENSOR` removes a sensor from Home
Assistant (publishes its empty discovery configs) and exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import paho.mqtt.client as mqtt
import redis

from producers.mqtt import discovery
from producers.mqtt.bridge import Bridge
from producers.mqtt.broker import Broker, make_client, parse_url
from producers.mqtt.decoders import Route, default_routes, parse_routes
from producers.outbox import Outbox
from producers.runner import Producer
from shared import redis_conn
from shared.bus import Bus
from shared.logs import startup
from shared.settings import Settings

logger = logging.getLogger("producers.mqtt")

STATS_EVERY = 60.0
# How often the counters are written for /metrics (web pushes its own as often).
REPORT_EVERY = 2.0


def configure(settings: Settings) -> tuple[Broker, tuple[Route, ...]]:
    """The broker and the subscriptions; ValueError with a sentence when unusable."""
    if not settings.mqtt_url:
        raise ValueError("MQTT_URL is not set: mqtt://[user:pass@]host[:port]")
    broker = parse_url(settings.mqtt_url)
    if settings.mqtt_topics:
        return broker, parse_routes(settings.mqtt_topics)
    return broker, default_routes(settings.ha_discovery or "homeassistant")


def client_id(settings: Settings) -> str:
    """Fixed per host, so the broker keeps one session for us across restarts."""
    return f"sensor-display-bridge-{settings.source}"


def run(settings: Settings, broker: Broker, routes: tuple[Route, ...]) -> int:
    """Bridge until SIGTERM or Ctrl-C; 1 if the outbox could not be written."""
    outbox = Outbox(
        settings.outbox_path, max_rows=settings.outbox_max_rows, max_age=settings.outbox_max_age
    )
    producer = Producer(settings, [], outbox)
    bridge = Bridge(routes, outbox, producer, str(broker))
    client = make_client(broker, client_id(settings), manual_ack=True)
    # A bug in a callback is logged by paho and the loop goes on.
    client.suppress_exceptions = True
    client.enable_logger(logging.getLogger("producers.mqtt.paho"))
    client.on_connect = bridge.on_connect
    client.on_subscribe = bridge.on_subscribe
    client.on_connect_fail = bridge.on_connect_fail
    client.on_disconnect = bridge.on_disconnect
    client.on_message = bridge.on_message
    announcer = None
    if settings.ha_discovery:
        announcer = discovery.Announcer(settings, client, bridge.firmware_keys)
        announcer.prepare()
        client.on_connect = _then(bridge.on_connect, announcer.online)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    publisher = producer.start_publisher()
    if announcer:
        announcer.start()
    logger.info(
        "bridging %s (%s) into Redis; outbox %s; Home Assistant discovery %s",
        broker,
        ", ".join(f"{r.firmware}={r.filter}" for r in routes),
        settings.outbox_path,
        settings.ha_discovery or "off",
    )
    client.connect_async(broker.host, broker.port, keepalive=30)
    client.loop_start()
    status = Bus.for_settings(redis_conn.client(settings, socket_timeout=5), settings)
    _wait(stop, bridge, lambda: bridge.report(status, settings.source))
    if announcer:
        announcer.close()
    client.disconnect()
    client.loop_stop()
    producer.stop_event.set()
    producer.stored.set()
    publisher.join(timeout=5)
    outbox.close()
    _report(lambda: bridge.report(status, settings.source))
    status.client.close()
    logger.info("stopped: %s", bridge.stats.summary())
    return 1 if bridge.failed.is_set() else 0


OnConnect = Callable[[mqtt.Client, object, mqtt.ConnectFlags, object, object], None]


def _then(on_connect: OnConnect, after: Callable[[], None]) -> OnConnect:
    """An on_connect callback that runs `after` once connected."""

    def both(
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: object,
        props: object,
    ) -> None:
        on_connect(client, userdata, flags, reason, props)
        if not getattr(reason, "is_failure", False):
            after()

    return both


def _wait(stop: threading.Event, bridge: Bridge, report: Callable[[], None]) -> None:
    """Until stopped or the outbox fails: counters reported, a summary line each changed minute."""
    last, next_at, report_at = "", time.monotonic() + STATS_EVERY, 0.0
    while not stop.wait(0.5) and not bridge.failed.is_set():
        if time.monotonic() >= report_at:
            report_at = time.monotonic() + REPORT_EVERY
            _report(report)
        if time.monotonic() >= next_at:
            next_at += STATS_EVERY
            line = bridge.stats.summary()
            if line != last:
                logger.info("%s", line)
                last = line


def _report(report: Callable[[], None]) -> None:
    """Report the counters; Redis away is said by the publisher, so quietly here."""
    try:
        report()
    except redis.RedisError as exc:
        logger.debug("counters not reported: %s", exc)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m producers.mqtt", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    forget = sub.add_parser("forget", help="remove a sensor's entities from Home Assistant")
    forget.add_argument("sensor", help="SOURCE/SENSOR")
    args = parser.parse_args(argv)
    settings = startup("sensor-display mqtt bridge")
    try:
        broker, routes = configure(settings)
    except ValueError as exc:
        print(f"python -m producers.mqtt: {exc}", file=sys.stderr)
        return 2
    if args.command == "forget":
        return discovery.forget_command(settings, broker, args.sensor)
    return run(settings, broker, routes)


if __name__ == "__main__":
    sys.exit(main())
