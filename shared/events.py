"""The event: a reading as it travels, with its Redis stream id (the SSE event id).

Kept apart from the bus so the SQLite layer and the web side can name
events and order their ids without importing Redis code.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.reading import Reading


@dataclass(frozen=True, slots=True)
class Event:
    """A reading with its stream id, or None if published by stock flask-sse."""

    id: str | None
    reading: Reading


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """Order stream ids numerically ("ms-seq"); ValueError if malformed."""
    ms, _, seq = stream_id.partition("-")
    # isascii: str.isdigit() is also true for "²" and Arabic-Indic digits, which Redis refuses.
    if not (ms + seq).isascii() or not ms.isdigit() or (seq and not seq.isdigit()):
        raise ValueError(f"not a stream id: {stream_id!r:.40}")
    if len(ms) > 16 or len(seq) > 16:
        raise ValueError(f"not a stream id: {stream_id!r:.40}")
    return int(ms), int(seq or 0)
