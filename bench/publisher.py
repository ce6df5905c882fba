"""Publishers that stamp each reading with its send time (the reading's `ts`)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import redis

from producers.drivers.demo import DemoDriver
from shared.bus import Bus
from shared.reading import Reading

SOURCE, SENSOR = "bench", "demo"


@dataclass
class Sent:
    """How many readings went out, and the window of their send times."""

    count: int
    t0: float
    t1: float


class Publisher:
    """Publishes realistic demo readings; `ts` is the wall time at publish."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.driver = DemoDriver(seed=1)
        self.seq = int(time.time() * 1000)

    def reading(self) -> Reading:
        """The next reading, stamped now."""
        self.seq += 1
        values = self.driver.read()
        return Reading(source=SOURCE, sensor=SENSOR, ts=time.time(), seq=self.seq, values=values)

    def publish_one(self) -> None:
        """Send one reading."""
        raise NotImplementedError

    def pace(self, rate: float, duration: float, stop: threading.Event | None = None) -> Sent:
        """Publish `rate` readings/s for `duration` s on a steady clock."""
        interval, n = 1.0 / rate, int(rate * duration)
        start, t0 = time.monotonic(), time.time()
        for i in range(n):
            if stop is not None and stop.is_set():
                n = i
                break
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.publish_one()
        return Sent(n, t0, time.time())


class ProductPublisher(Publisher):
    """The product's path: Bus.publish, one Lua script = XADD + PUBLISH."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        super().__init__(client)
        self.bus = Bus(client, channel)

    def publish_one(self) -> None:
        """Send one reading through the product's bus."""
        self.bus.publish(self.reading())


class StockPublisher(Publisher):
    """What `flask_sse.sse.publish(reading, type="reading")` puts on its channel."""

    def __init__(self, client: redis.Redis, channel: str = "sse") -> None:
        super().__init__(client)
        self.channel = channel

    def publish_one(self) -> None:
        """Send one reading in flask-sse's message format (json.dumps defaults)."""
        message = {"data": self.reading().to_dict(), "type": "reading"}
        self.client.publish(self.channel, json.dumps(message))


class Background:
    """Publish at a low rate in a thread (warm-up while streams open)."""

    def __init__(self, publisher: Publisher, rate: float) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=publisher.pace, args=(rate, 3600.0, self.stop), daemon=True
        )

    def __enter__(self) -> Background:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
