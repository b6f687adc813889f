"""Facts opened before: the read side's memo of decrypted, validated envelopes.

Opening a sealed fact (decrypt its personal fields with the child's data key, validate
the envelope and its payload) is the dearest step of a read, and the same facts are
opened again on every read of the same child. A stored fact never changes: its body is
the record exactly as logged. So what opening it gives is fixed by two things, the body
and the data key it is opened with, and the memo keeps, per fact id, the body and the key
it was opened with beside the envelope, and gives it back only when both are the same
again: a fact whose key has been deleted (erasure, retention) is never given back, it is
opened again (and is then unreadable). What a read shows is still decided at read time:
the memo is asked only for the facts the consent policy lets the caller see now, in the
set the projection holds now (caught up first), so a withdrawal or an erasure takes
effect on the very next read as before.

Beside the facts, the memo keeps views folded from them (`view`, `keep_view`): a fold is a
pure function of the facts it is given and of its other arguments, so a view kept under a
key made of the child, the ids of exactly the facts it was folded from and every other
argument is the view that folding them again would give.

Beside both, rows a query read from a projection (`row`, `keep_row`), kept under the
projection's positions (`hub.service_layer.views.Positions`) on the child's partition:
the same positions, the same rows.

And the JSON a kept view was written as (`json_of`), so that a view served again from
the memo is not serialised again either.

Bounded (the oldest entries go first when it is full); `forget_child` drops everything
kept of a child at once, and the composition root calls it whenever this process deletes
one of the child's data keys. Another process's erasure reaches this one as the tombstone
that drops the child's rows from the projections (and so from every read): what this
process kept of the child is no longer reachable and goes as the memo turns over.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from pydantic import BaseModel

from hub.events import Envelope

FACTS_KEPT = 20_000
"""Opened facts kept per process (a few KiB each)."""
VIEWS_KEPT = 2_000
"""Folded views kept per process (a few KiB to tens of KiB each)."""
ROWS_KEPT = 6_000
"""Rows read from projections kept per process (a reach, a consent state or a child's
stored team facts: a few bytes to tens of KiB each)."""


@dataclass
class OpenedFacts:
    """Envelopes opened before, by fact id, each with the body and key it came from."""

    size: int = FACTS_KEPT
    views_size: int = VIEWS_KEPT
    rows_size: int = ROWS_KEPT
    _kept: dict[str, tuple[str, bytes, bytes | None, Envelope]] = field(default_factory=dict)
    _views: dict[tuple[Hashable, ...], object] = field(default_factory=dict)
    _rows: dict[tuple[Hashable, ...], object] = field(default_factory=dict)
    _json: dict[tuple[str, int], tuple[BaseModel, bytes]] = field(default_factory=dict)

    def get(self, event_id: str, body: bytes, key: bytes | None) -> Envelope | None:
        entry = self._kept.get(event_id)
        if entry is None:
            return None
        if entry[1] != body or entry[2] != key:
            del self._kept[event_id]
            return None
        return entry[3]

    def put(
        self, event_id: str, child_id: str, body: bytes, key: bytes | None, env: Envelope
    ) -> None:
        if self.size <= 0:
            return
        while len(self._kept) >= self.size:
            self._kept.pop(next(iter(self._kept)))
        self._kept[event_id] = (child_id, body, key, env)

    def view(self, key: tuple[Hashable, ...]) -> object | None:
        """The view kept under `key` (its first element the child id), or None."""
        return self._views.get(key)

    def keep_view(self, key: tuple[Hashable, ...], view: object) -> None:
        if self.views_size <= 0:
            return
        while len(self._views) >= self.views_size:
            self._views.pop(next(iter(self._views)))
        self._views[key] = view

    def row(self, key: tuple[Hashable, ...]) -> object | None:
        """What was read under `key` (its first element the child id), or None."""
        return self._rows.get(key)

    def keep_row(self, key: tuple[Hashable, ...], value: object) -> None:
        if self.rows_size <= 0:
            return
        while len(self._rows) >= self.rows_size:
            self._rows.pop(next(iter(self._rows)))
        self._rows[key] = value

    def json_of(self, child_id: str, view: BaseModel) -> bytes:
        """The view written as JSON (by alias, as a FastAPI `response_model` writes it),
        once per view object: a view given back by `view` is not written out again."""
        key = (child_id, id(view))
        kept = self._json.get(key)
        if kept is not None and kept[0] is view:  # held here, so its id is not reused
            return kept[1]
        body = view.__pydantic_serializer__.to_json(view, by_alias=True)
        if self.views_size > 0:
            while len(self._json) >= self.views_size:
                self._json.pop(next(iter(self._json)))
            self._json[key] = (view, body)
        return body

    def forget_child(self, child_id: str) -> None:
        """Drop every fact and view kept of the child (its record, or a category, was
        erased)."""
        gone = [e for e, entry in self._kept.items() if entry[0] == child_id]
        for event_id in gone:
            del self._kept[event_id]
        for key in [k for k in self._views if k[0] == child_id]:
            del self._views[key]
        for key in [k for k in self._rows if k[0] == child_id]:
            del self._rows[key]
        for written in [k for k in self._json if k[0] == child_id]:
            del self._json[written]

    def __len__(self) -> int:
        return len(self._kept)
