"""How many /stream connections one worker holds: per client address and in all.

Each stream costs a socket and its place in the hub for as long as it
lasts, so one address opening thousands would take the worker's memory and
file descriptors from everyone else. Past either cap the answer is 429 (a browser
under its cap never sees it: a tab holds one stream). Counted per worker;
the proxy's `limit_conn` caps an address across workers (docs/security.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

EXTENSION = "sensor_display_stream_caps"


@dataclass
class StreamCaps:
    """Open streams per client address and in total, for one worker."""

    per_client: int
    total: int
    open: dict[str, int] = field(default_factory=dict)
    count: int = 0
    refused: int = 0

    def acquire(self, who: str) -> str | None:
        """Take a slot for `who`; None if granted, else why not."""
        if self.count >= self.total:
            reason = f"this server holds its maximum of {self.total} streams"
        elif self.open.get(who, 0) >= self.per_client:
            reason = f"at most {self.per_client} streams per client address"
        else:
            self.open[who] = self.open.get(who, 0) + 1
            self.count += 1
            return None
        self.refused += 1
        if self.refused & (self.refused - 1) == 0:  # log the 1st, 2nd, 4th, 8th...
            logger.warning("refused a stream from %s: %s (%d so far)", who, reason, self.refused)
        return reason

    def release(self, who: str) -> None:
        """Give back a slot taken by `who`."""
        left = self.open.get(who, 0) - 1
        if left > 0:
            self.open[who] = left
        else:
            self.open.pop(who, None)
        self.count -= 1


class Slot:
    """One acquired stream slot, given back once by whoever ends the stream last holds it."""

    __slots__ = ("caps", "kept", "who")

    def __init__(self, caps: StreamCaps, who: str) -> None:
        self.caps: StreamCaps | None = caps
        self.who = who
        self.kept = False  # the hub took the stream: it releases the slot when it ends it

    def release(self) -> None:
        """Give the slot back (once)."""
        caps, self.caps = self.caps, None
        if caps is not None:
            caps.release(self.who)


class Held:
    """A response body that gives its slot back when the server closes it."""

    def __init__(self, body: Iterator[bytes], slot: Slot) -> None:
        self.body = body
        self.slot = slot

    def __iter__(self) -> Iterator[bytes]:
        return self.body

    def close(self) -> None:
        """Called by the WSGI server once, even if the body was never iterated."""
        close = getattr(self.body, "close", None)
        if close is not None:
            close()
        if not self.slot.kept:
            self.slot.release()


def held(body: Iterable[bytes], slot: Slot) -> Held:
    """`body`, holding `slot` until closed (or until the hub takes the stream)."""
    return Held(iter(body), slot)
