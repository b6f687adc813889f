"""FHIR data types (as fhir.resources R4B models) read into the plain values of the hub's
health payloads: codings, concepts, quantities, observed values, dates and names.

Everything here reads attributes of already-validated FHIR models and returns dicts,
tuples and dates (never re-serialising a model), clipped to the payloads' length limits
so that a long display text shortens rather than fails. Partial dates (a year, or a year
and month) are not guessed into days: they read as None.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

Json = dict[str, Any]

_END_OF_DAY: Final = timedelta(days=1) - timedelta(microseconds=1)


def clip(value: Any, limit: int) -> str | None:
    """A string value, shortened to `limit` characters (with an ellipsis) when longer."""
    if value is None:
        return None
    text = str(value)
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fit(value: Any, limit: int) -> str | None:
    """A string value if it fits `limit` characters, else None (for identifiers and names
    used for matching, where a shortened value would be a different value)."""
    if value is None:
        return None
    text = str(value).strip()
    return text if text and len(text) <= limit else None


def coding(c: Any) -> Json:
    return {
        "system": clip(c.system, 256),
        "code": clip(c.code, 128),
        "display": clip(c.display, 512),
    }


def codings(concepts: Iterable[Any] | None) -> tuple[Json, ...]:
    """The codings of several CodeableConcepts, flattened."""
    return tuple(coding(c) for concept in concepts or () for c in concept.coding or ())


def concept(cc: Any) -> Json | None:
    if cc is None:
        return None
    return {
        "codings": tuple(coding(c) for c in cc.coding or ()),
        "text": clip(cc.text, 512),
    }


def concepts(ccs: Iterable[Any] | None) -> tuple[Json, ...]:
    return tuple(concept(cc) or {} for cc in ccs or ())


def first_code(cc: Any) -> str | None:
    """The first code of a CodeableConcept (for status-like concepts)."""
    if cc is None:
        return None
    for c in cc.coding or ():
        if c.code:
            return clip(c.code, 32)
    return None


def quantity(q: Any) -> Json | None:
    if q is None:
        return None
    return {
        "value": q.value,
        "comparator": q.comparator if q.comparator in ("<", "<=", ">=", ">") else None,
        "unit": clip(q.unit, 128),
        "system": clip(q.system, 256),
        "code": clip(q.code, 128),
    }


def when(value: Any) -> date | datetime | None:
    """A FHIR date or dateTime: a day, or an aware instant; partial dates read as None."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value
    return None


def instant(value: Any) -> datetime | None:
    """A FHIR date or dateTime as an aware instant (a day is its midnight, UTC)."""
    w = when(value)
    if w is None or isinstance(w, datetime):
        return w
    return datetime.combine(w, time(), UTC)


def _latest_instant(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(), UTC) + _END_OF_DAY


def ends_before_start(start: date | datetime | None, end: date | datetime | None) -> bool:
    """True when a period ends before it starts (a day-only end lasts all day)."""
    if start is None or end is None:
        return False
    if not isinstance(start, datetime) and not isinstance(end, datetime):
        return end < start
    first = instant(start)
    return first is not None and _latest_instant(end) < first


def observed_value(resource: Any, *, with_text: bool = True) -> Json | None:
    """An Observation's (or component's) `value[x]` as an ObservedValue dict."""
    v = resource.valueQuantity
    if v is not None:
        return {"kind": "quantity", "quantity": quantity(v)}
    v = resource.valueCodeableConcept
    if v is not None:
        return {"kind": "concept", "concept": concept(v)}
    v = resource.valueString
    if v is not None:
        return {"kind": "string", "text": clip(v, 4000) if with_text else None}
    v = resource.valueBoolean
    if v is not None:
        return {"kind": "boolean", "boolean": v}
    v = resource.valueInteger
    if v is not None:
        return {"kind": "integer", "integer": v}
    v = resource.valueRange
    if v is not None:
        return {"kind": "range", "low": quantity(v.low), "high": quantity(v.high)}
    v = resource.valueRatio
    if v is not None:
        return {"kind": "ratio", "low": quantity(v.numerator), "high": quantity(v.denominator)}
    v = resource.valueDateTime
    if v is not None:
        return {"kind": "datetime", "start": when(v)}
    v = resource.valuePeriod
    if v is not None:
        return {"kind": "period", "start": when(v.start), "end": when(v.end)}
    v = resource.valueTime
    if v is not None:
        return {"kind": "time", "text": clip(v, 32)}
    if resource.valueSampledData is not None:
        return {"kind": "sampled_data"}
    return None


def pick_name(names: Iterable[Any] | None) -> Any:
    """The name to use: official, else usual, else the first that is not old."""
    usable = [n for n in names or () if n.use not in ("old", "anonymous")]
    for use in ("official", "usual"):
        for n in usable:
            if n.use == use:
                return n
    return usable[0] if usable else None


def pick_address(addresses: Iterable[Any] | None) -> Any:
    """The current home address, else the first that is not old or billing-only."""
    usable = [
        a
        for a in addresses or ()
        if a.use not in ("old", "billing") and (a.period is None or a.period.end is None)
    ]
    for a in usable:
        if a.use == "home":
            return a
    return usable[0] if usable else None


def name_parts(name: Any) -> Json:
    if name is None:
        return {"given_names": (), "family_name": None, "name_text": None}
    return {
        "given_names": tuple(g for g in (clip(x, 128) for x in name.given or ()) if g),
        "family_name": clip(name.family, 128),
        "name_text": clip(name.text, 256),
    }


def telecoms(points: Iterable[Any] | None) -> tuple[Json, ...]:
    out: list[Json] = []
    for p in points or ():
        value = clip(p.value, 256)
        if value:
            out.append({"system": clip(p.system, 16), "value": value, "use": clip(p.use, 16)})
    return tuple(out)


def postal_address(a: Any) -> Json | None:
    if a is None:
        return None
    return {
        "lines": tuple(x for x in (clip(line, 256) for line in a.line or ()) if x),
        "city": clip(a.city, 128),
        "postcode": fit(a.postalCode, 16),
    }


def notes(annotations: Iterable[Any] | None) -> tuple[str, ...]:
    return tuple(t for t in (clip(a.text, 4000) for a in annotations or ()) if t)
