"""GET /stream: the live feed, resumable with Last-Event-ID on any replica."""

from __future__ import annotations

import _socket  # the unpatched socket type: gevent replaces socket.socket
import json
import logging
import socket
import sqlite3
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from shared import store
from shared.events import Event, stream_id_key
from shared.marks import HighWater
from web import db, gunicorn_worker, params, stream_caps, worker
from web.db import HistoryUnavailable
from web.hub import Hub, IdKey, Overrun
from web.peers import request_client
from web.push import Writer, reconnect_later
from web.sse import encode_comment, encode_event, encode_id, encode_retry
from web.stream_caps import Slot, StreamCaps

logger = logging.getLogger(__name__)

RETRY_MS = 2000
# A client further behind than this reloads its history instead of replaying.
MAX_BACKFILL = 50_000
# How long a resume waits for Redis (a Sentinel failover takes seconds).
RESUME_WAIT_S = 20.0
_PAGE = 1000

# The stored events after an id, or None if there are more than the limit.
History = Callable[[str, int], list[Event] | None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Filter:
    """Which (source, sensor) pairs a client asked for; None means all."""

    sources: frozenset[str] | None = None
    sensors: frozenset[str] | None = None

    def match(self, source: str, sensor: str) -> bool:
        """True if an event of this source and sensor is wanted."""
        return (self.sources is None or source in self.sources) and (
            self.sensors is None or sensor in self.sensors
        )


EVERYTHING = Filter()


class CannotResume(Exception):
    """Neither the stream nor the database holds what follows the client's id."""


def stream_events(
    hub: Hub,
    wanted: Filter,
    last_id: str | None,
    *,
    heartbeat: float,
    history: History | None,
    sock: Socket | None = None,
    slot: Slot | None = None,
) -> Iterator[bytes]:
    """The whole response body of one client, as chunks of SSE bytes.

    With `sock` (under gunicorn's `SSEWorker`), the body ends after the
    first chunk: the hub takes the connection and the client's `slot`, and
    writes the live part itself (`web/push.py`; docs/architecture.md,
    "Fan-out").
    """
    cursor = hub.join()
    counted = True  # by this generator, until the hub takes the client
    try:
        # Taken at the same instant as the cursor: nothing is missed or doubled.
        snapshot = _snapshot(hub, wanted)
        opening = encode_retry(RETRY_MS) + encode_comment("connected")
        resumed: IdKey | None = None
        if last_id is None:
            yield opening + snapshot
        else:
            yield opening
            try:
                resumed, _ = yield from _backfill(hub, wanted, last_id, history)
            except CannotResume as exc:
                logger.info("cannot resume after %s: %s", last_id, exc)
                yield encode_event(json.dumps({"reason": str(exc)}), event="reset") + snapshot
        at = _Cursor(hub, wanted, cursor, resumed)
        if sock is not None and hub.ticking and not hub.stopping:
            gunicorn_worker.hand_over(sock.blocking)
            ended = None
            if slot is not None:
                slot.kept = True
                ended = slot.release
            counted = False
            hub.push.attach(Writer(sock.raw, sock.chunked, at.take, heartbeat, ended))
            return
        yield from _live(hub, at, heartbeat)
    finally:
        if counted:
            hub.leave()


def _snapshot(hub: Hub, wanted: Filter) -> bytes:
    if wanted.sources is None and wanted.sensors is None:
        return hub.snapshot()  # shared by every unfiltered client
    parts = [
        encode_event(data.decode())
        for (source, sensor), data in sorted(hub.latest.items())
        if wanted.match(source, sensor)
    ]
    if hub.last_id is not None:
        parts.append(encode_id(hub.last_id))
    return b"".join(parts)


class _Cursor:
    """One client's place in the ring, its filter and its resume position."""

    __slots__ = ("cursor", "everything", "hub", "resumed", "wanted")

    def __init__(self, hub: Hub, wanted: Filter, cursor: int, resumed: IdKey | None) -> None:
        self.hub = hub
        self.wanted = wanted
        self.everything = wanted.sources is None and wanted.sensors is None
        self.cursor = cursor
        self.resumed = resumed

    def take(self) -> bytes | None:
        """The client's next chunk (None: nothing for it); Overrun if it fell off the ring."""
        hub, cursor = self.hub, self.cursor
        head = hub.head
        if head == cursor:
            return None
        stats = hub.stats
        if head - cursor > stats.backlog_max:
            stats.backlog_max = head - cursor
        try:
            if self.everything and self.resumed is None:
                # The common case: every event, no filter. The chunk is shared
                # by every such client at the same cursor (one entry as it is,
                # several joined once per sweep) and framed once by the hub.
                chunk, count = hub.joined(cursor)
            else:
                wanted, resumed = self.wanted, self.resumed
                parts = [
                    e.payload
                    for e in hub.entries(cursor)
                    if wanted.match(e.source, e.sensor)
                    and (resumed is None or e.key is None or e.key > resumed)
                ]
                self.resumed = _still_resuming(hub, head, resumed)
                count = len(parts)
                chunk = b"".join(parts) if count != 1 else parts[0]
        except Overrun as exc:
            stats.dropped_slow += 1
            logger.info("dropped a slow client: %s", exc)
            raise
        self.cursor = head
        if not count:
            return None
        stats.events_out += count
        stats.bytes_out += len(chunk)
        return chunk


def _live(hub: Hub, at: _Cursor, heartbeat: float) -> Iterator[bytes]:
    # The heartbeat is due `heartbeat` s after the last bytes sent, not after
    # the last wake-up: a filtered client woken only by other sensors' events
    # must still get one, or a proxy's read timeout closes its stream.
    due = time.monotonic() + heartbeat
    while True:
        if not hub.wait(at.cursor, max(due - time.monotonic(), 0.0)):
            # Woken by the hub's tick (or the timeout): send one if it would
            # be late by the next tick, so the gap never exceeds `heartbeat`.
            if time.monotonic() >= due - hub.tick:
                due = time.monotonic() + heartbeat
                yield encode_comment("hb")
            continue
        if hub.stopping:
            yield reconnect_later()
            return
        try:
            chunk = at.take()
        except Overrun:
            return
        if chunk is not None:
            due = time.monotonic() + heartbeat
            yield chunk


@dataclass(frozen=True, slots=True)
class Socket:
    """The client's connection as gunicorn's gevent worker holds it."""

    blocking: socket.socket  # gevent's: waits by switching greenlets
    raw: _socket.socket  # the non-blocking OS socket under it
    chunked: bool  # gunicorn frames the body as HTTP/1.1 chunks


def _still_resuming(hub: Hub, head: int, resumed: IdKey | None) -> IdKey | None:
    """None once the ring has passed the replayed position (ids only grow)."""
    if resumed is None or head == 0:
        return resumed
    last = hub.entry(head - 1).key
    return None if last is not None and last > resumed else resumed


def _backfill(
    hub: Hub, wanted: Filter, last_id: str, history: History | None
) -> Generator[bytes, None, tuple[IdKey, int]]:
    """Replay everything after `last_id`; return the last key sent."""
    try:
        position = stream_id_key(last_id)
    except ValueError:
        raise CannotResume("the Last-Event-ID is not one of ours") from None
    sent = 0
    seqs = hub.seqs_through(position)
    first = yield from _from_redis(hub.bus.first_id)
    if first is None or stream_id_key(first) > position:
        events = _from_history(history, last_id)
        position, count = yield from _send(events, wanted, seqs, position)
        sent += count
    while True:
        after = f"{position[0]}-{position[1]}"
        events = yield from _from_redis(lambda after=after: hub.bus.read_after(after, count=_PAGE))
        if not events:
            return position, sent
        position, count = yield from _send(events, wanted, seqs, position)
        sent += count
        if sent > MAX_BACKFILL:
            raise CannotResume(f"more than {MAX_BACKFILL} events to replay")


def _from_redis(call: Callable[[], T]) -> Generator[bytes, None, T]:
    """`call()`, retried with heartbeats while Redis is away (a failover); else CannotResume.

    A resume that arrives mid-failover waits for the new master instead of
    making the browser reload everything (docs/architecture.md, "Failover").
    """
    deadline = time.monotonic() + RESUME_WAIT_S
    delay = 0.25
    while True:
        try:
            return call()
        except redis.RedisError as exc:
            if time.monotonic() + delay > deadline:
                raise CannotResume(f"Redis is unreachable ({exc})") from None
            yield encode_comment("waiting for Redis")
            time.sleep(delay)  # gevent's sleep in a worker: other clients go on
            delay = min(delay * 2, 1.0)


def _from_history(history: History | None, last_id: str) -> list[Event]:
    """The part the stream no longer holds, from the dashboard database."""
    if history is None:
        raise CannotResume("the stream was trimmed and there is no database")
    try:
        events = history(last_id, MAX_BACKFILL)
    except (sqlite3.Error, HistoryUnavailable) as exc:
        raise CannotResume(f"the database cannot be read ({exc})") from None
    except store.ResumeTooOld as exc:
        raise CannotResume(str(exc)) from None
    if events is None or len(events) > MAX_BACKFILL:
        raise CannotResume(f"more than {MAX_BACKFILL} events to replay")
    return events


def _send(
    events: Iterable[Event],
    wanted: Filter,
    seqs: HighWater,
    position: IdKey,
) -> Generator[bytes, None, tuple[IdKey, int]]:
    parts, count = [], 0
    for event in events:
        key = stream_id_key(event.id or "0")
        if key <= position:
            continue
        position = key
        reading = event.reading
        if reading.seq is not None and not seqs.advance(reading.key, reading.seq):
            continue  # re-sent after Redis came back empty (marks rule 7)
        if wanted.match(reading.source, reading.sensor):
            parts.append(encode_event(reading.to_json(), event_id=event.id))
            count += 1
    if parts:
        yield b"".join(parts)
    return position, count


class StreamResponse(Response):
    """A Response that hands its generator to the server as the WSGI body itself."""

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """Like Response.__call__, without werkzeug's two iterator wrappers."""
        # ClosingIterator and iter_encoded cost two frames on every client's
        # greenlet stack and two calls per chunk; the body is bytes already
        # and the generator's own close() is what releases the hub. `_on_close`
        # is werkzeug's, private (docs/architecture.md, "Private APIs").
        if self._on_close or environ["REQUEST_METHOD"] == "HEAD":
            return super().__call__(environ, start_response)
        start_response(self.status, self.get_wsgi_headers(environ).to_wsgi_list())
        return self.response


bp = Blueprint("stream", __name__)


@bp.get("/stream")
def stream() -> Response | tuple[Response, int]:
    """SSE: `event: reading` for every matching reading, resumable."""
    settings = current_app.config["SETTINGS"]
    # Stock flask-sse lets a client pick any Redis channel; this one never does.
    params.only_channel(request.args, settings.redis_channel)
    wanted = Filter(params.names(request.args, "source"), params.names(request.args, "sensor"))
    if wanted == EVERYTHING:
        wanted = EVERYTHING  # one object shared by every unfiltered client
    last_id = _last_event_id()
    caps: StreamCaps = current_app.extensions[stream_caps.EXTENSION]
    who = request_client()
    refused = caps.acquire(who)
    if refused is not None:
        response = jsonify(error=f"too many streams: {refused}")
        response.headers["Retry-After"] = "30"
        return response, 429
    _drop_silent_peer(request.environ.get("gunicorn.socket"), settings.heartbeat)
    sock = _client_socket(request.environ)
    slot = Slot(caps, who)
    path, deadline = settings.database_path, settings.query_timeout
    body = stream_events(
        worker.hub(),
        wanted,
        last_id,
        heartbeat=settings.heartbeat,
        history=lambda after, limit: db.events_after(path, after, limit, deadline),
        sock=sock,
        slot=slot,
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamResponse(
        stream_caps.held(body, slot), mimetype="text/event-stream", headers=headers
    )


def init_app(app: Flask) -> None:
    """Register the route and this worker's stream caps."""
    settings = app.config["SETTINGS"]
    app.extensions[stream_caps.EXTENSION] = StreamCaps(
        settings.stream_max_per_client, settings.stream_max_clients
    )
    app.register_blueprint(bp)


def _drop_silent_peer(sock: socket.socket | None, heartbeat: float) -> None:
    """Have the kernel abort the connection once the peer acknowledges nothing for a heartbeat.

    Something is written at least every heartbeat, so a dead peer (no ACKs)
    or one that stopped reading (zero window) is cut within two periods; a
    greenlet blocked writing to it then fails, and no other client waits on it.
    """
    if sock is None or not hasattr(socket, "TCP_USER_TIMEOUT"):
        return
    try:
        sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1000, int(heartbeat * 1000))
        )
    except OSError as exc:  # not TCP (a Unix socket behind a proxy): nothing to do
        logger.debug("TCP_USER_TIMEOUT not set: %s", exc)


def _client_socket(environ: dict) -> Socket | None:
    """The connection the hub may take, under gunicorn's `SSEWorker`; else None.

    `_sock` is gevent's raw socket (docs/architecture.md, "Private APIs");
    gunicorn chunks the body exactly when the request is HTTP/1.1 or later.
    """
    blocking = environ.get("gunicorn.socket")
    if not gunicorn_worker.can_hand_over(blocking) or environ["REQUEST_METHOD"] != "GET":
        return None
    raw = getattr(blocking, "_sock", None)
    if not isinstance(raw, _socket.socket):
        return None
    return Socket(blocking, raw, environ.get("SERVER_PROTOCOL", "HTTP/1.0") != "HTTP/1.0")


def _last_event_id() -> str | None:
    """The header (malformed: reset), else the query parameter (malformed: 400).

    The header wins: after an automatic reconnect it is newer than the id
    the page put in the URL when it opened the EventSource.
    """
    query = request.args.get("last_event_id", "").strip()
    if query:
        try:
            stream_id_key(query)
        except ValueError:
            raise params.BadParameter(
                "last_event_id", "must be a stream id such as 1763712000125-0"
            ) from None
    # A malformed header gets a reset, not a 400: an EventSource never
    # retries after a non-200, and the header is not the user's typing.
    return request.headers.get("Last-Event-ID", "").strip()[:64] or query or None
