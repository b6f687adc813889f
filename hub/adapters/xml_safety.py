"""Safe reading of agency files, shared by the inbound adapters: XML parsed only through
defusedxml with DTDs, entity declarations and external references forbidden (so billion
laughs and XXE are refused, never expanded or fetched), JSON decoded with its syntax errors
located, either failure a `PermanentError` naming the line and column; and the helpers
every adapter needs to read values without echoing them — dates, agency-local times to
UTC, payloads built or explained as `NotTaken`, JSON parts validated one at a time, and
content-hash message ids.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET  # types and ParseError only: parsing is defusedxml's
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, tzinfo
from functools import lru_cache
from typing import Any, Literal, TypeVar
from xml.parsers import expat

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring as defused_fromstring
from pydantic import BaseModel, ValidationError

from hub.errors import PermanentError
from hub.ingest.model import NotTaken

Element = ET.Element
P = TypeVar("P", bound=BaseModel)

RULE_DATE_FORMAT = "hub.date_format"
RULE_DATE_IN_FUTURE = "hub.date_in_future"
RULE_DATES_IN_ORDER = "hub.dates_in_order"
RULE_CODE_LIST = "hub.code_list"
RULE_REQUIRED = "hub.required"
RULE_NUMBER = "hub.number_format"
RULE_PAYLOAD = "hub.payload"
RULE_SUBJECT = "hub.subject"
RULE_NOT_READ = "hub.not_read"
"""Rule names for checks that are the hub's own (not a DfE validator's numbered rule)."""


def parse_xml(data: bytes, *, document: str) -> Element:
    """Parse `data` as XML with every dangerous feature refused; namespaces are stripped
    from tag names. Raises `PermanentError` for anything that is not well-formed, safe XML."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PermanentError(f"{document} must be sent as bytes", field="body")
    try:
        root: Element = defused_fromstring(
            bytes(data), forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden):
        raise PermanentError(
            f"{document}: XML with a document type declaration or entity declarations is "
            "refused (entities are never expanded and external references never fetched)",
            field="xml.doctype",
        ) from None
    except ET.ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        code = getattr(exc, "code", None)
        what = expat.ErrorString(code) if isinstance(code, int) else "not well-formed"
        raise PermanentError(
            f"{document} is not well-formed XML: {what} at line {line}, column {column}",
            field="xml",
        ) from None
    except (LookupError, UnicodeError):
        raise PermanentError(
            f"{document}: the XML declares a character encoding that is unknown or does not "
            "match its bytes",
            field="xml.encoding",
        ) from None
    except (ValueError, RecursionError, OverflowError):
        raise PermanentError(f"{document} could not be read as XML", field="xml") from None
    for el in root.iter():
        tag = el.tag
        if isinstance(tag, str) and tag[:1] == "{":
            el.tag = tag.rpartition("}")[2]
    return root


def text_of(el: Element | None, path: str) -> str | None:
    """The stripped text at `path` under `el`, or None when absent or blank."""
    if el is None:
        return None
    value = el.findtext(path)
    if value is None:
        return None
    value = value.strip()
    return value or None


def leaf_texts(el: Element) -> dict[str, str]:
    """The stripped, non-blank texts of `el`'s children by tag (the last of a repeated
    tag wins): one pass instead of a search per field."""
    out: dict[str, str] = {}
    for child in el:
        text = child.text
        if text is not None and isinstance(child.tag, str):
            text = text.strip()
            if text:
                out[child.tag] = text
    return out


def element_paths(*groups: tuple[str, tuple[str, ...]]) -> frozenset[str]:
    """The paths an adapter reads (below the root, `/`-joined, no indices), from (parent,
    children) groups; each parent is itself a path."""
    return frozenset(
        path for parent, kids in groups for path in (parent, *(f"{parent}/{k}" for k in kids))
    )


RULE_STRAY_TEXT = "hub.stray_text"


def report_unread(
    root: Element,
    taken: frozenset[str],
    not_taken: list[NotTaken],
    *,
    ref_of: Callable[[str], str],
    reasons: Mapping[str, str],
    default: str,
) -> None:
    """Account for every element of a document: an element whose path (tags from below
    the root, `/`-joined, no indices) is not in `taken` gets one not-taken line per path
    (`hub.not_read`, the reason by tag from `reasons`, else `default`) and its subtree is
    not walked; text beside child elements (mixed content, which no format here has) gets
    one `hub.stray_text` line per path. `ref_of` turns a path into the adapter's ref style
    (e.g. `Pupil[*]/Address/Easting`). So nothing a file holds is dropped unexplained."""
    seen: set[str] = set()
    kids: dict[str, dict[str, str]] = {}  # parent path -> {child tag: child path} taken
    for t in taken:
        parent, _, tag = t.rpartition("/")
        kids.setdefault(parent, {})[tag] = t

    def note(path: str, tag: str, reason: str, rule: str) -> None:
        if path not in seen:
            seen.add(path)
            not_taken.append(
                NotTaken(ref=ref_of(path), reason=reason, kind="unsupported", field=tag, rule=rule)
            )

    def walk(el: Element, path: str, known: dict[str, str]) -> None:
        text = el.text
        if (text and not text.isspace()) or any(c.tail and not c.tail.isspace() for c in el):
            note(
                f"{path}#text" if path else "#text", el.tag,
                "text beside the child elements is not read (it is no element of the format)",
                RULE_STRAY_TEXT,
            )  # fmt: skip
        for child in el:
            tag = child.tag
            sub = known.get(tag) if isinstance(tag, str) else None
            if sub is None:
                if isinstance(tag, str):
                    full = f"{path}/{tag}" if path else tag
                    note(full, tag, reasons.get(full) or reasons.get(tag, default), RULE_NOT_READ)
                continue
            below = kids.get(sub)
            if below is not None or len(child):
                walk(child, sub, below or {})

    walk(root, "", kids.get("", {}))


def content_message_id(kind: str, data: bytes) -> str:
    """A message id for a file whose header carries none: `<kind>:sha256:<hex>` of its bytes,
    so the same file delivered twice has the same id."""
    return f"{kind}:sha256:{hashlib.sha256(bytes(data)).hexdigest()}"


_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:Z|[+-]\d{2}:\d{2})?$")
_UK_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def parse_date(value: str) -> date:
    """An ISO (xs:date, optional zone) or UK dd/mm/yyyy date. Raises ValueError."""
    m = _ISO_DATE.match(value)
    if m:
        return date(int(m[1]), int(m[2]), int(m[3]))
    m = _UK_DATE.match(value)
    if m:
        return date(int(m[3]), int(m[2]), int(m[1]))
    raise ValueError("not a date")


@lru_cache(maxsize=1)
def _uk_zone() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/London")
    except Exception:  # no tz database on this machine: fall back to UTC
        return UTC


def parse_local_datetime(value: str) -> datetime:
    """An xs:dateTime; without an offset it is agency-local (UK) time. Returns UTC."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_uk_zone())
    return parsed.astimezone(UTC)


def day_start(d: date) -> datetime:
    """Midnight UTC at the start of `d`: the `occurred_at` of a fact known only by its date."""
    return datetime.combine(d, time(0, 0), tzinfo=UTC)


def validation_not_taken(
    exc: ValidationError,
    ref: str,
    *,
    fields: Mapping[str, str] | None = None,
    rule: str = RULE_PAYLOAD,
) -> list[NotTaken]:
    """One `NotTaken` per error in `exc`, naming the field (mapped to the sender's element
    name through `fields`) and pydantic's reason; input values are never included."""
    out: list[NotTaken] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [str(p) for p in err.get("loc", ())]
        name = ".".join(loc) if loc else None
        if fields and loc and loc[0] in fields:
            name = ".".join([fields[loc[0]], *loc[1:]])
        out.append(NotTaken(ref=ref, reason=str(err.get("msg", "invalid")), field=name, rule=rule))
    return out


def build_payload(
    cls: type[P],
    ref: str,
    not_taken: list[NotTaken],
    values: dict[str, Any],
    *,
    fields: Mapping[str, str] | None = None,
) -> P | None:
    """`cls(**values)`, or None with the reasons appended to `not_taken`."""
    try:
        return cls(**values)
    except ValidationError as exc:
        not_taken.extend(validation_not_taken(exc, ref, fields=fields))
        return None


class Reader:
    """Reads typed values out of elements for one adapter run, recording a `NotTaken` for
    each value it cannot read (by element name and rule, never by value)."""

    def __init__(self, not_taken: list[NotTaken]) -> None:
        self.not_taken = not_taken

    def reject(
        self,
        ref: str,
        field: str | None,
        reason: str,
        rule: str,
        kind: Literal["unsupported", "invalid", "duplicate"] = "invalid",
    ) -> None:
        self.not_taken.append(NotTaken(ref=ref, reason=reason, field=field, rule=rule, kind=kind))

    def date(
        self, value: str | None, ref: str, field: str, *, rule: str = RULE_DATE_FORMAT
    ) -> date | None:
        """A date, or None when absent; a malformed one is reported and read as None."""
        if value is None:
            return None
        try:
            return parse_date(value)
        except ValueError:
            self.reject(f"{ref}/{field}", field, "not a valid date (yyyy-mm-dd)", rule)
            return None

    def integer(self, value: str | None, ref: str, field: str) -> int | None:
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            self.reject(f"{ref}/{field}", field, "not a whole number", RULE_NUMBER)
            return None

    def code(
        self,
        value: str | None,
        allowed: Iterable[str],
        ref: str,
        field: str,
        *,
        rule: str = RULE_CODE_LIST,
    ) -> str | None:
        """`value` when it is in `allowed`; an unknown code is reported and read as None."""
        if value is None:
            return None
        if value in allowed:
            return value
        self.reject(f"{ref}/{field}", field, "code is not in the code list", rule)
        return None


def flag(value: str | None) -> bool | None:
    """An XML boolean as DfE files write it (true/false, TRUE/FALSE, 1/0, Y/N)."""
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "y", "yes"):
        return True
    if lowered in ("false", "0", "n", "no"):
        return False
    raise ValueError("not a boolean")


# --- JSON messages -------------------------------------------------------------------------


def parse_json(data: bytes, *, document: str) -> Any:
    """Decode a JSON message (UTF-8, -16 or -32). Raises `PermanentError` naming the line and
    column of a syntax error."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PermanentError(f"{document} must be sent as bytes", field="body")
    try:
        return json.loads(bytes(data))
    except json.JSONDecodeError as exc:
        raise PermanentError(
            f"{document} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            field="json",
        ) from None
    except UnicodeError:
        raise PermanentError(
            f"{document} is not UTF-8, UTF-16 or UTF-32 text", field="json.encoding"
        ) from None
    except (RecursionError, ValueError):
        raise PermanentError(f"{document} could not be read as JSON", field="json") from None


def validate_part(
    model: type[P],
    raw: object,
    ref: str,
    not_taken: list[NotTaken],
    *,
    lists: Iterable[str] = (),
    unknown: dict[str, str] | None = None,
    pattern: str = "",
) -> P | None:
    """Validate one object of a JSON message against `model`, with its `lists` (nested
    items, validated one by one by the caller) left empty, so one bad item costs only that
    item. Errors become `NotTaken` at `ref`; keys the model does not know are noted in
    `unknown` under `pattern` (the ref with indices as `*`)."""
    if not isinstance(raw, dict):
        not_taken.append(NotTaken(ref=ref, reason="not a JSON object", rule=RULE_PAYLOAD))
        return None
    shallow = dict(raw)
    for name in lists:
        if name in shallow:
            shallow[name] = []
    if unknown is not None:
        known = model.model_fields
        for key in raw:
            if key not in known and f"{pattern}/{key}" not in unknown:
                unknown[f"{pattern}/{key}"] = "unknown field: not read"
    try:
        return model.model_validate(shallow)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False, include_context=False):
            loc = "/".join(str(p) for p in err.get("loc", ()))
            not_taken.append(
                NotTaken(
                    ref=f"{ref}/{loc}" if loc else ref,
                    reason=str(err.get("msg", "invalid")),
                    field=loc.replace("/", ".") or None,
                    rule=RULE_PAYLOAD,
                )
            )
        return None


def items_of(raw: object, name: str, ref: str, not_taken: list[NotTaken]) -> list[Any]:
    """The list at `raw[name]` (absent: empty); anything else is reported and read as empty."""
    if not isinstance(raw, dict) or raw.get(name) is None:
        return []
    value = raw[name]
    if not isinstance(value, list):
        not_taken.append(
            NotTaken(ref=f"{ref}/{name}", reason="not a JSON array", field=name, rule=RULE_PAYLOAD)
        )
        return []
    return value
