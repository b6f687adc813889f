"""The match queue as a person decides from it (`GET /match-queue`, a page at a time by
cursor; `hub match list`), scoped to who asks.

`QueueScope` says what a caller sees: a coordinator, the items whose candidates include a
child on their caseload (and of the candidates, only those), plus the items with no
candidate at all (a record the hub cannot tie to any child: the LA's intake decides it);
an item it may not see answers exactly as an item that does not exist. `demographics`
False (the admin) lists items without the record's name, date of birth, postcode or
identifiers and without the candidates' recorded dates of birth. The operator's CLI sees
everything. Every item shown and every candidate compared is an audited read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.consent.audit_trail import AuditEntry
from hub.identity.match_queue import Status, strong_identifiers
from hub.identity.subject import Subject
from hub.queries.context import Reads
from hub.queries.paging import decode_cursor, encode_cursor


def _subject_view(subject: Subject | None, owners: dict[str, str | None]) -> dict[str, Any]:
    if subject is None:
        return {"readable": False}
    good, bad = strong_identifiers(subject)
    # the values stay sealed: which child already holds each identifier is what decides
    identifiers: list[dict[str, Any]] = [
        {"system": i.system.value, "valid": True, "belongs_to": owners.get(str(i))} for i in good
    ]
    identifiers += [
        {
            "system": b.system.value,
            "valid": False,
            "rule": f"{b.system.value}.{b.rule}",
            "reason": b.message,
        }
        for b in bad
    ]
    return {
        "readable": True,
        "given_name": subject.given_name,
        "family_name": subject.family_name,
        "date_of_birth": subject.date_of_birth.isoformat() if subject.date_of_birth else None,
        "postcode": subject.postcode,
        "identifiers": identifiers,
    }


Reach = Callable[[Sequence[str]], Awaitable[list[str]]]
"""Those of some children the caller reaches (`hub.queries.context.children_in_reach`)."""


@dataclass(frozen=True)
class QueueScope:
    """What of the queue one caller sees: `reach` None sees every item and candidate."""

    reach: Reach | None = None
    demographics: bool = True

    async def candidates(self, candidates: Sequence[str]) -> list[str] | None:
        """The candidates shown, or None when the item is not the caller's to see."""
        if self.reach is None or not candidates:
            return list(candidates)
        reached = set(await self.reach(candidates))
        shown = [c for c in candidates if c in reached]
        return shown or None


EVERYTHING = QueueScope()


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue as `review_queue` shows it, and the next page's cursor."""

    items: list[dict[str, Any]]
    next_cursor: str | None


QUEUE_LIMIT = 100
QUEUE_MAX_LIMIT = 500
QUEUE_CURSOR = "match_queue"


async def review_queue(
    reads: Reads,
    *,
    actor: str,
    route: str,
    status: Status | None = "pending",
    limit: int = QUEUE_LIMIT,
    scope: QueueScope = EVERYTHING,
) -> list[dict[str, Any]]:
    """The first `limit` items of the queue as `review_queue_page` shows them."""
    page = await review_queue_page(
        reads, actor=actor, route=route, status=status, limit=limit, scope=scope
    )
    return page.items


async def review_queue_page(
    reads: Reads,
    *,
    actor: str,
    route: str,
    status: Status | None = "pending",
    limit: int = QUEUE_LIMIT,
    cursor: str | None = None,
    scope: QueueScope = EVERYTHING,
) -> QueuePage:
    """The queue as a coordinator decides from it, in the order it was queued, `limit`
    items after `cursor` (a page's `next_cursor`): each item's reason and candidates, the
    record's demographics and identifiers (decrypted), and per candidate only what the hub
    records to compare (date of birth, whether the name and date of birth match), as far
    as `scope` lets the caller see (a page may hold fewer than `limit` items). Every item
    shown and every candidate compared is an audited read."""
    queue, persons, trail = reads.matches, reads.persons, reads.trail
    after = None
    if cursor is not None:
        created_at, item_id = decode_cursor(QUEUE_CURSOR, cursor, (str, str))
        after = (created_at, item_id)
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    audit: list[AuditEntry] = []
    fetched = await queue.items(status=status, limit=limit + 1, after=after)
    page = fetched[:limit]
    for item in page:
        shown = await scope.candidates(item.candidates)
        if shown is None:
            continue  # not this caller's to see, as if it were not queued
        subject = None
        if scope.demographics and item.status == "pending":
            subject = await queue.open_subject(item)
        owners: dict[str, str | None] = {}
        fingerprint = None
        if subject is not None:
            for ident in strong_identifiers(subject)[0]:
                owners[str(ident)] = await persons.lookup(ident)
            fingerprint = await queue.fingerprint(subject)
        same_person = set(await queue.children_with(fingerprint))
        candidates = []
        for child in shown:
            dob = await persons.date_of_birth(child) if scope.demographics else None
            candidates.append(
                {
                    "child_id": child,
                    "recorded_date_of_birth": dob.isoformat() if dob else None,
                    "date_of_birth_matches": (
                        None
                        if dob is None or subject is None or subject.date_of_birth is None
                        else dob == subject.date_of_birth
                    ),
                    "name_and_date_of_birth_match": child in same_person,
                    "identifiers_held": sorted(
                        ident.split(":", 1)[0] for ident, owner in owners.items() if owner == child
                    ),
                }
            )
            if not scope.demographics:
                continue  # nothing of the candidate's record was read
            audit.append(
                AuditEntry(
                    kind="read",
                    actor=actor,
                    child_id=child,
                    at=now,
                    details={
                        "route": route,
                        "item_id": item.item_id,
                        "outcome": "compared",
                        "fields_shown": ["recorded_date_of_birth"],
                    },
                )
            )
        view: dict[str, Any] = {
            "item_id": item.item_id,
            "status": item.status,
            "reason": item.reason,
            "reason_text": item.describe(),
            "rule": item.rule,
            "agency": item.agency,
            "message_id": item.message_id,
            "queued_at": item.created_at,
            "facts_held": item.facts_held,
            "held_event_types": item.held_types,
            "candidates": candidates,
        }
        if item.status == "pending":
            view["record"] = (
                _subject_view(subject, owners) if scope.demographics else {"readable": False}
            )
        else:
            view.update(
                decision=item.decision,
                child_id=item.resolved_child_id,
                resolved_by=item.resolved_by,
                resolved_at=item.resolved_at,
            )
        out.append(view)
        audit.append(
            AuditEntry(
                kind="read",
                actor=actor,
                child_id=item.provisional_child_id,
                at=now,
                details={
                    "route": route,
                    "item_id": item.item_id,
                    "candidate_child_ids": shown,
                    "outcome": "shown" if subject is not None else "listed",
                },
            )
        )
    if audit:
        await trail.append(audit)
    next_cursor = None
    if len(fetched) > limit:
        next_cursor = encode_cursor(QUEUE_CURSOR, [page[-1].created_at, page[-1].item_id])
    return QueuePage(out, next_cursor)


async def item_in_scope(reads: Reads, scope: QueueScope, item_id: str) -> bool:
    """Whether the caller may see (and so decide) the item: False for one that does not
    exist, exactly as for one it may not see."""
    item = await reads.matches.get(item_id)
    return item is not None and await scope.candidates(item.candidates) is not None
