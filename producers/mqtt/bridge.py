"""The bridge: MQTT messages in, readings out through the producer's outbox and bus.

A message is acknowledged (PUBACK) only after its readings are in the
outbox, so a crash between the two makes the broker deliver it again; the
outbox and its publisher thread are the producer's own (producers/runner.py),
which is what gives bridge readings a seq and survives Redis outages. The
outbox also remembers each stored message's digest (packet id, topic,
payload), in the same transaction, so a redelivery (DUP) of a message already
stored is acknowledged without storing it twice.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from producers.mqtt.decoders import DECODERS, REASONS, Context, Decoded, Refusal, Route, decode
from producers.outbox import Outbox
from producers.runner import Producer
from shared.bus import Bus

logger = logging.getLogger(__name__)

# Field names remembered so each is logged once; beyond this, no more are logged.
MAX_LOGGED = 1000
# Errors logged one by one before only every thousandth is (a flood stays readable).
LOUD_ERRORS = 100
ROUTE_CACHE = 10_000
# Labels of the per-firmware counters; "unrouted": a topic that is not UTF-8.
FIRMWARES = (*DECODERS, "unrouted")


@dataclass
class Stats:
    """What the bridge did, by firmware: messages, readings, drops (/metrics shows them)."""

    messages: Counter[str] = field(default_factory=Counter)
    readings: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)  # messages refused whole or in part
    refused: Counter[str] = field(default_factory=Counter)  # refusals by reason (REASONS)
    unknown: Counter[str] = field(default_factory=Counter)  # fields with no known unit
    ignored: int = 0  # topics that are not measurements (commands, bridge state)
    connects: int = 0  # connections to the broker: the first, then each reconnect
    redelivered: int = 0  # broker redeliveries of messages already stored: not stored again
    _logged: set[str] = field(default_factory=set)
    # Counted in paho's network thread, read by the status writer in the main one.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, firmware: str, topic: str, out: Decoded) -> None:
        """Count one decoded message; log each unknown field once, errors with restraint."""
        with self._lock:
            self.messages[firmware] += 1
            self.ignored += out.ignored
            self.readings[firmware] += len(out.readings)
            self.unknown[firmware] += len(out.unknown)
            self.refused.update(refusal.reason for refusal in out.errors)
            self.dropped[firmware] += bool(out.errors)
        for name in out.unknown:
            key = f"{firmware}:{name}"
            if key not in self._logged and len(self._logged) < MAX_LOGGED:
                self._logged.add(key)
                logger.warning("%s field %s has no known unit: dropped (said once)", firmware, name)
        if out.errors:
            total = sum(self.dropped.values())
            if total <= LOUD_ERRORS or total % 1000 == 0:
                logger.warning(
                    "%s message on %.120s dropped: %s (%d dropped so far)",
                    firmware,
                    topic,
                    "; ".join(refusal.text for refusal in out.errors)[:300],
                    total,
                )

    def count(self, what: str) -> None:
        """One more of a plain counter (`ignored`, `connects`)."""
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    def snapshot(self) -> dict[str, int]:
        """Every counter as one flat mapping: `messages:<firmware>`, `refused:<reason>`, ...

        Every label is present, zeros included, so a report overwrites all of
        the last one (a restarted bridge leaves no stale field behind).
        """
        labels = {"refused": REASONS}
        with self._lock:
            out = {
                "ignored": self.ignored,
                "reconnects": max(self.connects - 1, 0),
                "redelivered": self.redelivered,
            }
            for name in ("messages", "readings", "refused", "unknown"):
                counter: Counter[str] = getattr(self, name)
                for label in labels.get(name, FIRMWARES):
                    out[f"{name}:{label}"] = counter[label]
            return out

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"messages {sum(self.messages.values())}, readings {sum(self.readings.values())}, "
            f"dropped {sum(self.dropped.values())}, unknown fields {sum(self.unknown.values())}, "
            f"ignored {self.ignored}"
        )


def delivery_digest(mid: int, topic: str, payload: bytes) -> bytes:
    """What identifies one delivery: a redelivery keeps the packet id, topic and payload."""
    digest = hashlib.blake2b(mid.to_bytes(2, "big"), digest_size=16)
    digest.update(topic.encode())
    digest.update(b"\0")
    digest.update(payload)
    return digest.digest()


class Bridge:
    """Routes each message to its firmware's decoder and stores the readings."""

    def __init__(
        self,
        routes: tuple[Route, ...],
        outbox: Outbox,
        producer: Producer,
        broker: str = "the broker",
    ) -> None:
        self.routes = routes
        self.broker = broker  # for logs, without the password
        self.connect_failures = 0
        self.outbox = outbox
        self.producer = producer
        self.ctx = Context(now=time.time())
        self.stats = Stats()
        # (source, sensor) of readings decoded from a firmware (not our own
        # JSON): Home Assistant knows those devices already.
        self.firmware_keys: set[tuple[str, str]] = set()
        self.failed = threading.Event()  # the outbox cannot be written: stop, unacknowledged
        self.connected = False
        self._routes_of: dict[str, Route | None] = {}

    def route(self, topic: str) -> Route | None:
        """The first route whose filter matches the topic."""
        if topic in self._routes_of:
            return self._routes_of[topic]
        found = next((r for r in self.routes if mqtt.topic_matches_sub(r.filter, topic)), None)
        if len(self._routes_of) >= ROUTE_CACHE:
            self._routes_of.clear()
        self._routes_of[topic] = found
        return found

    def handle(self, topic: str, payload: bytes, delivery: bytes | None = None) -> int:
        """Decode one message and store its readings (and `delivery`, its digest); how many."""
        route = self.route(topic)
        if route is None:
            self.stats.count("ignored")
            return 0
        self.ctx.now = time.time()
        out = decode(route, topic, payload, self.ctx)
        self.stats.record(route.firmware, topic, out)
        if out.readings:
            stored = self.outbox.add_all(out.readings, delivery)
            if route.firmware != "readings":
                self.firmware_keys.update(reading.key for reading in stored)
            self.producer.stored.set()  # wake the publisher thread
        return len(out.readings)

    def report(self, bus: Bus, name: str) -> None:
        """Write every counter where web's /metrics reads it (the recorder's way)."""
        bus.report_bridge(
            name,
            {
                **self.stats.snapshot(),
                "published": self.producer.published_total,
                "repeats": self.producer.repeats_total,
                "connected": int(self.connected),
            },
        )

    # -- paho callbacks (the network thread) -------------------------------

    def on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: object,
        properties: object,
    ) -> None:
        """Subscribe on every connect: a broker restarted without persistence forgot us."""
        if getattr(reason, "is_failure", False):
            logger.error("broker refused the connection: %s", reason)
            return
        self.connect_failures = 0
        self.connected = True
        self.stats.count("connects")
        result, _ = client.subscribe([(r.filter, 1) for r in self.routes])
        logger.info(
            "connected (session %s); subscribing to %s: %s",
            "resumed" if flags.session_present else "new",
            ", ".join(r.filter for r in self.routes),
            mqtt.error_string(result),
        )

    def on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        """Say so (the first time and every tenth): paho retries with capped backoff."""
        self.connect_failures += 1
        if self.connect_failures == 1 or self.connect_failures % 10 == 0:
            logger.warning(
                "cannot connect to %s (down, refused, or its TLS certificate not trusted);"
                " retrying (%d failures)",
                self.broker,
                self.connect_failures,
            )

    def on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, reasons: list, properties: object
    ) -> None:
        """Say so when the broker refuses a subscription (an ACL, a bad filter)."""
        refused = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            logger.error("broker refused subscriptions: %s", ", ".join(refused))

    def on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        """Log it; paho reconnects by itself with capped backoff (unless we asked)."""
        self.connected = False
        if getattr(reason, "is_failure", True):
            logger.warning("disconnected from the broker (%s); reconnecting", reason)
        else:
            logger.info("disconnected from the broker")

    def on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        """Store, then acknowledge; a message that cannot be stored is never acknowledged."""
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            refusal = Refusal("bad_topic", "topic is not UTF-8")
            self.stats.record("unrouted", "(invalid UTF-8)", Decoded(errors=[refusal]))
            client.ack(msg.mid, msg.qos)
            return
        # QoS 0 has no packet id and is never redelivered.
        delivery = delivery_digest(msg.mid, topic, msg.payload) if msg.qos else None
        try:
            if msg.dup and delivery and self.outbox.delivered(delivery):
                # The broker never got our acknowledgement (docs/mqtt.md, "Delivery").
                self.stats.count("redelivered")
            else:
                self.handle(topic, msg.payload, delivery)
        except (sqlite3.Error, OSError):
            logger.exception("cannot write the outbox: stopping without acknowledging")
            self.failed.set()
            return
        client.ack(msg.mid, msg.qos)
