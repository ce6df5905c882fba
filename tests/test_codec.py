"""Raw blocks: exact round trips, whatever the values."""

from __future__ import annotations

import math
import struct

import pytest

from shared import codec

AWKWARD = [5e-324, 1.7976931348623157e308, -0.0, 0.1 + 0.2, 123456789.123456789, -273.15, 1 / 3]


def bits(x: float | None) -> bytes | None:
    return None if x is None else struct.pack("<d", x)


@pytest.mark.parametrize(
    "column",
    [
        [21.53, 21.54, 21.5, 22.0],  # short decimals: scaled integers
        AWKWARD,  # anything else: IEEE bit patterns
        [600.0, 645.0, 1e15, -3.0],
        [1e-9, 2e-9, 3.5e-9],
    ],
)
def test_values_round_trip_bit_for_bit(column: list[float]) -> None:
    rows = [codec.Row(1.7e9 + i * 0.937, i, {7: v, 9: -v}) for i, v in enumerate(column)]
    back = codec.decode(codec.encode(rows))
    assert [r.ts for r in back] == [r.ts for r in rows]
    assert [bits(r.values[7]) for r in back] == [bits(v) for v in column]
    assert [bits(r.values[9]) for r in back] == [bits(-v) for v in column]


def test_missing_metrics_and_seqs_stay_missing() -> None:
    rows = [
        codec.Row(1.7e9 + i, None if i % 2 else 2**63 - 1 - i, {3: float(i)} if i % 3 else {})
        for i in range(10)
    ]
    assert codec.decode(codec.encode(rows)) == rows


def test_decode_can_skip_metrics() -> None:
    rows = [codec.Row(1.7e9 + i, i, {1: 1.5, 2: 2.5}) for i in range(5)]
    assert {m for r in codec.decode(codec.encode(rows), metrics=(2,)) for m in r.values} == {2}


def test_an_hour_of_demo_like_values_packs_below_two_bytes_a_sample() -> None:
    rows = [
        codec.Row(
            1.7e9 + i + (i * 7919 % 1000) / 1e4,
            i,
            {1: round(21 + math.sin(i / 500), 2), 2: round(40 + math.cos(i / 700), 1)},
        )
        for i in range(3600)
    ]
    assert len(codec.encode(rows)) / (3600 * 2) < 2


def test_values_of_a_recent_row_round_trip() -> None:
    body = codec.pack_values((4, 70000), (1 / 3, -0.0))
    assert [bits(v) for v in codec.unpack_values(body).values()] == [bits(1 / 3), bits(-0.0)]
