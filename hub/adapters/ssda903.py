"""Social care adapter for SSDA903 (children looked after) returns: the Episodes table as
CSV (with the Header table CSV when sent, or the Header table CSV on its own, told by its
columns) or the expanded XML (root EXPSSDA903/CHILD with
HEADER and EPISODE). Each episode becomes `social_care.looked_after_episode_recorded`
(DECOM, RNE, LS, CIN, PLACE, PLACE_PROVIDER, DEC, REC, REASON_PLACE_CHANGE, URN) and each
header row `social_care.child_identified`, the child named by CHILD qualified by the LA
code given as `la_code` (the files do not carry it). The DfE 903 rules on the fields read
are enforced by code (141-149, 178, 302, 356, 101, 102, 1008); postcodes, ethnicity,
reviews, missing episodes, adoption and health outcomes are not taken (data minimisation),
each reported once per file. The message id is the SHA-256 of the bytes (`ssda903:sha256:`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import get_args

from pydantic import ValidationError

from hub.adapters.xml_safety import (
    RULE_DATE_IN_FUTURE,
    RULE_NOT_READ,
    RULE_REQUIRED,
    RULE_SUBJECT,
    Reader,
    build_payload,
    content_message_id,
    day_start,
    element_paths,
    parse_date,
    parse_xml,
    report_unread,
    text_of,
    validation_not_taken,
)
from hub.errors import PermanentError
from hub.events.envelope import Source
from hub.events.social_care import (
    ChildIdentified,
    LegalStatus,
    LookedAfterEpisodeRecorded,
    LookedAfterNeed,
    PlacementProvider,
    PlacementType,
    ReasonEpisodeCeased,
    ReasonNewEpisode,
    ReasonPlaceChange,
)
from hub.ingest.model import AdapterResult, InboundFact, NotTaken, Subject

RULES: dict[str, str] = {
    "101": "Gender code is not valid.",
    "102": "Date of birth is not a valid date.",
    "141": "Date episode began is not a valid date.",
    "143": "The reason for new episode code is not a valid code.",
    "144": "The legal status code is not a valid code.",
    "145": "Category of need code is not a valid code.",
    "146": "Placement type code is not a valid code.",
    "147": "Date episode ceased is not a valid date.",
    "148": "Date episode ceased and reason episode ceased must both be coded, or both left blank.",
    "149": "Reason episode ceased code is not valid. ",
    "178": "Placement provider code is not a valid code.",
    "302": "First episode starts before child was born.",
    "356": "The date the episode ceased is before the date the same episode started.",
    "1008": "Ofsted Unique Reference Number (URN) is not valid.",
}
"""The 903 (2024-25) rules enforced, code -> the catalogue's message."""

EPISODE_CODES: dict[str, tuple[frozenset[str], str]] = {
    "RNE": (frozenset(get_args(ReasonNewEpisode)), "143"),
    "LS": (frozenset(get_args(LegalStatus)), "144"),
    "CIN": (frozenset(get_args(LookedAfterNeed)), "145"),
    "PLACE": (frozenset(get_args(PlacementType)), "146"),
}
PROVIDERS = frozenset(get_args(PlacementProvider))
REASONS_CEASED = frozenset(get_args(ReasonEpisodeCeased))
PLACE_CHANGES = frozenset(get_args(ReasonPlaceChange))
SEX_CODES = {"1": "M", "2": "F"}
UPN_UNKNOWN = frozenset(f"UN{n}" for n in range(1, 11))
_URN = re.compile(r"^(SC)?[0-9]{6,7}$")

EPISODE_COLUMNS = ("CHILD", "DECOM", "RNE", "LS", "CIN", "PLACE")
"""Columns an Episodes CSV must have; PLACE_PROVIDER, DEC, REC, REASON_PLACE_CHANGE and
URN are read when present."""
HEADER_COLUMNS = ("CHILD",)
_READ_EPISODE = frozenset(
    {
        "CHILD",
        "DECOM",
        "RNE",
        "LS",
        "CIN",
        "PLACE",
        "PL",
        "PLACE_PROVIDER",
        "DEC",
        "REC",
        "REASON_PLACE_CHANGE",
        "URN",
    }
)
_READ_HEADER = frozenset({"CHILD", "CHILDID", "SEX", "DOB", "UPN"})
_NOT_TAKEN_REASONS = {
    "HOME_POST": "the home postcode of a looked-after child is not needed by the hub "
    "(data minimisation)",
    "PL_POST": "the placement postcode locates a looked-after child: not taken (data minimisation)",
    "ETHNIC": "ethnicity is special category data not among the facts the hub takes "
    "(data minimisation)",
    "MOTHER": "whether the child is a mother is not among the facts the hub takes",
    "MC_DOB": "the date of birth of the child's own child is not taken",
    "UASC": "unaccompanied asylum-seeking status is not among the facts the hub takes",
    "AREVIEW": "looked-after reviews are not among the facts the hub takes",
    "AMISSING": "missing-from-placement episodes are not among the facts the hub takes",
    "OC2": "health and offending outcomes (OC2) are not among the facts the hub takes",
    "PERMANENCE": "previous permanence options are not among the facts the hub takes",
    "AD_PLACED": "adoption decisions are not among the facts the hub takes",
}
_DEFAULT_NOT_TAKEN = "not read by the hub's SSDA903 adapter"


def parse_ssda903(
    data: bytes,
    *,
    agency: str,
    la_code: str,
    header: bytes | None = None,
    now: datetime | None = None,
) -> AdapterResult:
    """Parse an SSDA903 file: the XML form when it starts with `<`, else an Episodes CSV
    (with `header`, the Header CSV, when given)."""
    head = bytes(data[:64]).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return parse_ssda903_xml(data, agency=agency, la_code=la_code, now=now)
    if header is None and csv_table(data) == "Header":  # the Header table on its own
        return parse_ssda903_csv(None, agency=agency, la_code=la_code, header=data, now=now)
    return parse_ssda903_csv(data, agency=agency, la_code=la_code, header=header, now=now)


def csv_table(data: bytes) -> str | None:
    """Which 903 table a CSV is, by its column names: `Episodes` (it has DECOM), `Header`
    (CHILD with SEX, DOB or UPN, and no DECOM), or None."""
    first = bytes(data[:4096]).split(b"\n", 1)[0].decode("utf-8-sig", "replace")
    columns = {c.strip().strip('"').upper() for c in first.split(",")}
    if "DECOM" in columns:
        return "Episodes"
    if "CHILD" in columns and columns & {"SEX", "DOB", "UPN"}:
        return "Header"
    return None


def parse_ssda903_csv(
    episodes: bytes | None,
    *,
    agency: str,
    la_code: str,
    header: bytes | None = None,
    now: datetime | None = None,
) -> AdapterResult:
    """Parse the Episodes CSV (and the Header CSV when given; either alone). The Header
    table is read first: its UPN and date of birth name each child in the episodes too, so
    they link on LA code + CHILD + the header's identifiers. Raises `PermanentError` when a
    file is not UTF-8 CSV with the required columns; bad rows are reported, not fatal."""
    reader = _Ssda903Reader(
        agency=agency, la_code=la_code, data=(episodes or b"") + (header or b""), now=now
    )
    header_rows = _csv_rows(header, "Header", HEADER_COLUMNS) if header is not None else ([], [])
    episode_rows = (
        _csv_rows(episodes, "Episodes", EPISODE_COLUMNS) if episodes is not None else ([], [])
    )
    for table, (columns, _rows) in (("Header", header_rows), ("Episodes", episode_rows)):
        read = _READ_HEADER if table == "Header" else _READ_EPISODE
        for column in columns:
            if column not in read:
                reader.not_read(f"{table}/{column}", column)
    for n, row in enumerate(header_rows[1], start=1):
        reader.read_header(row, f"Header/row[{n}]")
    for n, row in enumerate(episode_rows[1], start=1):
        reader.read_episode(row, f"Episodes/row[{n}]")
    reader.finish()
    return reader.result


def parse_ssda903_xml(
    data: bytes, *, agency: str, la_code: str, now: datetime | None = None
) -> AdapterResult:
    """Parse the expanded SSDA903 XML. Raises `PermanentError` when it is not well-formed,
    safe XML with the EXPSSDA903 root."""
    root = parse_xml(data, document="SSDA903")
    if root.tag != "EXPSSDA903":
        raise PermanentError(
            "the root element is not EXPSSDA903: not an SSDA903 return", field="EXPSSDA903"
        )
    reader = _Ssda903Reader(agency=agency, la_code=la_code, data=data, now=now)
    for i, child in enumerate(root.findall("CHILD"), start=1):
        head = child.find("HEADER")
        if head is not None:
            row = {el.tag: _clean(el.text) for el in head if isinstance(el.tag, str)}
            row["CHILD"] = row.get("CHILDID")
            reader.read_header(row, f"CHILD[{i}]/HEADER")
        child_id = text_of(head, "CHILDID") if head is not None else None
        for j, episode in enumerate(child.findall("EPISODE"), start=1):
            row = {el.tag: _clean(el.text) for el in episode if isinstance(el.tag, str)}
            row["CHILD"] = child_id
            if "PLACE" not in row:
                row["PLACE"] = row.get("PL")
            reader.read_episode(row, f"CHILD[{i}]/EPISODE[{j}]")
    reader.finish()
    report_unread(
        root, TAKEN_ELEMENTS, reader.result.not_taken,
        ref_of=_ref_of, reasons=_NOT_TAKEN_REASONS, default=_DEFAULT_NOT_TAKEN,
    )  # fmt: skip
    return reader.result


TAKEN_ELEMENTS = element_paths(
    ("CHILD", ("HEADER", "EPISODE")),
    ("CHILD/HEADER", tuple(sorted(_READ_HEADER - {"CHILD"}))),
    ("CHILD/EPISODE", tuple(sorted(_READ_EPISODE - {"CHILD"}))),
)
"""Every element the XML reader reads (below EXPSSDA903, without indices); every other
element gets a not-taken line (`report_unread`), so none is dropped unexplained."""


def _ref_of(path: str) -> str:
    """A path below EXPSSDA903 in the adapter's ref style: `CHILD[*]/HEADER/ETHNIC`."""
    return "CHILD[*]" + path[len("CHILD") :] if re.match(r"CHILD(?:$|[/#])", path) else path


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _csv_rows(
    data: bytes, table: str, required: Iterable[str]
) -> tuple[list[str], list[dict[str, str | None]]]:
    """The (normalised) column names and rows of one CSV table."""
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = bytes(data)[: exc.start].count(b"\n") + 1
        raise PermanentError(
            f"the {table} CSV is not UTF-8 text (line {line})", field=table
        ) from None
    rows: list[dict[str, str | None]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        first = next(reader, None)
        if first is None:
            raise PermanentError(f"the {table} CSV is empty", field=table)
        columns = [c.strip().upper() for c in first]
        missing = [c for c in required if c not in columns]
        if missing:
            raise PermanentError(
                f"the {table} CSV has no {', '.join(missing)} column", field=f"{table}.{missing[0]}"
            )
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            rows.append(
                {
                    name: _clean(record[k]) if k < len(record) else None
                    for k, name in enumerate(columns)
                }
            )
    except csv.Error:
        raise PermanentError(
            f"the {table} CSV cannot be read at line {reader.line_num}", field=table
        ) from None
    return columns, rows


class _Ssda903Reader:
    """State of one SSDA903 parse: children's header details, the result being built."""

    def __init__(self, *, agency: str, la_code: str, data: bytes, now: datetime | None) -> None:
        if not (
            isinstance(la_code, str)
            and len(la_code) == 3
            and (la_code.isascii() and la_code.isdigit())
        ):
            raise PermanentError(
                "la_code must be the 3-digit LA code of the return", field="la_code"
            )
        self.la_code = la_code
        self.now = (now or datetime.now(UTC)).astimezone(UTC)
        self.today = self.now.date()
        self.result = AdapterResult(message_id=content_message_id("ssda903", data))
        self.read = Reader(self.result.not_taken)
        self.unread: dict[str, str] = {}
        self.children: dict[str, tuple[str | None, date | None]] = {}
        """CHILD -> (UPN, date of birth) from the header, for the episodes' subject."""
        try:
            self.source = Source(
                agency=agency,
                organisation_code=la_code,
                system="SSDA903",
                message_id=self.result.message_id,
            )
        except ValidationError:
            raise PermanentError(
                "the agency name must be 1-64 characters", field="agency"
            ) from None

    def rule(self, ref: str, code: str, field: str) -> None:
        self.result.not_taken.append(NotTaken(ref=ref, reason=RULES[code], field=field, rule=code))

    def not_read(self, ref: str, field: str) -> None:
        if ref not in self.unread:
            self.unread[ref] = _NOT_TAKEN_REASONS.get(field, _DEFAULT_NOT_TAKEN)

    def finish(self) -> None:
        for ref, reason in self.unread.items():
            self.result.not_taken.append(
                NotTaken(
                    ref=ref,
                    reason=reason,
                    kind="unsupported",
                    field=ref.rsplit("/", 1)[-1],
                    rule=RULE_NOT_READ,
                )
            )

    def subject(self, child: str, ref: str) -> Subject | None:
        upn, dob = self.children.get(child, (None, None))
        try:
            return Subject(la_code=self.la_code, la_child_id=child, upn=upn, date_of_birth=dob)
        except ValidationError as exc:
            self.result.not_taken.extend(
                validation_not_taken(
                    exc, ref, rule=RULE_SUBJECT, fields={"la_child_id": "CHILD", "upn": "UPN"}
                )
            )
            return None

    def date_or_rule(
        self, value: str | None, ref: str, field: str, code: str
    ) -> tuple[date | None, bool]:
        """(date, ok): a present value that is not a date breaks rule `code`."""
        if value is None:
            return None, True
        try:
            return parse_date(value), True
        except ValueError:
            self.rule(f"{ref}/{field}", code, field)
            return None, False

    def read_header(self, row: Mapping[str, str | None], ref: str) -> None:
        child = row.get("CHILD")
        if child is None:
            self.read.reject(ref, "CHILD", "the row has no CHILD id", RULE_REQUIRED)
            return
        dob, _ = self.date_or_rule(row.get("DOB"), ref, "DOB", "102")
        if dob is not None and dob > self.today:
            self.read.reject(f"{ref}/DOB", "DOB", "DOB is after today", RULE_DATE_IN_FUTURE)
            dob = None
        raw_sex = row.get("SEX")
        sex = SEX_CODES.get(raw_sex or "")
        if raw_sex is not None and sex is None:
            self.rule(f"{ref}/SEX", "101", "SEX")
        raw_upn = row.get("UPN")
        upn, unknown = raw_upn, None
        if (
            raw_upn is not None
            and raw_upn.upper().startswith("UN")
            and (raw_upn[2:].isascii() and raw_upn[2:].isdigit())
        ):
            upn = None
            unknown = self.read.code(raw_upn.upper(), UPN_UNKNOWN, ref, "UPN")
        self.children[child] = (upn, dob)
        subject = self.subject(child, ref)
        if subject is None:
            return
        payload = build_payload(
            ChildIdentified,
            ref,
            self.result.not_taken,
            {
                "la_code": self.la_code,
                "la_child_id": child,
                "upn": upn,
                "upn_unknown_reason": unknown,
                "date_of_birth": dob,
                "sex": sex,
            },
            fields={"la_child_id": "CHILD", "upn": "UPN", "date_of_birth": "DOB", "sex": "SEX"},
        )
        if payload is not None:
            self.result.facts.append(
                InboundFact(
                    subject=subject,
                    payload=payload,
                    occurred_at=self.now,
                    source=self.source,
                    ref=ref,
                )
            )

    def read_episode(self, row: Mapping[str, str | None], ref: str) -> None:
        child = row.get("CHILD")
        if child is None:
            self.read.reject(ref, "CHILD", "the row has no CHILD id", RULE_REQUIRED)
            return
        broken: list[tuple[str, str]] = []
        start, ok = self.date_or_rule(row.get("DECOM"), ref, "DECOM", "141")
        if row.get("DECOM") is None:
            self.rule(f"{ref}/DECOM", "141", "DECOM")
            ok = False
        end, end_ok = self.date_or_rule(row.get("DEC"), ref, "DEC", "147")
        ok = ok and end_ok
        codes: dict[str, str | None] = {}
        for field, (allowed, code) in EPISODE_CODES.items():
            value = row.get(field)
            if value not in allowed:
                broken.append((code, field))
            codes[field] = value
        reason_ceased = row.get("REC")
        if reason_ceased is not None and reason_ceased not in REASONS_CEASED:
            broken.append(("149", "REC"))
        provider = row.get("PLACE_PROVIDER")
        if provider is not None and provider not in PROVIDERS:
            broken.append(("178", "PLACE_PROVIDER"))
        if start is not None and end is not None and end < start:
            broken.append(("356", "DEC"))
        dob = self.children.get(child, (None, None))[1]
        if start is not None and dob is not None and start < dob:
            broken.append(("302", "DECOM"))
        for code, field in broken:
            self.rule(f"{ref}/{field}", code, field)
        for name, when in (("DECOM", start), ("DEC", end)):
            if when is not None and when > self.today:
                self.read.reject(
                    f"{ref}/{name}", name, f"{name} is after today", RULE_DATE_IN_FUTURE
                )
                ok = False
        if broken or not ok or start is None:
            return
        if reason_ceased is not None and end is None:
            self.rule(f"{ref}/REC", "148", "REC")
            reason_ceased = None
        place_change = self.read.code(
            row.get("REASON_PLACE_CHANGE"), PLACE_CHANGES, ref, "REASON_PLACE_CHANGE"
        )
        urn = row.get("URN")
        if urn is not None and not _URN.match(urn):
            if urn.upper() not in ("XXXXXX", "XXXXXXX"):
                self.rule(f"{ref}/URN", "1008", "URN")
            urn = None
        subject = self.subject(child, ref)
        if subject is None:
            return
        payload = build_payload(
            LookedAfterEpisodeRecorded,
            ref,
            self.result.not_taken,
            {
                "start_date": start,
                "reason_new_episode": codes["RNE"],
                "legal_status": codes["LS"],
                "category_of_need": codes["CIN"],
                "placement_type": codes["PLACE"],
                "placement_provider": provider,
                "end_date": end,
                "reason_ceased": reason_ceased,
                "reason_place_change": place_change,
                "placement_urn": urn,
            },
            fields=_EPISODE_ELEMENTS,
        )
        if payload is not None:
            self.result.facts.append(
                InboundFact(
                    subject=subject,
                    payload=payload,
                    occurred_at=day_start(end or start),
                    source=self.source,
                    ref=ref,
                )
            )


_EPISODE_ELEMENTS = {
    "start_date": "DECOM",
    "reason_new_episode": "RNE",
    "legal_status": "LS",
    "category_of_need": "CIN",
    "placement_type": "PLACE",
    "placement_provider": "PLACE_PROVIDER",
    "end_date": "DEC",
    "reason_ceased": "REC",
    "reason_place_change": "REASON_PLACE_CHANGE",
    "placement_urn": "URN",
}
