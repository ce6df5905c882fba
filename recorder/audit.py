"""What Redis took but the stream never gave the recorder: found, logged, counted, asked again.

A Redis user allowed to XADD (every producer: the publish script's XADD runs
with the caller's rights) can also pass its own `MAXLEN 0` and empty the
stream, or `HSET` a published mark; a recorder stopped longer than
STREAM_MAX_RETENTION finds the oldest entries trimmed. Redis ACLs cannot
forbid an argument, so the recorder checks instead (docs/architecture.md,
"Exactly once"):

- Trimming does not move Redis's `max-deleted-entry-id` (only XDEL does),
  but it leaves the group's read counter behind: once the recorder has read
  everything the stream still holds, the group's `lag` (entries ever added
  minus entries it read) is the number deleted unread. One script looks and
  resets the counter, so nothing slips in between and each loss is counted
  once.
- Marks rule 10: a published mark seen before such a point that is still
  above the recorded mark is lowered to it, so the producer re-sends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shared.bus import RECORDER_GROUP, Bus
from shared.marks import LOWER_LUA, Key, mark_field

logger = logging.getLogger(__name__)

# Seconds between checks (each is a few O(1) commands in one script).
AUDIT_EVERY = 5.0

# KEYS: the stream. ARGV: the group. Returns false while the group has
# something left to read (or pending), else the entries deleted unread
# since the last check (0 mostly), after moving its read counter to match.
LOST_LUA = """
local function field(flat, name)
  for i = 1, #flat, 2 do if flat[i] == name then return flat[i + 1] end end
end
local group
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  if field(g, 'name') == ARGV[1] then group = g end
end
if not group or field(group, 'pending') ~= 0 then return false end
local delivered = field(group, 'last-delivered-id')
if #redis.call('XRANGE', KEYS[1], '(' .. delivered, '+', 'COUNT', 1) > 0 then return false end
local lag = field(group, 'lag')
if not lag or lag <= 0 then return 0 end
local added = field(redis.call('XINFO', 'STREAM', KEYS[1]), 'entries-added')
redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], delivered, 'ENTRIESREAD', added)
return lag
"""


@dataclass
class StreamAudit:
    """Entries deleted unread, and published marks above what the stream delivered."""

    bus: Bus
    lost: int = 0  # stream entries deleted before the recorder read them
    lowered: int = 0  # published marks lowered (rule 10)
    seen: dict[Key, int] | None = None  # published marks when the last check passed
    off: bool = False  # this Redis cannot run the check (older than 7.0)

    def __post_init__(self) -> None:
        self._lost = self.bus.client.register_script(LOST_LUA)
        self._lower = self.bus.client.register_script(LOWER_LUA)

    def run(self, recorded: Mapping[Key, int], known: Iterable[Key]) -> int | None:
        """Check once; entries lost since the last check, None while some are still unread.

        `recorded`: the recorder's marks; `known`: the sensors to look at
        (the history's, without open gaps: rule 9 asks for those already).
        """
        found = self._lost(keys=[self.bus.stream], args=[RECORDER_GROUP])
        if found is None:
            return None
        if found:
            self.lost += found
            logger.error(
                "%d stream entries were deleted before the recorder read them (%d so far):"
                " trimmed by a Redis user (XADD MAXLEN, XTRIM: a stolen producer password?) or"
                " the recorder was stopped past STREAM_MAX_RETENTION; readings with a seq are"
                " asked again from their producers (marks rules 9, 10), stock publishers'"
                " are gone",
                found,
                self.lost,
            )
        keys = list(known)
        if self.seen is not None:
            # Sensors with a gap opened since are left to rule 9.
            now_known = set(keys)
            self._lower_marks({k: v for k, v in self.seen.items() if k in now_known}, recorded)
        self.seen = self._published(keys)
        return found

    def _published(self, keys: list[Key]) -> dict[Key, int]:
        if not keys:
            return {}
        values = self.bus.client.hmget(self.bus.marks.published_key, [mark_field(*k) for k in keys])
        return {k: int(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def _lower_marks(self, snapshot: Mapping[Key, int], recorded: Mapping[Key, int]) -> None:
        """Rule 10: every entry up to the snapshot is read, so a higher published mark is wrong."""
        for key, seen in snapshot.items():
            mark = recorded.get(key)
            if mark is not None and mark >= seen:
                continue
            new = "" if mark is None else str(mark)
            args = [mark_field(*key), str(seen), new]
            if self._lower(keys=[self.bus.marks.published_key], args=args):
                self.lowered += 1
                logger.error(
                    "%s/%s: Redis's published mark %d is above everything the stream gave the"
                    " recorder (%s): its readings were trimmed, or the mark forged; lowered it"
                    " so the producer re-sends (marks rule 10)",
                    *key,
                    seen,
                    "nothing" if mark is None else mark,
                )
