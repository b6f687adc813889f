"""Cursor paging for the query layer's long lists (the caseload, a child's audit trail,
the match queue).

A cursor is opaque to callers: URL-safe base64 of a small JSON object naming the list it
belongs to and the sort key of the last row shown (ids, positions, dates — never a name
or an identifier). The next page holds the rows whose key sorts after it, so walking the
pages of an unchanged list shows every row once, in one stable order. A cursor that does
not decode, or belongs to another list, is an `InvalidQuery` naming `query.cursor`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from hub.errors import InvalidQuery

CURSOR_FIELD = "query.cursor"


def malformed_cursor() -> InvalidQuery:
    return InvalidQuery(CURSOR_FIELD, "cursor.malformed", "not a cursor this hub issued")


def encode_cursor(listing: str, key: list[Any]) -> str:
    """The cursor after the row whose sort key is `key`, in `listing`."""
    raw = orjson.dumps({"l": listing, "k": key}, option=orjson.OPT_SORT_KEYS)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(listing: str, cursor: str, shape: tuple[type, ...]) -> list[Any]:
    """The sort key a cursor of `listing` carries, each part of the type `shape` names;
    `InvalidQuery` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise malformed_cursor() from None
    if not isinstance(value, dict) or value.get("l") != listing:
        raise InvalidQuery(
            CURSOR_FIELD, "cursor.other_listing", f"not a cursor of the {listing} listing"
        )
    key = value.get("k")
    if (
        not isinstance(key, list)
        or len(key) != len(shape)
        or not all(type(part) is kind for part, kind in zip(key, shape, strict=True))
    ):
        raise malformed_cursor()
    return key
