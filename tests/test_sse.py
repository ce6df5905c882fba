"""SSE encoding, to the byte."""

from __future__ import annotations

from web.sse import encode_comment, encode_event, encode_id, encode_retry


def test_event_with_id() -> None:
    assert encode_event('{"a":1}', event_id="1763712000125-0") == (
        b'event:reading\ndata:{"a":1}\nid:1763712000125-0\n\n'
    )


def test_event_without_id() -> None:
    assert encode_event('{"a":1}') == b'event:reading\ndata:{"a":1}\n\n'


def test_multi_line_data_stays_one_event() -> None:
    assert encode_event("a\nb\r\nc", event="reset") == b"event:reset\ndata:a\ndata:b\ndata:c\n\n"


def test_comment_and_id_cannot_inject_fields() -> None:
    assert encode_comment("hb\ndata: evil") == b":hb data: evil\n\n"
    assert encode_id("1-0\nevent: x") == b"id:1-0 event: x\n\n"


def test_retry() -> None:
    assert encode_retry(2000) == b"retry:2000\n\n"
