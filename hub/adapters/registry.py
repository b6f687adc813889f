"""The one place that maps an inbound format to its adapter, and a channel plus a content
type to a format.

A format (`ctf`, `cin`, `ssda903`, `fhir`, `school-mis-json`, `social-care-json`,
`family-json`) names one adapter function, imported only when first used (the FHIR models
alone take ~200 ms to import). A channel is where a message arrives — the HTTP routes
`school-mis`, `fhir`, `social-care` and `family`, or a Kafka topic or bulk file where any
format may come (`any`) — and its media types decide the format: XML or JSON, CSV for
SSDA903 episodes, ndjson for FHIR bulk data. Where a media type is shared (XML on the
social-care channel is a CIN census or an SSDA903 return; JSON on `any`), the first bytes
decide, without parsing: the XML root element's name, or the JSON object's top-level
keys. `parse(format, data, content_type, agency, **opts)` runs the adapter; an unreadable
body raises `PermanentError` with the adapter's reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

import orjson

from hub.errors import PermanentError
from hub.ingest.model import AdapterResult

if TYPE_CHECKING:
    from hub.consent.policy import SharingPolicy

Format = Literal[
    "ctf", "cin", "ssda903", "fhir", "school-mis-json", "social-care-json", "family-json"
]
Channel = Literal["school-mis", "fhir", "social-care", "family", "any"]
FORMATS: Final[tuple[str, ...]] = get_args(Format)
CHANNELS: Final[tuple[str, ...]] = get_args(Channel)

XML = ("application/xml", "text/xml")
JSON = ("application/json", "text/json")
FHIR_JSON = ("application/fhir+json", "application/json+fhir")
FHIR_XML = ("application/fhir+xml", "application/xml+fhir")
NDJSON = ("application/fhir+ndjson", "application/ndjson", "application/x-ndjson")
CSV = ("text/csv", "application/csv")

_SNIFF_XML = "xml?"
_SNIFF_JSON = "json?"
_CHANNEL_TYPES: Final[dict[str, dict[str, str]]] = {
    "school-mis": {**dict.fromkeys(XML, "ctf"), **dict.fromkeys(JSON, "school-mis-json")},
    "fhir": dict.fromkeys((*FHIR_JSON, *JSON, *FHIR_XML, *XML, *NDJSON), "fhir"),
    "social-care": {
        **dict.fromkeys(XML, _SNIFF_XML),
        **dict.fromkeys(CSV, "ssda903"),
        **dict.fromkeys(JSON, "social-care-json"),
    },
    "family": dict.fromkeys(JSON, "family-json"),
    "any": {
        **dict.fromkeys(XML, _SNIFF_XML),
        **dict.fromkeys(JSON, _SNIFF_JSON),
        **dict.fromkeys((*FHIR_JSON, *FHIR_XML, *NDJSON), "fhir"),
        **dict.fromkeys(CSV, "ssda903"),
    },
}
_XML_ROOTS: Final[dict[str, str]] = {"CTfile": "ctf", "Message": "cin", "EXPSSDA903": "ssda903"}
_XML_DEFAULT: Final[dict[str, str]] = {"social-care": "cin", "any": "ctf"}
_HEAD = 65536
_ROOT = re.compile(rb"<([A-Za-z_][A-Za-z0-9_.:-]*)")
_FHIR_NS = b"http://hl7.org/fhir"
_JSON_KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("resourceType", "fhir"),
    ("pupils", "school-mis-json"),
    ("school", "school-mis-json"),
    ("children", "social-care-json"),
    ("la_code", "social-care-json"),
    ("child", "family-json"),
)


_CHANNEL_FORMATS: Final[dict[str, tuple[str, ...]]] = {
    "school-mis": ("ctf", "school-mis-json"),
    "fhir": ("fhir",),
    "social-care": ("cin", "ssda903", "social-care-json"),
    "family": ("family-json",),
    "any": FORMATS,
}
FORMAT_NAMES: Final[dict[str, str]] = {
    "ctf": "a DfE Common Transfer File (XML, root CTfile)",
    "cin": "a CIN census return (XML, root Message)",
    "ssda903": "an SSDA903 return (XML, root EXPSSDA903; or CSV tables with la_code)",
    "fhir": "FHIR R4 (JSON, XML in the FHIR namespace, or ndjson)",
    "school-mis-json": "the school MIS JSON form",
    "social-care-json": "the social care JSON form",
    "family-json": "the family JSON form",
}
"""Each format in words, as a refusal names what a route takes."""


def channel_formats(channel: str) -> tuple[str, ...]:
    """The formats a channel takes (an HTTP route takes only its own agencies' formats)."""
    return _CHANNEL_FORMATS[channel]


class WrongFormat(PermanentError):
    """The body is well-formed, in a media type the channel takes, but it is a message of
    another format (a CTF file on the social care route): 422, naming what it is and the
    formats the channel takes (`accepted`)."""

    rule = "hub.route_format"

    def __init__(self, detected: str, accepted: tuple[str, ...], where: str) -> None:
        super().__init__(
            f"this is {FORMAT_NAMES[detected]}, which {where} does not take; it takes "
            + "; ".join(FORMAT_NAMES[f] for f in accepted),
            field="format",
        )
        self.detected = detected
        self.accepted = accepted


class UnsupportedMediaType(PermanentError):
    """The channel takes no format in this media type; `supported` lists what it takes."""

    def __init__(self, media: str, supported: tuple[str, ...]) -> None:
        shown = media if re.fullmatch(r"[a-z0-9.+/-]{0,64}", media) else "that media type"
        super().__init__(
            f"unsupported media type {shown!r}; supported: {', '.join(supported)}",
            field="content-type",
        )
        self.supported = supported


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type value, lower-cased, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def supported_media_types(channel: str) -> tuple[str, ...]:
    return tuple(_CHANNEL_TYPES[channel])


def _xml_root(data: bytes) -> tuple[str | None, bool]:
    """The root element's local name in the first bytes (after the prolog; None when the
    body does not start with an element), and whether the FHIR namespace appears there.
    Never parses: a hostile document is the adapter's to refuse, with its reason."""
    head = bytes(data[:_HEAD])
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            head = head.decode("utf-16").encode()
        except UnicodeError:
            return None, False
    head = re.sub(rb"<\?.*?\?>|<!--.*?-->", b"", head, flags=re.S).lstrip()
    if head.startswith(b"<!"):  # a document type declaration: the adapter refuses it
        return None, False
    match = _ROOT.match(head)
    if match is None:
        return None, False
    name = match.group(1).decode("ascii").rsplit(":", 1)[-1]
    return name, _FHIR_NS in head[match.start() : match.start() + 512]


def _json_format(data: bytes) -> str:
    """Which JSON form a message is, from its top-level keys (a FHIR resource names its
    `resourceType`; the hub's own forms their lists)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:  # UTF-16 and UTF-32 too, as the JSON adapters read them
            doc = json.loads(bytes(data))
        except json.JSONDecodeError as exc:
            raise PermanentError(
                f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", field="json"
            ) from None
        except (UnicodeError, ValueError, RecursionError):
            raise PermanentError("not JSON in UTF-8, UTF-16 or UTF-32", field="json") from None
    keys = set(doc) if isinstance(doc, dict) else set()
    for key, fmt in _JSON_KEYS:
        if key in keys:
            return fmt
    raise PermanentError(
        "this JSON is none of the hub's message forms (a FHIR resource, or a school MIS, "
        "social care or family message): send it to its own route, or name its format",
        field="json",
    )


def detect_format(data: bytes) -> str | None:
    """Which format a body is, from its first bytes whatever media type it was sent as
    (XML: the root element's name or the FHIR namespace; JSON: the top-level keys), or
    None when it cannot be told (not well-formed, an unknown root or keys, CSV, ndjson):
    the adapter then says why."""
    head = bytes(data[:_HEAD]).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        root, fhir_ns = _xml_root(data)
        return "fhir" if fhir_ns else _XML_ROOTS.get(root or "")
    if head.startswith(b"{"):
        try:
            return _json_format(data)
        except PermanentError:  # ndjson, perhaps: its first line is a FHIR resource
            first = head.split(b"\n", 1)[0]
            try:
                doc = orjson.loads(first)
            except orjson.JSONDecodeError:
                return None
            return "fhir" if isinstance(doc, dict) and "resourceType" in doc else None
    return None


def check_format(fmt: str, data: bytes, *, accepted: tuple[str, ...], where: str) -> None:
    """Raise `WrongFormat` when the body is recognisably a format outside `accepted`
    (checked before `fmt`'s adapter reads it, so a CTF file is never read as CIN)."""
    if fmt == "fhir" and b'"resourceType"' in data[:_HEAD]:
        return  # FHIR JSON or ndjson (the adapter checks the rest): not parsed twice
    detected = detect_format(data)
    if detected is not None and detected not in accepted:
        raise WrongFormat(detected, accepted, where)


def format_for(channel: str, content_type: str | None, data: bytes = b"") -> str:
    """The format of a message arriving on `channel` with `content_type`; raises
    `UnsupportedMediaType` (415) when the channel takes nothing in that media type, and
    `WrongFormat` (422) when the body is a format of another channel. Without `data`
    only the media type is checked."""
    if channel not in _CHANNEL_TYPES:
        raise ValueError(f"unknown channel {channel!r}")
    media = media_type(content_type)
    fmt = _CHANNEL_TYPES[channel].get(media)
    if fmt is None:
        raise UnsupportedMediaType(media, supported_media_types(channel))
    if fmt == _SNIFF_JSON:
        return _json_format(data)
    if fmt == _SNIFF_XML:
        root, fhir_ns = _xml_root(data)
        if fhir_ns and channel == "any":
            return "fhir"
        fmt = _XML_ROOTS.get(root or "", _XML_DEFAULT[channel])
    if data and channel != "any":
        check_format(fmt, data, accepted=channel_formats(channel), where=f"the {channel} route")
    return fmt


# -- the adapters ---------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    la_code: str | None = None
    now: datetime | None = None
    header: bytes | None = None
    """The SSDA903 Header table CSV, sent beside an Episodes CSV (the command line)."""
    policy: SharingPolicy | None = None


def _ctf(data: bytes, content_type: str, agency: str, o: Options) -> AdapterResult:
    from hub.adapters.ctf import parse_ctf

    return parse_ctf(data, agency=agency, now=o.now)


def _cin(data: bytes, content_type: str, agency: str, o: Options) -> AdapterResult:
    from hub.adapters.cin import parse_cin

    return parse_cin(data, agency=agency, la_code=o.la_code, now=o.now)


def _ssda903(data: bytes, content_type: str, agency: str, o: Options) -> AdapterResult:
    from hub.adapters.ssda903 import parse_ssda903

    if not o.la_code or not re.fullmatch(r"[0-9]{3}", o.la_code):
        raise PermanentError(
            "an SSDA903 return names its local authority: send la_code (3 digits)",
            field="la_code",
        )
    return parse_ssda903(data, agency=agency, la_code=o.la_code, header=o.header, now=o.now)


def _fhir(data: bytes, content_type: str, agency: str, o: Options) -> AdapterResult:
    from hub.adapters.fhir import parse_fhir

    return parse_fhir(
        data, content_type=content_type, agency=agency, received_at=o.now, policy=o.policy
    )


def _school_mis_json(data: bytes, content_type: str, agency: str, o: Options) -> AdapterResult:
    from hub.adapters.school_mis_json import parse_school_mis_json

    return parse_school_mis_json(data, agency=agency, now=o.now)


def _social_care_json(data: bytes, content_type: str, agency: str, o: Options) -> AdapterResult:
    from hub.adapters.social_care_json import parse_social_care_json

    return parse_social_care_json(data, agency=agency, now=o.now)


def _family_json(data: bytes, content_type: str, agency: str, o: Options) -> AdapterResult:
    from hub.adapters.family import parse_family_json

    return parse_family_json(data, agency=agency, now=o.now)


_ADAPTERS: Final[Mapping[str, Callable[[bytes, str, str, Options], AdapterResult]]] = {
    "ctf": _ctf,
    "cin": _cin,
    "ssda903": _ssda903,
    "fhir": _fhir,
    "school-mis-json": _school_mis_json,
    "social-care-json": _social_care_json,
    "family-json": _family_json,
}
DEFAULT_CONTENT_TYPE: Final[dict[str, str]] = {
    "ctf": "application/xml",
    "cin": "application/xml",
    "ssda903": "text/csv",
    "fhir": "application/fhir+json",
    "school-mis-json": "application/json",
    "social-care-json": "application/json",
    "family-json": "application/json",
}


def parse(
    format: str,
    data: bytes,
    content_type: str | None,
    agency: str,
    *,
    la_code: str | None = None,
    now: datetime | None = None,
    header: bytes | None = None,
    policy: SharingPolicy | None = None,
) -> AdapterResult:
    """Run the adapter of `format` over one message (`header`: an SSDA903 Header CSV sent
    beside an Episodes CSV). Raises `PermanentError` when the body cannot be read at all
    (with the adapter's reason: field, position, rule). `policy` is the hub's sharing
    policy (FHIR Consent imports; default: the packaged one)."""
    adapter = _ADAPTERS.get(format)
    if adapter is None:
        raise PermanentError(f"unknown format; formats are: {', '.join(FORMATS)}", field="format")
    if not data:
        raise PermanentError("the body is empty", field="body")
    return adapter(
        bytes(data),
        content_type or DEFAULT_CONTENT_TYPE[format],
        agency,
        Options(la_code=la_code, now=now, header=header, policy=policy),
    )


def parse_for(
    channel: str,
    data: bytes,
    content_type: str | None,
    agency: str,
    **opts: Any,
) -> tuple[str, AdapterResult]:
    """`format_for` then `parse`: the format chosen, and the adapter's result."""
    fmt = format_for(channel, content_type, data)
    return fmt, parse(fmt, data, content_type, agency, **opts)
