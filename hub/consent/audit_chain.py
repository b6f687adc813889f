"""Tamper-evident audit records: canonical JSON, SHA-256 hash chains and verification.

Every audit record belongs to a chain (a child's id, or "global") and holds its place in
it (`seq`, from 1), the hash of the previous record (`prev_hash`, 64 zeros for the
first) and its own hash: SHA-256 over the previous hash followed by the canonical JSON
(sorted keys, no whitespace, UTF-8) of every other field. `verify_chain()` re-derives
every hash and link and names the first record that does not fit; `verify_lines()` also
insists each stored line is byte-for-byte canonical, so changing any one byte of a
stored trail is detected. Records hold ids and decisions, never personal data. Pure: the
storage of the trail is someone else's job.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from hub.events.trusted import trusted

GENESIS_HASH = "0" * 64

AuditKind = Literal[
    "decision",
    "release",
    "redaction",
    "erasure",
    "consent_change",
    "read",
    "key_created",
    "key_deleted",
    "retention",
    "coordinator_change",
    "sign_in_refused",
    "notification",
]

# Keys that would carry personal data; details hold ids and decisions only.
_FORBIDDEN_DETAIL_KEYS = frozenset(
    {
        "name",
        "given_name",
        "family_name",
        "surname",
        "forename",
        "dob",
        "date_of_birth",
        "birth_date",
        "nhs_number",
        "upn",
        "address",
        "postcode",
        "email",
        "phone",
        "telephone",
        "payload",
    }
)

DetailValue = str | int | bool | None | list[Any] | dict[str, Any]


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8 (orjson with OPT_SORT_KEYS).
    Pydantic models are dumped in JSON mode first."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, record_body: Mapping[str, Any] | BaseModel) -> str:
    """SHA-256 (hex) over `prev_hash` (ASCII hex) followed by the canonical body."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(record_body))
    return digest.hexdigest()


_PLAIN = frozenset({str, int, bool, type(None)})
"""Values taken as they are (exact types; subclasses go through the full check)."""


def _check_details(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: keys must be strings")
            if key.lower() in _FORBIDDEN_DETAIL_KEYS:
                raise ValueError(f"{path}.{key}: audit details hold ids, not personal data")
            if type(inner) not in _PLAIN:
                _check_details(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            if type(inner) not in _PLAIN:
                _check_details(inner, f"{path}[{i}]")
    elif isinstance(value, float):
        raise ValueError(f"{path}: floats are not allowed (their text form is not canonical)")
    elif value is not None and not isinstance(value, (str, int, bool)):
        raise ValueError(f"{path}: only strings, integers, booleans, null, lists and objects")


class AuditRecord(BaseModel):
    """One link of an audit chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: uuid.UUID
    chain: str = Field(min_length=1, max_length=128)
    seq: int = Field(ge=1)
    kind: AuditKind
    at: datetime
    actor: str = Field(min_length=1, max_length=256, description="Principal or system id")
    child_id: str | None = Field(default=None, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a timezone")
        return value

    @field_validator("details")
    @classmethod
    def _ids_only(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_details(value, "details")
        return value

    def body(self) -> dict[str, Any]:
        """Everything the hash covers: every field but `hash`, in JSON form."""
        return self.model_dump(mode="json", exclude={"hash"})

    def expected_hash(self) -> str:
        return chain_hash(self.prev_hash, self.body())

    def to_line(self) -> bytes:
        """The record's canonical JSON, as stored (one line of a JSON-lines trail)."""
        return canonical_json(self.model_dump(mode="json"))


def seal(
    prev: AuditRecord | None,
    *,
    chain: str,
    kind: AuditKind,
    at: datetime,
    actor: str,
    child_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    record_id: uuid.UUID | None = None,
) -> AuditRecord:
    """The next record of `chain` after `prev` (None for the first), hashed."""
    return seal_line(
        prev,
        chain=chain,
        kind=kind,
        at=at,
        actor=actor,
        child_id=child_id,
        details=details,
        record_id=record_id,
    )[0]


def seal_line(
    prev: AuditRecord | None,
    *,
    chain: str,
    kind: AuditKind,
    at: datetime,
    actor: str,
    child_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    record_id: uuid.UUID | None = None,
) -> tuple[AuditRecord, bytes]:
    """`seal`, with the record's stored line (`to_line()`), made in one pass.

    Input that plainly meets every rule of `AuditRecord` (the gate's own entries) is
    hashed from its JSON form directly and the record built without validating it again;
    anything else goes through the model's validation, which raises its usual errors.
    Both give the same record and the same bytes."""
    if prev is not None and prev.chain != chain:
        raise ValueError("the previous record belongs to another chain")
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS_HASH if prev is None else prev.hash
    rid = record_id or uuid.uuid4()
    kept = dict(details or {})
    if not _plainly_valid(chain, kind, at, actor, child_id, kept):
        body: dict[str, Any] = {
            "record_id": rid,
            "chain": chain,
            "seq": seq,
            "kind": kind,
            "at": at,
            "actor": actor,
            "child_id": child_id,
            "details": kept,
            "prev_hash": prev_hash,
        }
        draft = AuditRecord.model_validate({**body, "hash": GENESIS_HASH})
        record = draft.model_copy(update={"hash": draft.expected_hash()})
        return record, record.to_line()
    data: dict[str, Any] = {
        "record_id": str(rid),
        "chain": chain,
        "seq": seq,
        "kind": kind,
        "at": _at_json(at),
        "actor": actor,
        "child_id": child_id,
        "details": kept,
        "prev_hash": prev_hash,
    }
    hashed = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(hashed)
    hash_ = digest.hexdigest()
    # the stored line is the body with "hash" in its sorted place, just before "kind":
    # what follows "kind" at the top level (prev_hash, record_id, seq) is hex, a uuid and
    # a number, so the last `,"kind":"` is the top-level key
    cut = hashed.rfind(b',"kind":"')
    line = b"".join((hashed[:cut], b',"hash":"', hash_.encode("ascii"), b'"', hashed[cut:]))
    record = trusted(
        AuditRecord,
        {
            "record_id": rid,
            "chain": chain,
            "seq": seq,
            "kind": kind,
            "at": at,
            "actor": actor,
            "child_id": child_id,
            "details": kept,
            "prev_hash": prev_hash,
            "hash": hash_,
        },
    )
    return record, line


_KINDS = frozenset(get_args(AuditKind))
_ALLOWED_KEYS: set[str] = set()
"""Detail keys (exact `str`) already found not to name personal data."""
_AT_JSON: TypeAdapter[datetime] = TypeAdapter(datetime)
"""`AuditRecord.at` in JSON form, exactly as the model's serializer writes it."""
_LAST_AT: list[tuple[datetime, str]] = []
"""The last `at` written and its JSON form (a batch's entries share one time)."""


def _at_json(at: datetime) -> str:
    last = _LAST_AT[0] if _LAST_AT else None
    if last is not None and last[0] == at and last[0].tzinfo is at.tzinfo:
        return last[1]
    text: str = _AT_JSON.dump_python(at, mode="json")
    _LAST_AT[:] = [(at, text)]
    return text


def _plainly_valid(
    chain: Any, kind: Any, at: Any, actor: Any, child_id: Any, details: dict[str, Any]
) -> bool:
    """Whether the fields meet every rule of `AuditRecord` with nothing to convert (exact
    types only): then validating them again could neither change nor refuse them."""
    return (
        type(chain) is str
        and 1 <= len(chain) <= 128
        and type(kind) is str
        and kind in _KINDS
        and type(actor) is str
        and 1 <= len(actor) <= 256
        and (child_id is None or (type(child_id) is str and len(child_id) <= 64))
        and type(at) is datetime
        and at.utcoffset() is not None
        and _plain_details(details)
    )


def _plain_details(value: Any) -> bool:
    """`_check_details` as a test, for values of exact plain types only (anything else,
    or any doubt, is left to the full check)."""
    if type(value) is dict:
        for key, inner in value.items():
            if key not in _ALLOWED_KEYS:
                if type(key) is not str or key.lower() in _FORBIDDEN_DETAIL_KEYS:
                    return False
                if len(_ALLOWED_KEYS) < 4096:  # the keys our own entries use, remembered
                    _ALLOWED_KEYS.add(key)
            if type(inner) not in _PLAIN and not _plain_details(inner):
                return False
        return True
    if type(value) is list:
        return all(type(inner) in _PLAIN or _plain_details(inner) for inner in value)
    return type(value) in _PLAIN


class BrokenLink(BaseModel):
    """The first record that does not fit its chain, and why."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="0-based position in the input")
    record_id: str | None
    chain: str | None
    seq: int | None
    reason: str


class ChainProblem(BaseModel):
    """A chain that does not match its signed head, or the set of chains the trail keeps."""

    model_config = ConfigDict(frozen=True)

    chain: str
    reason: str
    head_seq: int | None = Field(default=None, description="The seq its signed head records")
    found: int = Field(description="Records of this chain found in the log")


class VerifyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    checked: int = Field(description="Records checked before stopping (all of them if ok)")
    chains: int = 0
    first_broken: BrokenLink | None = None
    heads: int = Field(default=0, description="Signed chain heads checked")
    problems: list[ChainProblem] = Field(
        default_factory=list, description="Chains that do not match their signed heads"
    )
    notes: list[str] = Field(default_factory=list)


def _broken(index: int, raw: Mapping[str, Any] | None, reason: str, checked: int) -> VerifyResult:
    raw = raw or {}
    rid = raw.get("record_id")
    chain = raw.get("chain")
    seq = raw.get("seq")
    return VerifyResult(
        ok=False,
        checked=checked,
        first_broken=BrokenLink(
            index=index,
            record_id=str(rid) if rid is not None else None,
            chain=chain if isinstance(chain, str) else None,
            seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            reason=reason,
        ),
    )


def _validation_reason(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"not a valid audit record: {loc}: {err['msg']}" if loc else err["msg"]


def verify_chain(
    records: Iterable[AuditRecord | Mapping[str, Any]],
    *,
    anchors: Mapping[str, tuple[int, str]] | None = None,
) -> VerifyResult:
    """Check every record's hash and link, chain by chain, in the order given (chains may
    interleave). A chain starts at seq 1 from the genesis hash unless `anchors` gives
    `{chain: (last_seq, last_hash)}` of an already verified prefix.

    A mapping must be the record's JSON form (as `to_line()` or `model_dump(mode="json")`
    give it): its hash is recomputed over exactly those values, so a change of
    representation (another spelling of the same time) is detected too."""
    last: dict[str, tuple[int, str]] = dict(anchors or {})
    checked = 0
    for index, item in enumerate(records):
        if isinstance(item, AuditRecord):
            record = item
            where: Mapping[str, Any] = item.model_dump(mode="json")
            expected = record.expected_hash()
        else:
            where = item
            try:
                record = AuditRecord.model_validate(item)
            except ValidationError as exc:
                return _broken(index, where, _validation_reason(exc), checked)
            expected = chain_hash(record.prev_hash, {k: v for k, v in item.items() if k != "hash"})
        prev_seq, prev_hash = last.get(record.chain, (0, GENESIS_HASH))
        if record.seq != prev_seq + 1:
            return _broken(
                index,
                where,
                f"sequence gap in chain {record.chain}: expected seq {prev_seq + 1}, found "
                f"{record.seq}",
                checked,
            )
        if record.prev_hash != prev_hash:
            return _broken(
                index, where, "prev_hash does not match the previous record's hash", checked
            )
        if record.hash != expected:
            return _broken(
                index, where, "hash does not match the record's content (altered)", checked
            )
        last[record.chain] = (record.seq, record.hash)
        checked += 1
    return VerifyResult(ok=True, checked=checked, chains=len(last))


def verify_lines(
    lines: Iterable[bytes | str],
    *,
    anchors: Mapping[str, tuple[int, str]] | None = None,
) -> VerifyResult:
    """Verify a stored trail of JSON lines: each must parse, be exactly the canonical form
    of its content, and fit its chain (see `verify_chain`). Reports the first problem in
    trail order."""
    parsed: list[Mapping[str, Any]] = []
    failure: tuple[int, Mapping[str, Any] | None, str] | None = None
    for index, line in enumerate(lines):
        raw = line.encode("utf-8") if isinstance(line, str) else bytes(line)
        raw = raw.rstrip(b"\r\n")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            failure = (index, None, "not valid JSON (altered)")
            break
        if not isinstance(obj, dict):
            failure = (index, None, "not a JSON object (altered)")
            break
        if canonical_json(obj) != raw:
            failure = (index, obj, "not in canonical form (altered)")
            break
        parsed.append(obj)
    result = verify_chain(parsed, anchors=anchors)
    if not result.ok or failure is None:
        return result
    index, where, reason = failure
    return _broken(index, where, reason, result.checked)
