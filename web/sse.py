"""Server-Sent Events on the wire: pure functions from data to bytes."""

from __future__ import annotations

from flask_sse import Message


def encode_event(data: str, *, event: str = "reading", event_id: str | None = None) -> bytes:
    """One event in flask-sse's wire format; multi-line data stays one event."""
    return str(Message(data, type=event, id=event_id)).encode()


def encode_id(event_id: str) -> bytes:
    """An id-only block: moves the browser's Last-Event-ID without an event."""
    return f"id:{_one_line(event_id)}\n\n".encode()


def encode_comment(text: str = "") -> bytes:
    """A comment line, which EventSource ignores: heartbeats and the opening."""
    return f":{_one_line(text)}\n\n".encode()


def encode_retry(milliseconds: int) -> bytes:
    """Tell the browser how long to wait before reconnecting."""
    return f"retry:{int(milliseconds)}\n\n".encode()


def _one_line(text: str) -> str:
    # A newline inside a comment or id would start a new field.
    return text.replace("\r", " ").replace("\n", " ")
