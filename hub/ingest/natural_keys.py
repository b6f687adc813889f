"""Natural keys: what makes two facts from one source the same fact, whatever message
carried them.

An agency restates its facts: each annual CIN census repeats a child's open episode, plan
and disabilities; a school's next CTF repeats the SEN history; a FHIR server re-sends a
resource unchanged. The message id (a content hash) differs each time, so the message-
scoped idempotency key (agency, message, place in the message) would take each restatement
as a new fact. A fact's natural key is its source (agency and organisation), the child as
the source names them (every identifier and demographic it sent), its type and the
payload fields that identify it in its own format — a CIN episode by its referral date, an
SEN status by its start date, a FHIR resource by its id (the part of the fact's ref that
names it). `restatement_key` adds a digest of the payload: the same fact with the same
content in any message has the same key, and the write side's idempotency claims answer
it `duplicate` (absorbed); the same fact with other content is a correction, appended as a
new version. `fact_key` (no subject, no content) groups the versions of one fact in a
child's record (`group_versions`): the views show the latest with its history.

Keys are SHA-256 digests: no identifier or value is ever written in one. Pure functions:
the same facts give the same keys in every process, after every restart and rebuild.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson

from hub.events.envelope import EventPayload, Source
from hub.ingest.model import InboundFact, Subject

NATURAL_FIELDS: dict[str, tuple[str, ...]] = {
    "social_care.child_identified": (),
    "social_care.disability_recorded": (),
    "social_care.cin_episode_recorded": ("referral_date",),
    "social_care.cin_plan_recorded": ("referral_date", "start_date"),
    "social_care.assessment_recorded": ("referral_date", "start_date"),
    "safeguarding.section47_recorded": ("referral_date", "start_date"),
    "safeguarding.cp_plan_recorded": ("referral_date", "start_date"),
    "social_care.looked_after_episode_recorded": ("start_date",),
    "education.pupil_identified": (),
    "education.sen_status_recorded": ("start_date",),
    "education.placement_recorded": ("la_code", "estab", "entry_date"),
    "education.attendance_recorded": ("academic_year", "la_code", "estab"),
    "education.exclusion_recorded": ("start_date", "exclusion_category"),
}
"""Per event type, the payload fields that (with source, child and type) name one fact."""

_FHIR_RESOURCE = re.compile(r"\(([A-Za-z]+/[A-Za-z0-9\-.]{1,64})\)(.*)$")
"""A FHIR fact's ref names its resource: `Bundle.entry[3].resource(Condition/c1)`, with a
suffix when one resource yields several facts."""


def _digest(*parts: object) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]


def child_named(subject: Subject) -> dict[str, object] | None:
    """The child exactly as the source names them (every identifier and demographic it
    sent): a fact restated about the same child as before is the same fact, while one
    naming the child differently (another date of birth, an added identifier) goes through
    identity resolution again, so a contradiction still reaches the match queue."""
    named = subject.model_dump(mode="json", exclude_none=True)
    return named or None


def fact_key(
    source: Source,
    payload: EventPayload,
    ref: str = "",
    *,
    content: Mapping[str, Any] | None = None,
) -> str | None:
    """The key of one fact within a child's record (source, type and identifying fields),
    or None when its type has no natural key and its ref names no FHIR resource.
    `content`: the payload's JSON form, when the caller has it already."""
    fields = NATURAL_FIELDS.get(payload.event_type)
    if fields is not None:
        data = (
            content if content is not None else payload.model_dump(mode="json", include=set(fields))
        )
        values = [data.get(f) for f in fields]
        return _digest(source.agency, source.organisation_code, payload.event_type, values)
    match = _FHIR_RESOURCE.search(ref)
    if match is not None:
        return _digest(source.agency, payload.event_type, match[1], match[2])
    return None


_UNNAMED: Any = object()


def restatement_key(fact: InboundFact, named: dict[str, object] | None = _UNNAMED) -> str | None:
    """The fact's idempotency key across messages: its natural key and a digest of its
    content, so a restatement in another message is the same key (absorbed) and a
    correction is not. None when the fact has no natural key (the message-scoped key
    applies). `named`: `child_named(fact.subject)`, when the caller has it already (the
    facts of one subject share it)."""
    payload = fact.payload
    has_fields = payload.event_type in NATURAL_FIELDS
    content = payload.model_dump(mode="json") if has_fields else None
    key = fact_key(fact.source, payload, fact.ref, content=content)
    if key is None:
        return None
    child = child_named(fact.subject) if named is _UNNAMED else named
    if child is None:
        return None
    if content is None:
        content = payload.model_dump(mode="json")
    return f"{fact.source.agency}|nk|{_digest(key, child, payload.event_type, content)}"


T = TypeVar("T")


def group_versions(
    items: Sequence[T], key_of: Callable[[T], str | None]
) -> list[tuple[T, list[T]]]:
    """(current, earlier versions) for each fact of a child's record, in `items`' order
    of their current versions: items sharing a key are versions of one fact, the last in
    `items` (the latest recorded) is current; an item without a key stands alone."""
    groups: dict[str, list[T]] = {}
    order: list[tuple[str | None, T]] = []
    for item in items:
        key = key_of(item)
        if key is None:
            order.append((None, item))
        else:
            if key not in groups:
                order.append((key, item))
            groups.setdefault(key, []).append(item)
    out: list[tuple[T, list[T]]] = []
    for key, item in order:
        if key is None:
            out.append((item, []))
        else:
            versions = groups[key]
            out.append((versions[-1], versions[:-1]))
    return out
