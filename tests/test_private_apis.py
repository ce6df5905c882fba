"""Guards on the library internals we lean on (docs/architecture.md, "Private APIs").

Each was checked against one version; an upgrade fails here first, with a
sentence saying what to re-check before moving the pin.
"""

from __future__ import annotations

import _socket
import importlib.metadata
import socket
import threading

import gevent
import gunicorn
from gevent._socket3 import socket as GeventSocket
from werkzeug.wrappers import Response

from web.gunicorn_worker import _OneSendSocket, can_hand_over, hand_over
from web.stream import StreamResponse

GEVENT_CHECKED = "26.9.0"
WERKZEUG_CHECKED = "3.1.9"
GUNICORN_CHECKED = "27.0.1"


def test_gevent_is_the_version_the_socket_class_swap_was_checked_against() -> None:
    assert gevent.__version__ == GEVENT_CHECKED, (
        f"gevent is {gevent.__version__}, but SSEWorker.handle in web/gunicorn_worker.py swaps"
        f" __class__ to _OneSendSocket as checked on {GEVENT_CHECKED}: re-check that"
        " gevent._socket3.socket keeps the OS socket in `_sock`, allows a __class__ swap"
        " to an empty-__slots__ subclass, that its sendall still finishes partial"
        " sends, and that _detach_socket (web/gunicorn_worker.py hand_over) still drops"
        " its watchers without closing the descriptor; then set GEVENT_CHECKED"
    )


def test_werkzeug_is_the_version_stream_response_was_checked_against() -> None:
    version = importlib.metadata.version("werkzeug")
    assert version == WERKZEUG_CHECKED, (
        f"werkzeug is {version}, but StreamResponse.__call__ in web/stream.py reads"
        f" Response._on_close as checked on {WERKZEUG_CHECKED}: re-check that"
        " call_on_close() still appends to the list `_on_close` and that __call__ still"
        " only adds ClosingIterator and iter_encoded around the body; then set"
        " WERKZEUG_CHECKED"
    )


def test_the_swapped_socket_delivers_every_byte() -> None:
    ours, theirs = socket.socketpair()
    sender = GeventSocket(fileno=ours.detach())
    assert type(sender) is GeventSocket  # what SSEWorker.handle checks before swapping
    sender.__class__ = _OneSendSocket
    payload = bytes(range(256)) * 40_000  # far more than a socket buffer: the slow path too
    received = bytearray()
    reader = threading.Thread(target=_drain, args=(theirs, received, len(payload)))
    reader.start()
    sender.sendall(payload)
    reader.join(10)
    sender.close()
    theirs.close()
    assert bytes(received) == payload


def _drain(sock: socket.socket, into: bytearray, size: int) -> None:
    while len(into) < size:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return
        into.extend(chunk)


def test_on_close_is_still_where_werkzeug_keeps_close_callbacks() -> None:
    response = Response("x")
    assert response._on_close == []
    response.call_on_close(lambda: None)
    assert len(response._on_close) == 1


def test_stream_response_hands_over_its_own_generator() -> None:
    body = iter([b"data: 1\n\n"])
    environ = {"REQUEST_METHOD": "GET", "SERVER_NAME": "x", "SERVER_PORT": "80"}
    started = []
    response = StreamResponse(body, mimetype="text/event-stream")
    assert response(environ, lambda status, headers: started.append(status)) is body
    assert started == ["200 OK"]
    response.call_on_close(lambda: None)  # a close callback: werkzeug's own path again
    assert response(environ, lambda status, headers: None) is not body


def test_gunicorn_is_the_version_the_hub_frames_chunks_for() -> None:
    assert gunicorn.__version__ == GUNICORN_CHECKED, (
        f"gunicorn is {gunicorn.__version__}, but the hub writes to its clients' sockets"
        f" itself (web/push.py) as checked on {GUNICORN_CHECKED}: re-check that"
        " environ['gunicorn.socket'] is still the client's gevent socket, that"
        " Response.is_chunked still chunks exactly HTTP/1.1+ responses without a length"
        " (web/stream.py _client_socket), that Response.close still ends a chunked"
        " body with sendall (dropped after web/gunicorn_worker.py hand_over, the hub"
        " sends it) and that the keep-alive loop ends on an empty recv; then set"
        " GUNICORN_CHECKED"
    )


def test_gevent_keeps_the_os_socket_under_its_own() -> None:
    sock = GeventSocket()
    try:
        # web/stream.py _client_socket hands this one to the hub for non-blocking sends.
        assert isinstance(sock._sock, _socket.socket)
        assert sock._sock.gettimeout() == 0.0
    finally:
        sock.close()


def test_a_handed_over_socket_keeps_its_descriptor_and_looks_finished_to_gunicorn() -> None:
    ours, theirs = socket.socketpair()
    sock = GeventSocket(fileno=ours.detach())
    sock.__class__ = _OneSendSocket
    assert can_hand_over(sock)
    raw = sock._sock
    hand_over(sock)  # gevent's private _detach_socket (web/gunicorn_worker.py)
    try:
        sock.sendall(b"0\r\n\r\n")  # gunicorn's end of a chunked body: dropped
        assert sock.recv(8192) == b""  # its keep-alive loop sees no next request
        sock.close()  # gunicorn's close must leave the descriptor to the hub
        raw.send(b"data:still open\n\n")
        theirs.settimeout(5)
        assert theirs.recv(100) == b"data:still open\n\n"
    finally:
        raw.close()
        theirs.close()
