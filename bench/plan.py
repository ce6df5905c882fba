"""What to run: the sizes of a full bench and of `--quick`."""

from __future__ import annotations

from dataclasses import dataclass

CAPACITY, MATRIX = "capacity", "matrix"


@dataclass(frozen=True)
class Step:
    """One fan-out run: clients, readings/s, how long, and what it is for."""

    clients: int
    rate: float
    duration: float
    kind: str


@dataclass(frozen=True)
class Sizes:
    """Every size the bench uses."""

    steps: tuple[Step, ...]
    drain: float
    recorder_readings: int
    series_days: int
    series_repeats: int
    producer_readings: int
    mqtt_messages: int  # the bridge's throughput burst
    mqtt_samples: int  # MQTT publish -> SSE latency samples (20/s)
    idle_clients: int  # idle streams bench/idle.py diffs a worker around
    send_sockets: int  # connections bench/sendcost.py sends to


def _capacity(clients: int, duration: float = 20.0) -> Step:
    return Step(clients, 1.0, duration, CAPACITY)


FULL = Sizes(
    steps=(
        _capacity(1000),
        Step(1000, 10, 10, MATRIX),
        _capacity(2500),
        _capacity(5000),
        Step(5000, 10, 10, MATRIX),
        Step(5000, 50, 10, MATRIX),
        _capacity(7500),
        _capacity(10_000),
        _capacity(12_500),
        _capacity(15_000),
        _capacity(17_500),
        _capacity(20_000),
        _capacity(25_000),
    ),
    drain=5.0,
    recorder_readings=200_000,
    series_days=30,
    series_repeats=20,
    producer_readings=2000,
    mqtt_messages=20_000,
    mqtt_samples=600,
    idle_clients=5000,
    send_sockets=4000,
)

QUICK = Sizes(
    steps=(_capacity(20, 2.0), Step(40, 10, 2.0, MATRIX)),
    drain=1.0,
    recorder_readings=2000,
    series_days=1,
    series_repeats=3,
    producer_readings=100,
    mqtt_messages=200,
    mqtt_samples=20,
    idle_clients=100,
    send_sockets=200,
)
