"""Signed chain heads, against a real SQLite log with its heads in SQLite and in
PostgreSQL: someone with write access to the log and the store, but not the key, cuts
the tail off a chain, deletes a chain, or moves a head back to match — and verify names
the chain and what is wrong; the writer refuses to extend a chain whose head does not
match its signature; the untouched trail verifies; the exported heads check offline
with the public key alone. (The Kafka log is not tampered here: records cannot be cut
off the end of a Kafka partition.)"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from hub.consent.audit_heads import HeadSigner, check_export
from hub.consent.audit_trail import AuditEntry
from hub.log import LogName, partition_for
from hub.store.audit_trail import AuditTrailTampered, LogAuditTrail, chain_name
from tests.contract.test_event_log import make_log
from tests.support.stores import make_store

SIGNER = HeadSigner(bytes(range(32)))
STORES = ["sqlite", "postgres"]
CHILDREN = [f"child-{i:03d}" for i in range(24)]


@pytest.fixture(params=STORES, ids=[f"sqlite-log+{s}-store" for s in STORES])
async def trail(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LogAuditTrail]:
    log = await make_log("sqlite", request, tmp_path)
    store = await make_store(request.param, request, tmp_path)
    await log.start()
    await store.start()
    try:
        t = LogAuditTrail(log, store, signer=SIGNER)
        for k in range(3):
            await t.append([read(c, k) for c in CHILDREN])
        yield t
    finally:
        await store.close()
        await log.close()


def read(child: str, n: int = 0) -> AuditEntry:
    return AuditEntry(kind="read", actor="coordinator:casey", child_id=child, details={"n": n})


def cut(tmp_path: Path, part: int, keep: int) -> None:
    """What an attacker with the log file does: drop the append-only trigger, delete."""
    with sqlite3.connect(tmp_path / "log.db") as db:
        db.execute("DROP TRIGGER IF EXISTS log_hub_audit_no_delete")
        db.execute("DELETE FROM log_hub_audit WHERE partition = ? AND offset >= ?", (part, keep))


async def chain_length(trail: LogAuditTrail, part: int) -> int:
    return len(await trail.read_all(part))


async def test_the_untouched_trail_verifies_against_every_signed_head(
    trail: LogAuditTrail,
) -> None:
    result = await trail.verify()
    assert result.ok, result
    assert result.checked == 3 * len(CHILDREN)
    assert result.heads == 3 and result.problems == [] and result.notes == []
    export = await trail.signed_heads()
    assert check_export(export.model_dump(mode="json")) == []
    assert [h.chain for h in export.heads] == [chain_name(p) for p in range(3)]
    for part, head in enumerate(export.heads):
        assert head.seq == await chain_length(trail, part)


async def test_a_chain_cut_short_is_named_as_truncated(
    trail: LogAuditTrail, tmp_path: Path
) -> None:
    held = await chain_length(trail, 1)
    cut(tmp_path, part=1, keep=held - 2)
    result = await trail.verify()
    assert not result.ok
    [problem] = result.problems
    assert problem.chain == chain_name(1)
    assert problem.reason.startswith("truncated")
    assert (problem.head_seq, problem.found) == (held, held - 2)


async def test_a_whole_chain_deleted_is_named(trail: LogAuditTrail, tmp_path: Path) -> None:
    held = await chain_length(trail, 2)
    cut(tmp_path, part=2, keep=0)
    result = await trail.verify()
    [problem] = result.problems
    assert (problem.chain, problem.head_seq, problem.found) == (chain_name(2), held, 0)
    assert "truncated" in problem.reason


async def test_a_chain_deleted_with_its_head_is_named(trail: LogAuditTrail, tmp_path: Path) -> None:
    cut(tmp_path, part=0, keep=0)
    async with trail._store.transaction() as tx:
        await tx.execute("DELETE FROM audit_head WHERE part = ?", (0,))
    result = await trail.verify()
    assert not result.ok
    [problem] = result.problems
    assert problem.chain == chain_name(0) and "no head" in problem.reason
    # a new trail on the same store does not recreate (and so launder) the deleted head
    again = await LogAuditTrail(trail._log, trail._store, signer=SIGNER).verify()
    assert [p.chain for p in again.problems] == [chain_name(0)]


async def test_a_head_moved_back_without_the_key_is_named_and_not_extended(
    trail: LogAuditTrail, tmp_path: Path
) -> None:
    held = await chain_length(trail, 1)
    cut(tmp_path, part=1, keep=held - 1)
    last = (await trail.read_all(1))[-1]
    rec = orjson.loads(last)
    async with trail._store.transaction() as tx:  # the head recomputed to match the cut
        await tx.execute(
            "UPDATE audit_head SET seq = ?, hash = ?, log_offset = ?, record = ? WHERE part = ?",
            (rec["seq"], rec["hash"], held - 2, last, 1),
        )
    result = await trail.verify()
    [problem] = result.problems
    assert problem.chain == chain_name(1) and "signature does not verify" in problem.reason
    on_one = [c for c in CHILDREN if _part(trail, c) == 1]
    with pytest.raises(AuditTrailTampered, match=chain_name(1)):
        await trail.append([read(on_one[0], 10)])
    assert await chain_length(trail, 1) == held - 1  # nothing written over it


def _part(trail: LogAuditTrail, child: str) -> int:
    return partition_for(child, trail._log.partitions(LogName.AUDIT))


async def test_a_head_signed_with_another_key_is_refused(trail: LogAuditTrail) -> None:
    other = LogAuditTrail(trail._log, trail._store, signer=HeadSigner(b"\x01" * 32))
    result = await other.verify()
    assert not result.ok
    assert [p.chain for p in result.problems] == [chain_name(p) for p in range(3)]


async def test_heads_from_before_signing_are_signed_once_then_never_again(
    trail: LogAuditTrail,
) -> None:
    async with trail._store.transaction() as tx:  # a store as it was before 0005
        await tx.execute("UPDATE audit_head SET signature = NULL")
    upgraded = LogAuditTrail(trail._log, trail._store, signer=SIGNER)
    assert (await upgraded.verify()).ok
    async with trail._store.transaction() as tx:  # now one signature is stripped
        await tx.execute("UPDATE audit_head SET signature = NULL WHERE part = 2")
    later = LogAuditTrail(trail._log, trail._store, signer=SIGNER)
    result = await later.verify()
    assert [p.chain for p in result.problems] == [chain_name(2)]


async def test_exported_heads_detect_an_edit_offline(trail: LogAuditTrail) -> None:
    doc = (await trail.signed_heads()).model_dump(mode="json")
    doc["heads"][0]["seq"] -= 1
    doc["heads"][0]["statement"] = doc["heads"][0]["statement"].replace(
        f'"seq":{doc["heads"][0]["seq"] + 1}', f'"seq":{doc["heads"][0]["seq"]}'
    )
    assert check_export(doc) == [f"{chain_name(0)}: the signature does not verify"]
    stranger = HeadSigner(b"\x02" * 32)
    doc = (await trail.signed_heads()).model_dump(mode="json")
    foreign = check_export(doc, public_key=base64.b64encode(stranger.public_bytes).decode())
    assert len(foreign) == 3


async def test_a_trail_rewound_to_an_earlier_signed_state_is_named_against_an_export(
    trail: LogAuditTrail, tmp_path: Path
) -> None:
    """The one thing signatures cannot show: an earlier signed head put back with the
    log cut to match. The heads IG exported in between show it."""
    async with trail._store.transaction() as tx:
        [saved] = await tx.fetchall(
            "SELECT seq, hash, log_offset, record, signature FROM audit_head WHERE part = 1"
        )
    on_one = [c for c in CHILDREN if _part(trail, c) == 1]
    await trail.append([read(c, 5) for c in on_one])
    exported = await trail.signed_heads()
    cut(tmp_path, part=1, keep=int(saved[0]))
    async with trail._store.transaction() as tx:
        await tx.execute(
            "UPDATE audit_head SET seq = ?, hash = ?, log_offset = ?, record = ?, signature = ?"
            " WHERE part = 1",
            tuple(saved),
        )
    assert (await trail.verify()).ok  # every signature is genuine: alone, it cannot tell
    result = await trail.verify(exported)
    [problem] = result.problems
    assert problem.chain == chain_name(1) and problem.reason.startswith("rewound")
    assert (problem.head_seq, problem.found) == (int(saved[0]) + len(on_one), int(saved[0]))
    assert (await trail.verify(await trail.signed_heads())).ok
