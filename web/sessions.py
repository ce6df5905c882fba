"""Login sessions: signed cookies with an issue time, revocable one by one or all at once.

A cookie is `v2.<level>.<issued ms>.<random id>.<HMAC>`, keyed by a key
derived from the token of its level (ACCESS_TOKEN for "full", VIEW_TOKEN for
"view"), so rotating a token still logs its sessions out. Logging out
marks its id revoked in Redis until it would have expired; "log out
everywhere" moves the epoch in Redis, which every cookie issued before it
fails. Any worker of any replica sees both at once (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

import redis

logger = logging.getLogger(__name__)

MAX_AGE = 30 * 86400
_VERSION = "v2"
_KEY_LABEL = b"sensor-display session key v2"
MAX_COOKIE_CHARS = 200


@dataclass(frozen=True, slots=True)
class Session:
    """A verified cookie's contents."""

    level: str
    issued_ms: int
    sid: str


def _key(token: str) -> bytes:
    return hmac.new(token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _mac(token: str, level: str, issued_ms: int, sid: str) -> str:
    message = f"{_VERSION}.{level}.{issued_ms}.{sid}".encode()
    return hmac.new(_key(token), message, hashlib.sha256).hexdigest()


def issue(token: str, level: str = "full", now: float | None = None) -> str:
    """A new cookie value: `level`, fresh random id, this issue time, signed with `token`."""
    issued_ms = int((time.time() if now is None else now) * 1000)
    sid = secrets.token_hex(16)
    return f"{_VERSION}.{level}.{issued_ms}.{sid}.{_mac(token, level, issued_ms, sid)}"


def verify(tokens: dict[str, str], value: str, now: float | None = None) -> Session | None:
    """The session a cookie holds if signed by its level's token and not too old, else None."""
    parts = value[:MAX_COOKIE_CHARS].split(".")
    if len(parts) != 5 or parts[0] != _VERSION:
        return None
    _, level, issued, sid, mac = parts
    token = tokens.get(level, "")
    if not token or not issued.isascii() or not issued.isdigit() or len(issued) > 15:
        return None
    expected = _mac(token, level, int(issued), sid)
    if not hmac.compare_digest(mac.encode("ascii", "replace"), expected.encode()):
        return None
    now_ms = (time.time() if now is None else now) * 1000
    if not now_ms - MAX_AGE * 1000 <= int(issued) <= now_ms + 60_000:
        return None
    return Session(level, int(issued), sid)


class Revocations:
    """The server-side half: revoked ids and the epoch, in Redis."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.client = client
        self.epoch_key = f"{channel}:auth:epoch"
        self.prefix = f"{channel}:auth:revoked:"

    def valid(self, session: Session) -> bool:
        """Not revoked and not older than the epoch; True when Redis cannot say."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.get(self.epoch_key).exists(self.prefix + session.sid)
                epoch, revoked = pipe.execute()
        except redis.RedisError as exc:
            # The signature and age were checked: a Redis outage must not lock
            # everyone out of the history, it only delays a logout's effect.
            logger.warning("session revocations unavailable (%s); trusting the signature", exc)
            return True
        return not revoked and session.issued_ms >= int(epoch or 0)

    def revoke(self, session: Session) -> None:
        """Log this one session out, everywhere it is used."""
        left = max(1, int(session.issued_ms / 1000 + MAX_AGE - time.time()))
        self.client.set(self.prefix + session.sid, 1, ex=left)

    def revoke_all(self) -> None:
        """Log every session out: only cookies issued from now on are valid."""
        self.client.set(self.epoch_key, int(time.time() * 1000) + 1)
