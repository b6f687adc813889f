"""Natural keys: what makes two facts from one source the same fact, whatever message
carried them.

An agency restates its facts: each annual CIN census repeats a child's open episode, plan
and disabilities; a school's next CTF repeats the SEN history; a FHIR server re-sends a
resource unchanged. The message id (a content hash) differs each time, so the message-
scoped idempotency key (agency, message, place in the message) would take each restatement
as a new fact. A fact's natural key is its source (agency and organisation), the child as
the source names them (every identifier and demographic it sent), its type and the
payload fields that identify it in its own format — a CIN episode by its referral date, an
SEN status by its start date, a FHIR resource by its id (`Source.record_id`, which the FHIR
adapter sets; older facts by the part of their ref that names the resource).
`restatement_key` adds what tells the versions of one fact apart: for a record the source
versions (a FHIR resource's `meta.versionId`, else its `meta.lastUpdated`, carried on
`Source.record_version` / `record_updated`) the version itself — the same resource at the
same version is the same fact whatever else differs (its narrative, `meta.source`, the
bundle it came in); for every other fact a digest of the payload. The same key in any
message is answered `duplicate` by the write side's idempotency claims (absorbed); another
version or other content is a correction, appended as a new version. `fact_key` (no
subject, no content) groups the versions of one fact in a child's record
(`group_versions`): the views show the current version with its history. The current
version is the newest by the source's own versions (`version_rank`: `meta.versionId` when
it is a number, then `meta.lastUpdated`), so an older version that arrives late is kept in
the history and never made current; facts without source versions are ordered by arrival.

Keys are SHA-256 digests: no identifier or value is ever written in one. Pure functions:
the same facts give the same keys and the same current versions in every process, after
every restart and rebuild.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
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


def _digest(*parts: object, secret: bytes | None = None) -> str:
    data = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    if secret is not None:
        return hmac.digest(secret, data, "sha256").hex()[:40]
    return hashlib.sha256(data).hexdigest()[:40]


@functools.lru_cache(maxsize=4096)
def _fields_digest(
    agency: str, organisation: str | None, event_type: str, values: tuple[str | None, ...]
) -> str:
    """`fact_key`'s digest of a natural key whose fields are strings (a tuple is dumped as
    the list it was): made once for the many facts that share it (a census restates)."""
    return _digest(agency, organisation, event_type, values)


def child_named(subject: Subject) -> dict[str, object] | None:
    """The child exactly as the source names them (every identifier and demographic it
    sent): a fact restated about the same child as before is the same fact, while one
    naming the child differently (another date of birth, an added identifier) goes through
    identity resolution again, so a contradiction still reaches the match queue."""
    if type(subject) is Subject:  # its fields are strings and a date: their JSON form
        named: dict[str, object] = {
            k: v.isoformat() if type(v) is date else v
            for k, v in subject.__dict__.items()
            if v is not None
        }
    else:
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
        values = tuple(data.get(f) for f in fields)
        if all(v is None or type(v) is str for v in values):  # JSON strings: one digest each
            return _fields_digest(
                source.agency, source.organisation_code, payload.event_type, values
            )
        return _digest(source.agency, source.organisation_code, payload.event_type, values)
    if source.record_id:
        resource, _, part = source.record_id.partition("#")
        return _digest(source.agency, payload.event_type, resource, part)
    match = _FHIR_RESOURCE.search(ref)
    if match is not None:
        return _digest(source.agency, payload.event_type, match[1], match[2])
    return None


def source_version(source: Source) -> tuple[str, str] | None:
    """The source's own version of the record a fact reads (FHIR `meta.versionId`, else
    `meta.lastUpdated`), or None when it sent none."""
    if source.record_version:
        return ("versionId", source.record_version)
    if source.record_updated is not None:
        return ("lastUpdated", source.record_updated.isoformat())
    return None


_NO_RANK = float("-inf")


def version_rank(source: Source) -> tuple[float, float]:
    """How new a version of a record is by the source's own account: its `meta.versionId`
    when that is a whole number, then its `meta.lastUpdated`. A version that says neither
    ranks below one that does; versions of equal rank keep their order of arrival."""
    v = source.record_version
    number = float(v) if v is not None and _WHOLE.fullmatch(v) else _NO_RANK
    updated = source.record_updated.timestamp() if source.record_updated is not None else _NO_RANK
    return (number, updated)


_WHOLE = re.compile(r"\d{1,15}")


_UNNAMED: Any = object()


def restatement_key(
    fact: InboundFact,
    named: dict[str, object] | None = _UNNAMED,
    *,
    secret: bytes | None = None,
    content: Mapping[str, Any] | None = None,
) -> str | None:
    """The fact's idempotency key across messages: its natural key and its source version
    (a FHIR resource's versionId or lastUpdated) when it has one, else a digest of its
    content; so a restatement in another message is the same key (absorbed) and a
    correction (a new version, other content) is not. None when the fact has no natural
    key (the message-scoped key applies). `named`: `child_named(fact.subject)`, when the
    caller has it already (the facts of one subject share it). `secret`: the key is an
    HMAC under it (the hub's, derived from the master key), so that a key kept on the log
    after the child's erasure cannot confirm a guess of who they were or what was said.
    `content`: the payload's JSON form, when the caller has it already."""
    payload = fact.payload
    version = source_version(fact.source)
    has_fields = payload.event_type in NATURAL_FIELDS
    if content is None and has_fields and version is None:
        content = payload.model_dump(mode="json")
    key = fact_key(fact.source, payload, fact.ref, content=content)
    if key is None:
        return None
    child = child_named(fact.subject) if named is _UNNAMED else named
    if child is None:
        return None
    if version is not None:  # the same version of the same record: the same fact
        digest = _digest(key, child, payload.event_type, version, secret=secret)
        return f"{fact.source.agency}|nk|{digest}"
    if content is None:
        content = payload.model_dump(mode="json")
    digest = _digest(key, child, payload.event_type, content, secret=secret)
    return f"{fact.source.agency}|nk|{digest}"


T = TypeVar("T")


def group_versions(
    items: Sequence[T],
    key_of: Callable[[T], str | None],
    rank_of: Callable[[T], tuple[float, float]] | None = None,
) -> list[tuple[T, list[T]]]:
    """(current, earlier versions) for each fact of a child's record, in `items`' order
    of each fact's first version: items sharing a key are versions of one fact, ordered
    by `rank_of` (the source's versions, `version_rank`) and then by their order in `items`
    (the order recorded); the last is current. An item without a key stands alone."""
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
            if rank_of is not None:
                versions = sorted(versions, key=rank_of)  # stable: ties keep arrival order
            out.append((versions[-1], versions[:-1]))
    return out


def current_versions(
    items: Sequence[T],
    key_of: Callable[[T], str | None],
    rank_of: Callable[[T], tuple[float, float]],
) -> list[T]:
    """`items` (in their order) without the versions a newer one by the source's own
    versions supersedes, for views that fold facts in log order: where no version of a
    fact carries a source version, all are kept (the last folded is the latest recorded);
    where one does, only the current one (`group_versions`) is kept, so an older version
    that arrived late does not overwrite the newer."""
    dropped: set[int] = set()
    for current, earlier in group_versions(items, key_of, rank_of):
        if earlier and any(rank_of(v) != (_NO_RANK, _NO_RANK) for v in (current, *earlier)):
            dropped.update(id(v) for v in earlier)
    return [item for item in items if id(item) not in dropped]
