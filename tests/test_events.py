"""Stream ids: their order, and the pattern /api/openapi.json states for them."""

from __future__ import annotations

import pytest

from shared.events import STREAM_ID_RE, stream_id_key

IDS = [
    "0",
    "0-0",
    "1763712000125-0",
    "1763712000125-17",
    "9" * 16 + "-" + "9" * 16,
    "",
    "-1",
    "1-",
    "1--1",
    "a-1",
    "1.5-0",
    " 1-0",
    "²-1",
    "\u0661-0",
    "1" * 17,
    "1-" + "1" * 17,
]


@pytest.mark.parametrize("text", IDS)
def test_the_parser_accepts_exactly_the_published_pattern(text: str) -> None:
    try:
        stream_id_key(text)
        parsed = True
    except ValueError:
        parsed = False
    assert parsed == bool(STREAM_ID_RE.fullmatch(text))


def test_ids_order_numerically_not_as_text() -> None:
    assert stream_id_key("9-0") < stream_id_key("10-0")
    assert stream_id_key("5-9") < stream_id_key("5-10")
    assert stream_id_key("5") == (5, 0)
