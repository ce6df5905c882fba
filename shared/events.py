"""The event: a reading as it travels, with its Redis stream id (the SSE event id).

Kept apart from the bus so the SQLite layer and the web side can name
events and order their ids without importing Redis code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.reading import Reading

# What `stream_id_key` accepts, as a pattern (for /api/openapi.json; the
# function checks by hand, faster on every event).
STREAM_ID_RE = re.compile(r"[0-9]{1,16}(-[0-9]{1,16})?")


@dataclass(frozen=True, slots=True)
class Event:
    """A reading with its stream id, or None if published by stock flask-sse."""

    id: str | None
    reading: Reading


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """Order stream ids numerically ("ms-seq"); ValueError if malformed."""
    ms, dash, seq = stream_id.partition("-")
    # isascii: str.isdigit() is also true for "²" and Arabic-Indic digits, which Redis refuses.
    if not (ms + seq).isascii() or not ms.isdigit() or (dash and not seq.isdigit()):
        raise ValueError(f"not a stream id: {stream_id!r:.40}")
    if len(ms) > 16 or len(seq) > 16:
        raise ValueError(f"not a stream id: {stream_id!r:.40}")
    return int(ms), int(seq or 0)
