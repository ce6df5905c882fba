"""Raw blocks: many readings of one sensor packed into one compressed, exact blob.

A block holds the readings of one (source, sensor) in one hour as columns: the
times, the seqs and one column per metric. Times and values are stored
exactly (a float64 round-trips bit for bit): a column whose values are all
short decimals (21.53, 1013.25, 600.0) is kept as scaled integers, otherwise
as the XOR of consecutive IEEE-754 bit patterns; integer columns are
delta-coded; then the whole block is zlib-compressed. See docs/architecture.md
"History storage" for the sizes this gives.
"""

from __future__ import annotations

import json
import math
import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import accumulate, repeat
from operator import mul, truediv

FORMAT = 1
# Scaled integers stay below 2**53 so k / 10**d is exact float arithmetic.
_MAX_SCALED = 2**53
_MAX_SCALE = 9


@dataclass(frozen=True, slots=True)
class Row:
    """One reading as a block stores it: metric ids instead of names."""

    ts: float
    seq: int | None
    values: dict[int, float]


def encode(rows: Sequence[Row]) -> bytes:
    """Pack rows (sorted by ts) into a block."""
    mids = sorted({mid for row in rows for mid in row.values})
    header: dict[str, object] = {"f": FORMAT, "n": len(rows), "m": mids}
    parts = [_float_bits([row.ts for row in rows], delta=True)]
    seqs = [row.seq for row in rows]
    parts.append(_present_mask([s is not None for s in seqs]))
    parts.append(_ints([s for s in seqs if s is not None]))
    scales = []
    for mid in mids:
        column = [row.values.get(mid) for row in rows]
        parts.append(_present_mask([v is not None for v in column]))
        present = [v for v in column if v is not None]
        scale = _decimal_scale(present)
        scales.append(scale)
        if scale is None:
            parts.append(_float_bits(present, delta=False))
        else:
            p = float(10**scale)
            parts.append(_ints(list(map(round, map(partial(mul, p), present)))))
    header["s"] = scales
    header["l"] = [len(p) for p in parts]
    head = json.dumps(header, separators=(",", ":")).encode()
    return zlib.compress(head + b"\n" + b"".join(parts), 6)


def decode(block: bytes, metrics: Sequence[int] | None = None) -> list[Row]:
    """The rows of a block; only the metric ids in `metrics` when given."""
    raw = zlib.decompress(block)
    head, _, body = raw.partition(b"\n")
    header = json.loads(head)
    if header["f"] != FORMAT:
        raise ValueError(f"unknown raw block format {header['f']!r}")
    parts, offset = [], 0
    for length in header["l"]:
        parts.append(body[offset : offset + length])
        offset += length
    n = header["n"]
    times = _unfloat_bits(parts[0], delta=True)
    seqs = _spread(parts[1], _unints(parts[2]), n)
    values: list[dict[int, float]] = [{} for _ in range(n)]
    for i, (mid, scale) in enumerate(zip(header["m"], header["s"], strict=True)):
        if metrics is not None and mid not in metrics:
            continue
        mask, data = parts[3 + 2 * i], parts[4 + 2 * i]
        if scale is None:
            column = _unfloat_bits(data, delta=False)
        else:
            column = list(map(truediv, _unints(data), repeat(10**scale)))
        for cell, value in zip(values, _spread(mask, column, n), strict=True):
            if value is not None:
                cell[mid] = value
    return [Row(t, s, v) for t, s, v in zip(times, seqs, values, strict=True)]


def _decimal_scale(values: Sequence[float]) -> int | None:
    """The fewest decimals d with every value exactly k / 10**d, or None."""
    if any(v == 0 and math.copysign(1, v) < 0 for v in values):
        return None  # -0.0 would come back as 0.0
    if not all(map(math.isfinite, values)) or max(map(abs, values), default=0) >= _MAX_SCALED:
        return None
    for scale in range(_MAX_SCALE + 1):
        p = float(10**scale)
        scaled = list(map(partial(mul, p), values))
        if max(map(abs, scaled), default=0) >= _MAX_SCALED:
            return None
        if list(map(truediv, map(round, scaled), repeat(p))) == list(values):
            return scale
    return None


def _present_mask(present: list[bool]) -> bytes:
    return b"" if all(present) else bytes(present)


def _spread(mask: bytes, items: Sequence, n: int) -> list:
    """Put the present items back in their places; None where absent."""
    if not mask:
        return list(items)
    it = iter(items)
    return [next(it) if flag else None for flag in mask[:n]]


def _ints(values: Sequence[int]) -> bytes:
    """Delta-coded int64s; JSON when a value or a step does not fit."""
    deltas = [b - a for a, b in zip([0, *values], values, strict=False)]
    try:
        return b"q" + _le(array("q", deltas)).tobytes()
    except OverflowError:
        return b"j" + json.dumps(list(values)).encode()


def _unints(data: bytes) -> list[int]:
    if not data:
        return []
    if data[:1] == b"j":
        return json.loads(data[1:])
    return list(accumulate(_le(array("q", data[1:]))))


def _float_bits(floats: Sequence[float], *, delta: bool) -> bytes:
    """IEEE-754 bit patterns: deltas (for rising times) or XOR with the previous."""
    bits = struct.unpack(f"<{len(floats)}q", struct.pack(f"<{len(floats)}d", *floats))
    if delta:
        return _ints(bits)
    xored = [b ^ a for a, b in zip([0, *bits], bits, strict=False)]
    return b"x" + _le(array("q", xored)).tobytes()


def _unfloat_bits(data: bytes, *, delta: bool) -> list[float]:
    if delta:
        bits = _unints(data)
    else:
        xored = _le(array("q", data[1:]))
        bits = list(accumulate(xored, lambda a, b: a ^ b))
    return list(struct.unpack(f"<{len(bits)}d", struct.pack(f"<{len(bits)}q", *bits)))


def _le(numbers: array) -> array:
    """Little-endian on disk whatever the machine, so a database moves between them."""
    if sys.byteorder == "big":
        numbers.byteswap()
    return numbers


def pack_values(mids: Sequence[int], values: Sequence[float]) -> bytes:
    """One reading's values for a raw_recent row: count, metric ids, float64s."""
    n = len(mids)
    return struct.pack(f"<H{n}i{n}d", n, *mids, *values)


def unpack_values(body: bytes) -> dict[int, float]:
    """The inverse of pack_values: {mid: value}."""
    (n,) = struct.unpack_from("<H", body)
    numbers = struct.unpack_from(f"<{n}i{n}d", body, 2)
    return dict(zip(numbers[:n], numbers[n:], strict=True))
