"""Cursors of the query layer's listings: opaque, bound to one listing, and refused with
a problem naming `query.cursor` when they are not what the hub issued."""

from __future__ import annotations

import base64

import pytest

from hub.errors import InvalidQuery
from hub.queries.paging import decode_cursor, encode_cursor


def test_a_cursor_gives_back_the_key_it_was_made_from() -> None:
    cursor = encode_cursor("caseload", ["2024-03-01", 0, "2024-03-14", "hc-1"])
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor  # URL-safe
    assert decode_cursor("caseload", cursor, (str, int, str, str)) == [
        "2024-03-01",
        0,
        "2024-03-14",
        "hc-1",
    ]


@pytest.mark.parametrize(
    ("cursor", "rule"),
    [
        ("!!!", "cursor.malformed"),
        ("", "cursor.malformed"),
        (base64.urlsafe_b64encode(b"not json").decode(), "cursor.malformed"),
        (base64.urlsafe_b64encode(b"[1, 2]").decode(), "cursor.other_listing"),
        (encode_cursor("match_queue", ["a", "b"]), "cursor.other_listing"),
        (encode_cursor("caseload", ["2024-03-01", 0, "2024-03-14"]), "cursor.malformed"),
        (encode_cursor("caseload", ["2024-03-01", "0", "2024-03-14", "hc-1"]), "cursor.malformed"),
        (encode_cursor("caseload", ["2024-03-01", True, "2024-03-14", "hc-1"]), "cursor.malformed"),
    ],
)
def test_anything_else_is_refused_naming_the_cursor(cursor: str, rule: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        decode_cursor("caseload", cursor, (str, int, str, str))
    assert (caught.value.field, caught.value.rule) == ("query.cursor", rule)
