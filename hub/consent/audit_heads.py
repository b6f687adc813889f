"""Signed chain heads: what each audit chain should hold, signed so it cannot be recomputed.

A hash chain shows that no record was altered, but not that none was cut off the end: a
shortened chain is still a valid chain. So the trail keeps each chain's head (its last
seq and hash) and signs it with an Ed25519 key derived from the master key
(`HeadSigner.from_master`). The signed statement is the canonical JSON of
`{"purpose", "chain", "seq", "hash", "chains"}`, where `chains` is how many chains the
trail keeps, so a chain deleted with its head is missed by the heads of the others.
`verify_against_heads()` checks each chain's records and then each chain against its
signed head: a head whose signature fails (edited without the key), a chain shorter than
its head (truncated), a record at the head's seq with another hash, a chain without a
head or a head without a chain are each named. Records after a head are legitimate (an
append interrupted between the log and the head update) and reported as a note.
`HeadsExport` is the document IG keeps: every signed head with the statement bytes and
the public key, so that `check_export()` (or any Ed25519 tool) checks it offline. Pure:
where the heads and records are stored is the trail's job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel, ConfigDict, Field

from hub.consent.audit_chain import (
    GENESIS_HASH,
    ChainProblem,
    VerifyResult,
    canonical_json,
    verify_lines,
)
from hub.consent.crypto import MasterKey

PURPOSE = "tac-hub.audit-head.v1"
SIGNING_KEY_PURPOSE = b"audit-head-signing"


class SignedHead(BaseModel):
    """One chain's head as signed: it holds `seq` records, the last hashing to `hash`."""

    model_config = ConfigDict(frozen=True)

    chain: str
    seq: int = Field(ge=0)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="64 zeros for an empty chain")
    chains: int = Field(ge=1, description="How many chains the trail keeps")
    signature: str = Field(description="Ed25519 over `statement`, base64")

    def statement(self) -> bytes:
        return statement_of(self.chain, self.seq, self.hash, self.chains)


def statement_of(chain: str, seq: int, hash_: str, chains: int) -> bytes:
    """The bytes a head's signature covers (canonical JSON)."""
    return canonical_json(
        {"purpose": PURPOSE, "chain": chain, "seq": seq, "hash": hash_, "chains": chains}
    )


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id_of(public: bytes) -> str:
    """A short name for a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public).hexdigest()[:16]


class HeadChecker:
    """Checks signed heads against one public key."""

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public
        self.public_bytes = _raw_public(public)
        self.key_id = key_id_of(self.public_bytes)

    @classmethod
    def from_base64(cls, text: str) -> HeadChecker:
        return cls(Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True)))

    def check(self, head: SignedHead) -> bool:
        try:
            signature = base64.b64decode(head.signature, validate=True)
            self._public.verify(signature, head.statement())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


class HeadSigner(HeadChecker):
    """Signs chain heads with an Ed25519 key made from a 32-byte seed."""

    def __init__(self, seed: bytes) -> None:
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        super().__init__(self._private.public_key())

    @classmethod
    def from_master(cls, master: MasterKey) -> HeadSigner:
        """The hub's head-signing key: derived from the master key (HKDF), so it needs no
        storage of its own and is out of reach of anyone without the master key."""
        return cls(master.derive(SIGNING_KEY_PURPOSE))

    def sign(self, chain: str, seq: int, hash_: str, chains: int) -> SignedHead:
        hash_ = hash_ or GENESIS_HASH
        signature = self._private.sign(statement_of(chain, seq, hash_, chains))
        return SignedHead(
            chain=chain,
            seq=seq,
            hash=hash_,
            chains=chains,
            signature=base64.b64encode(signature).decode("ascii"),
        )

    def __repr__(self) -> str:
        return f"HeadSigner(key_id={self.key_id})"


def verify_against_heads(
    chains: Mapping[str, Sequence[bytes]],
    heads: Mapping[str, SignedHead],
    expected: Collection[str],
    checker: HeadChecker,
    *,
    exported: HeadsExport | None = None,
) -> VerifyResult:
    """Verify each chain's records (`verify_lines`; the first broken record stops it), then
    each chain against its signed head and the set of chains the trail keeps; with
    `exported` (heads IG saved earlier), also that every chain still holds what it held
    then — which a trail rewound to an earlier signed state does not."""
    checked = 0
    problems: list[ChainProblem] = []
    notes: list[str] = []
    if exported is not None:
        problems.extend(_since_export(chains, exported, checker))
    for chain in sorted({*expected, *chains, *heads}):
        lines = chains.get(chain, ())
        result = verify_lines(lines)
        if not result.ok:
            return result.model_copy(update={"checked": checked + result.checked})
        checked += result.checked
        held = len(lines)

        def wrong(
            reason: str, head_seq: int | None = None, *, c: str = chain, found: int = held
        ) -> None:
            problems.append(ChainProblem(chain=c, reason=reason, head_seq=head_seq, found=found))

        if chain not in expected:
            wrong(f"not a chain this trail keeps (it keeps {len(expected)})")
        head = heads.get(chain)
        if head is None:
            wrong(f"no head recorded for this chain; the log holds {held} record(s)")
            continue
        if not checker.check(head):
            wrong("the head's signature does not verify (edited without the key)", head.seq)
            continue
        if head.chains != len(expected):
            wrong(f"the head was signed for {head.chains} chains, not {len(expected)}", head.seq)
        if held < head.seq:
            wrong(
                f"truncated: the signed head records {head.seq} record(s), the log holds {held}",
                head.seq,
            )
            continue
        last_hash = orjson.loads(lines[head.seq - 1])["hash"] if head.seq else GENESIS_HASH
        if last_hash != head.hash:
            wrong(f"record seq {head.seq} does not have the signed head's hash", head.seq)
        elif held > head.seq:
            notes.append(
                f"{chain}: {held - head.seq} record(s) after the signed head (an append "
                "interrupted before its head was updated; signed at the next append)"
            )
    return VerifyResult(
        ok=not problems,
        checked=checked,
        chains=sum(1 for lines in chains.values() if lines),
        heads=len(heads),
        problems=problems,
        notes=notes,
    )


def _since_export(
    chains: Mapping[str, Sequence[bytes]], exported: HeadsExport, checker: HeadChecker
) -> list[ChainProblem]:
    problems: list[ChainProblem] = []
    for h in exported.heads:
        lines = chains.get(h.chain, ())

        def wrong(reason: str, *, h: ExportedHead = h, found: int = len(lines)) -> None:
            problems.append(ChainProblem(chain=h.chain, reason=reason, head_seq=h.seq, found=found))

        head = SignedHead(
            chain=h.chain, seq=h.seq, hash=h.hash, chains=h.chains, signature=h.signature
        )
        if not checker.check(head):
            wrong("the exported head does not verify with this hub's key")
        elif len(lines) < h.seq:
            wrong(
                f"rewound: the head exported earlier records {h.seq} record(s), "
                f"the log holds {len(lines)}"
            )
        elif h.seq and orjson.loads(lines[h.seq - 1])["hash"] != h.hash:
            wrong(f"rewritten: record seq {h.seq} is not the one whose head was exported")
    return problems


class ExportedHead(BaseModel):
    chain: str
    seq: int
    hash: str
    chains: int
    statement: str = Field(description="The exact bytes signed (canonical JSON, UTF-8)")
    signature: str = Field(description="Ed25519 signature over `statement`, base64")


class HeadsExport(BaseModel):
    """The signed heads of every chain, with the key that checks them (for IG, offline)."""

    algorithm: Literal["Ed25519"] = "Ed25519"
    public_key: str = Field(description="The raw 32-byte Ed25519 public key, base64")
    key_id: str = Field(description="First 16 hex digits of the public key's SHA-256")
    chains: int = Field(description="How many chains the trail keeps")
    heads: list[ExportedHead]


def export_heads(heads: Sequence[SignedHead], checker: HeadChecker, chains: int) -> HeadsExport:
    return HeadsExport(
        public_key=base64.b64encode(checker.public_bytes).decode("ascii"),
        key_id=checker.key_id,
        chains=chains,
        heads=[
            ExportedHead(
                chain=h.chain,
                seq=h.seq,
                hash=h.hash,
                chains=h.chains,
                statement=h.statement().decode("utf-8"),
                signature=h.signature,
            )
            for h in sorted(heads, key=lambda h: h.chain)
        ],
    )


def check_export(doc: Mapping[str, Any], public_key: str | None = None) -> list[str]:
    """Problems with an exported heads document (empty: every head checks): each
    statement must be what its fields say and carry a valid signature under
    `public_key` (the one IG holds; the document's own when not given)."""
    export = HeadsExport.model_validate(doc)
    checker = HeadChecker.from_base64(public_key or export.public_key)
    problems: list[str] = []
    if len(export.heads) != export.chains:
        problems.append(f"{len(export.heads)} head(s) for {export.chains} chain(s)")
    for h in export.heads:
        head = SignedHead(
            chain=h.chain, seq=h.seq, hash=h.hash, chains=h.chains, signature=h.signature
        )
        if head.statement().decode("utf-8") != h.statement:
            problems.append(f"{h.chain}: the statement does not match the head's fields")
        elif not checker.check(head):
            problems.append(f"{h.chain}: the signature does not verify")
    return problems
