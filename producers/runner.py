"""The producer loop: sample on a steady clock, store, publish, survive failures."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

from producers.drivers import Driver, SensorError, driver_class, names_for
from producers.outbox import Outbox
from shared import redis_conn
from shared.bus import Bus
from shared.marks import Forgotten, Refused
from shared.reading import Reading, ReadingError
from shared.settings import Settings

logger = logging.getLogger(__name__)

MAX_SENSOR_BACKOFF = 300.0
# Short enough that a producer is live again within seconds of Redis coming back.
MAX_REDIS_BACKOFF = 10.0
SETTLE_EVERY = 10.0
# Seconds between asking Sentinel whether the master moved (Sentinel mode only).
MASTER_CHECK_EVERY = 1.0


@dataclass
class Sensor:
    """A driver and its failure state: backs off, then recovers by itself."""

    name: str
    driver: Driver | None = None
    failures: int = 0
    next_try: float = 0.0
    error: str | None = None
    reported: str | None = "unreported"

    def failed(self, now: float, error: str, interval: float) -> None:
        """Record a failure and push the next attempt out (capped)."""
        self.failures += 1
        self.error = error
        self.next_try = now + min(interval * 2 ** min(self.failures, 16), MAX_SENSOR_BACKOFF)
        if self.failures == 1 or self.failures % 10 == 0:
            logger.warning(
                "%s: %s (failure %d; next try in %.0fs)",
                self.name,
                error,
                self.failures,
                self.next_try - now,
            )

    def recovered(self) -> None:
        """Clear the failure state after a good read."""
        if self.failures:
            logger.info("%s: reading again after %d failures", self.name, self.failures)
        self.failures, self.error, self.next_try = 0, None, 0.0


def open_sensor(name: str, settings: Settings) -> Driver:
    """Build and probe one driver; SensorError with a sentence if it cannot run."""
    try:
        driver = driver_class(name).from_settings(settings)
    except ImportError as exc:
        raise SensorError(
            f"the {name} driver needs {exc.name}: pip install -r requirements/pi.txt"
        ) from None
    driver.probe()
    return driver


def sample(sensor: Sensor, settings: Settings, seq: int | None) -> Reading:
    """Open the sensor if needed and take one reading; SensorError on failure."""
    if sensor.driver is None:
        sensor.driver = open_sensor(sensor.name, settings)
    values = sensor.driver.read()
    try:
        return Reading(
            source=settings.source, sensor=sensor.name, ts=time.time(), seq=seq, values=values
        )
    except ReadingError as exc:
        raise SensorError(f"the driver returned an invalid reading: {exc}") from None


class Producer:
    """Samples every sensor each tick; the outbox decouples sampling from Redis."""

    def __init__(self, settings: Settings, sensors: list[Sensor], outbox: Outbox) -> None:
        self.settings = settings
        self.sensors = sensors
        self.outbox = outbox
        # What publishing uses: the same outbox when called inline (tests),
        # a connection of its own in the publisher thread.
        self.send_box = outbox
        self.bus: Bus | None = None
        self.redis_failures = 0
        self.redis_next_try = 0.0
        self.settled_at = 0.0
        self.bounded_at = 0.0
        self.master_checked_at = 0.0
        # Our copy of the published marks: lets Redis say it forgot some (marks rule 3).
        self.published: dict[tuple[str, str], int] = outbox.published_marks()
        self.stop_event = threading.Event()
        self.stored = threading.Event()
        # Readings Redis took, and repeats it dropped (the MQTT bridge reports them).
        self.published_total = 0
        self.repeats_total = 0

    def tick(self) -> int:
        """Sample each sensor that is due; the number of readings stored."""
        now, stored = time.monotonic(), 0
        for sensor in self.sensors:
            if now < sensor.next_try:
                continue
            seq = self.outbox.next_seq(self.settings.source, sensor.name)
            try:
                reading = sample(sensor, self.settings, seq)
            except SensorError as exc:
                sensor.failed(now, str(exc), self.settings.interval)
                continue
            self.outbox.add(reading)
            sensor.recovered()
            stored += 1
        if stored:
            self.stored.set()
        return stored

    def flush(self) -> int:
        """Publish the outbox in order while Redis answers; the number published."""
        now = time.monotonic()
        if now - self.bounded_at >= SETTLE_EVERY:
            # Here, not after a publish: the outbox grows while Redis is away.
            self.bounded_at = now
            self.send_box.enforce_bounds()
        if now < self.redis_next_try:
            return 0
        try:
            sent = self._publish_all()
            self._housekeeping(now)
        except (
            redis.ConnectionError,
            redis.TimeoutError,
            OSError,
            # The publish script is not loaded yet (Redis restarted and the
            # recorder has not reconnected): the rows wait like in an outage.
            redis.exceptions.NoScriptError,
            redis.exceptions.NoPermissionError,
        ) as exc:
            self.redis_failures += 1
            cap = redis_conn.retry_cap(self._connect().client, MAX_REDIS_BACKOFF)
            delay = min(0.5 * 2 ** min(self.redis_failures, 8), cap)
            self.redis_next_try = now + delay
            if self.redis_failures == 1 or self.redis_failures % 10 == 0:
                logger.warning(
                    "Redis unreachable (%s); %d readings kept in the outbox, retrying in %.1fs",
                    exc,
                    self.send_box.pending_count(),
                    delay,
                )
            return 0
        if self.redis_failures:
            logger.info("Redis is back; sent %d readings from the outbox", sent)
            self.redis_failures = 0
        return sent

    def _connect(self) -> Bus:
        if self.bus is None:
            client = redis_conn.client(self.settings, socket_timeout=10)
            self.bus = Bus.for_settings(client, self.settings)
        return self.bus

    def _publish_all(self) -> int:
        bus, sent = self._connect(), 0
        if time.monotonic() - self.master_checked_at >= MASTER_CHECK_EVERY:
            # After a failover the old master may wake up still believing it
            # is master; asking Sentinel drops idle connections to it, so
            # readings go where they will be kept (docs/architecture.md, "Failover").
            self.master_checked_at = time.monotonic()
            redis_conn.current_master(bus.client)
        while batch := self.send_box.unsent(500):
            done = []
            try:
                for row_id, reading in batch:
                    started = time.monotonic()
                    known = self.published.get(reading.key)
                    try:
                        # None for a repeat: already in Redis, fine...
                        stream_id = bus.publish(reading, published=known)
                    except Refused as exc:
                        logger.error("Redis refused %s: %s; not sent", _describe(reading), exc)
                        stream_id = ""
                    if stream_id is None and known is not None and reading.seq > known:
                        # ...unless this producer never had it accepted: someone
                        # else publishes under our name, or the marks were forged.
                        logger.error(
                            "Redis calls %s a repeat, but this producer has no record of"
                            " sending it: another publisher uses this name, its marks were"
                            " forged, or it crashed mid-send",
                            _describe(reading),
                        )
                    if time.monotonic() - started > MASTER_CHECK_EVERY:
                        # Redis stalled (paused?): before sending the backlog
                        # there, make sure it is still the master.
                        redis_conn.current_master(bus.client)
                    if stream_id != "":  # refused: Redis took nothing
                        self.published[reading.key] = reading.seq
                    self.published_total += bool(stream_id)
                    self.repeats_total += stream_id is None
                    done.append(row_id)
            except Forgotten as exc:
                self._resend_forgotten(reading, exc.mark)
            finally:
                self.send_box.mark_sent(done)
            sent += len(done)
            if self.stop_event.is_set():
                break
        return sent

    def _resend_forgotten(self, reading: Reading, mark: int) -> None:
        """Redis restarted empty: queue what it lost again, before anything newer (rule 3)."""
        requeued = self.send_box.requeue_after(reading.source, reading.sensor, mark)
        if mark >= 0:
            self.published[reading.key] = mark
        else:
            self.published.pop(reading.key, None)
        logger.warning(
            "Redis forgot %s/%s after seq %d (restarted empty?): re-sending %d readings in order",
            reading.source,
            reading.sensor,
            mark,
            requeued,
        )

    def _housekeeping(self, now: float) -> None:
        bus = self._connect()
        for sensor in self.sensors:
            if sensor.error != sensor.reported:
                bus.report_error(self.settings.source, sensor.name, sensor.error, time.time())
                sensor.reported = sensor.error
        if now - self.settled_at >= SETTLE_EVERY:
            self.settled_at = now
            self.send_box.settle(bus.marks.recorded(), bus.marks.published())

    def run(self) -> None:
        """Sample on a monotonic schedule until stopped; publish in a thread of its own.

        Publishing waits on the network (a connect to an unreachable Redis
        takes seconds); sampling must not, so a reading is taken on time and
        kept in the outbox whatever Redis does.
        """
        publisher = self.start_publisher()
        interval = self.settings.interval
        start = time.monotonic()
        ticks = 0
        while not self.stop_event.is_set():
            self.tick()
            ticks += 1
            next_at = start + ticks * interval
            now = time.monotonic()
            if next_at < now:  # fell behind (slow sensor, suspend): skip missed ticks
                ticks = int((now - start) / interval) + 1
                next_at = start + ticks * interval
            self.stop_event.wait(next_at - now)
        self.stored.set()
        # A publish hanging on a dead link is not worth waiting for: what it
        # did not mark as sent is sent again, and Redis drops the repeat.
        publisher.join(timeout=3)

    def start_publisher(self) -> threading.Thread:
        """Publish whatever is stored, from a thread of its own, until stopped."""
        publisher = threading.Thread(target=self._publish_loop, name="publisher", daemon=True)
        publisher.start()
        return publisher

    def _publish_loop(self) -> None:
        """Publish whatever the sampler stored, until stopped."""
        self.send_box = self.outbox.reopen()
        try:
            while not self.stop_event.is_set():
                self.stored.wait(timeout=max(self.settings.interval, 0.5))
                self.stored.clear()
                self.flush()
            self.flush()  # what the last tick stored, if Redis takes it now
        finally:
            self.send_box.close()


def build_sensors(settings: Settings) -> list[Sensor]:
    """The configured sensors; with `auto`, only those whose probe succeeds."""
    sensors = []
    auto = "auto" in settings.sensors
    for name in names_for(settings):
        try:
            driver = open_sensor(name, settings)
        except SensorError as exc:
            if auto and name not in settings.sensors:
                logger.info("auto: skipping %s: %s", name, exc)
                continue
            logger.warning("%s: %s (will keep trying)", name, exc)
            sensors.append(Sensor(name, error=str(exc)))
            continue
        sensors.append(Sensor(name, driver=driver))
    return sensors


def _describe(reading: Reading) -> str:
    return f"seq {reading.seq} of {reading.source}/{reading.sensor}"
