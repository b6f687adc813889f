"""Erasure by crypto-shredding through the real API (issue 3, "Done when" item 4).

A child with sealed personal data on both logs (facts shared with their coordinator and
facts still withheld) is erased by an admin. Afterwards: every data key of the child is
gone; a rebuild of every projection from offset 0 leaves no row for the child, while a
second child's rows come back intact; reading the raw logs yields only `ErasedPayload`
for the child's sealed facts and none of the personal values; every child route answers
404; the IG trail shows the erasure and still verifies; a new fact naming the erased
child is rejected with a reason. Wrong roles get 403 and a child that does not exist 404.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.bootstrap import load_master_key
from hub.consent.opener import data_key_id
from hub.consent.sealing import ErasedPayload, personal_fields
from hub.events import Envelope, registry
from hub.log import LogName, StoredRecord
from hub.store.keystore import SqlKeyStore
from tests.support.api import Api, embedded, running_api

UPN = "H801200001001"
NHS = "9434765919"
OTHER_UPN = "X801200001002"
DOB = "2015-03-02"

# Personal values the test puts in sealed fields; none may be readable after erasure.
SURNAME = "Quillfeather"
FORENAME = "Marigoldina"
VIEWS = "I like the blue bus and quiet corners at lunchtime"
WITHHELD_VIEWS = "Some days my tummy hurts before school"
PERSONAL = (SURNAME, FORENAME, VIEWS, WITHHELD_VIEWS)

CHILD_TABLES = ("shared_fact", "withheld_fact", "consent_event", "caseload")
# Projection tables that keep a child's id after erasure by design: the audit index (the
# trail holds ids and decisions, and must show the erasure) and the idempotency keys
# (source agency, message id, place in message: no personal data).
KEEPS_CHILD_ID = {"audit_entry", "ingest_dedupe"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        await a.key("oak-school-mis", "agency", "oak-school")
        await a.key("city-health", "agency", "city-health")
        await a.key("casey", "coordinator", "local_authority")
        await a.key("ig", "ig_auditor")
        await a.key("ops", "admin")
        yield a


def pupil(upn: str, message_id: str, surname: str, forename: str) -> dict[str, Any]:
    return {
        "event_type": "education.pupil_identified",
        "schema_version": 1,
        "subject": {"upn": upn, "nhs_number": NHS if upn == UPN else None, "date_of_birth": DOB},
        "source": {
            "agency": "oak-school",
            "organisation_code": "8881234",
            "message_id": message_id,
        },
        "occurred_at": "2024-09-02T09:00:00Z",
        "payload": {"upn": upn, "surname": surname, "forename": forename, "date_of_birth": DOB},
    }


def views(upn: str, message_id: str, text: str, category: str = "family_views") -> dict[str, Any]:
    return {
        "event_type": "family.views_recorded",
        "schema_version": 1,
        "subject": {"upn": upn},
        "source": {
            "agency": "oak-school",
            "organisation_code": "8881234",
            "message_id": message_id,
        },
        "occurred_at": "2024-09-03T09:00:00Z",
        "category": category,
        "payload": {"whose": "child", "recorded_on": "2024-09-03", "views": text},
    }


def consent(consent_id: str) -> dict[str, Any]:
    return {
        "consent": {
            "consent_id": consent_id,
            "decision": "permit",
            "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
            "given_on": "2024-09-04",
            "scope": {"categories": ["education", "family_views"], "roles": ["coordinator"]},
            "period": {"start": "2024-09-04"},
            "capture_method": "form",
            "recorded_by": "ignored",
        },
        "child_date_of_birth": DOB,
    }


async def ingest(api: Api, *events: dict[str, Any]) -> list[dict[str, Any]]:
    r = await api.client.post(
        "/ingest/events", json={"events": list(events)}, headers=api.auth("oak-school-mis")
    )
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


async def set_up_child(api: Api, upn: str, tag: str) -> tuple[str, list[str]]:
    """A child with education and family-views facts released to their coordinator by a
    consent, and a mental-health fact (no consent names it) still withheld. Returns the
    child id and the event ids of the sealed facts."""
    surname, forename, seen, unseen = (
        (SURNAME, FORENAME, VIEWS, WITHHELD_VIEWS)
        if tag == "a"
        else ("Other", "Child", "Other views", "Other unseen")
    )
    results = await ingest(
        api,
        pupil(upn, f"{tag}-pupil", surname, forename),
        views(upn, f"{tag}-views", seen),
        views(upn, f"{tag}-mh", unseen, category="mental_health"),
    )
    assert [r["status"] for r in results] == ["withheld"] * 3, results
    child = results[0]["child_id"]
    assert {r["child_id"] for r in results} == {child}
    r = await api.client.post(
        f"/children/{child}/coordinators", json={"coordinator": "casey"}, headers=api.auth("ops")
    )
    assert r.status_code == 200, r.text
    r = await api.client.post(
        f"/children/{child}/consents", json=consent(f"c-{tag}"), headers=api.auth("casey")
    )
    assert r.status_code == 200, r.text
    return child, [r["event_id"] for r in results]


async def read_log(api: Api, name: LogName) -> list[StoredRecord]:
    out: list[StoredRecord] = []
    for part in range(api.hub.log.partitions(name)):
        offset = 0
        while batch := await api.hub.log.read(name, part, offset, 1000):
            out.extend(batch)
            offset = batch[-1].offset + 1
    return out


async def records_of(api: Api, child: str) -> list[StoredRecord]:
    """Every record about the child on hub.events and hub.withheld."""
    out = []
    for name in (LogName.EVENTS, LogName.WITHHELD):
        out += [
            r for r in await read_log(api, name) if orjson.loads(r.value).get("child_id") == child
        ]
    return out


async def opened_text(api: Api, records: list[StoredRecord]) -> tuple[list[Envelope], str]:
    """The records opened through the gate's own opener, and everything they yield as
    one searchable text."""
    opened = await api.hub.opener.open_values([r.value for r in records])
    envelopes = [e for e in opened if isinstance(e, Envelope)]
    assert len(envelopes) == len(opened), [str(e) for e in opened if not isinstance(e, Envelope)]
    return envelopes, "\n".join(e.model_dump_json() for e in envelopes)


async def projection_rows(api: Api, child: str) -> dict[str, int]:
    """Rows naming the child in every projection table that has a child_id column (the
    four gate views and whatever other projections the hub runs)."""
    counts = {}
    for runner in api.hub.runners:
        for table in runner.projection.tables:
            if table in KEEPS_CHILD_ID:
                continue
            columns = {
                str(r[1]) for r in await api.hub.store.fetchall(f"PRAGMA table_info({table})")
            }
            if "child_id" in columns:
                sql = f"SELECT COUNT(*) FROM {table} WHERE child_id = ?"  # noqa: S608
                row = await api.hub.store.fetchone(sql, (child,))
                assert row is not None
                counts[table] = int(row[0])
    return counts


def plaintext_hits(db: Path, values: Iterable[str]) -> list[tuple[str, str]]:
    """(table, value) for every personal value found in the clear in any row of any table
    of an embedded database file."""
    hits = []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the schema
                blob = b"\x00".join(
                    v if isinstance(v, bytes) else str(v).encode() for v in row if v is not None
                )
                hits += [(table, v) for v in values if v.encode() in blob]
    finally:
        conn.close()
    return hits


async def child_rows(api: Api, child: str) -> dict[str, int]:
    counts = {}
    for table in CHILD_TABLES:
        sql = f"SELECT COUNT(*) FROM {table} WHERE child_id = ?"  # noqa: S608
        row = await api.hub.store.fetchone(sql, (child,))
        assert row is not None
        counts[table] = int(row[0])
    return counts


async def test_erasure_shreds_the_child_everywhere_and_the_trail_shows_it(api: Api) -> None:
    c = api.client
    child, sealed_ids = await set_up_child(api, UPN, "a")
    other, _ = await set_up_child(api, OTHER_UPN, "b")
    assert personal_fields(registry.payload_class("education.pupil_identified"))
    assert personal_fields(registry.payload_class("family.views_recorded"))

    # before: the coordinator sees the released facts, personal values and all ...
    r = await c.get(f"/children/{child}/record", headers=api.auth("casey"))
    assert r.status_code == 200, r.text
    assert SURNAME in r.text and VIEWS in r.text and WITHHELD_VIEWS not in r.text
    assert r.json()["facts_shown"] == 2
    # ... the personal values are sealed on the logs and in every projection, never
    # stored in the clear ...
    raw = b"".join(rec.value for rec in await records_of(api, child))
    assert all(v.encode() not in raw for v in PERSONAL)
    data_dir = api.hub.settings.data_dir
    assert plaintext_hits(data_dir / "log.db", (*PERSONAL, UPN, NHS)) == []
    # ... and the logs open to them with the child's keys (so the search below can fail)
    _, text = await opened_text(api, await records_of(api, child))
    assert all(v in text for v in PERSONAL)
    for runner in api.hub.runners:  # every projection current, so the counts are real
        await runner.rebuild()
    before = await child_rows(api, child)
    assert all(before[t] > 0 for t in CHILD_TABLES), before
    other_before = await projection_rows(api, other)

    # (vi) only IG or an admin may erase, and only a child that exists
    for who in ("casey", "oak-school-mis"):
        r = await c.post(
            f"/children/{child}/erase", json={"reason": "ERQ-1"}, headers=api.auth(who)
        )
        assert r.status_code == 403, (who, r.text)
    for who in ("ops", "ig"):
        r = await c.post(
            "/children/hc-no-such-child/erase", json={"reason": "ERQ-1"}, headers=api.auth(who)
        )
        assert r.status_code == 404, (who, r.text)
    assert await api.hub.persons.exists(child)  # none of those erased anything

    r = await c.post(
        f"/children/{child}/erase",
        json={"reason": "ERQ-1 subject access erasure"},
        headers=api.auth("ops"),
    )
    assert r.status_code == 200, r.text
    # one key per category held: education, family_views, mental_health
    assert r.json()["status"] == "erased" and r.json()["keys_deleted"] >= 3, r.text

    # (i) every data key of the child is gone: read through a fresh key store (no cache)
    policy = api.hub.policy
    fresh = SqlKeyStore(api.hub.store, load_master_key(api.hub.settings))
    for category in policy.categories:
        assert await fresh.get(data_key_id(child, category)) is None, category
        assert await api.hub.keys.get(data_key_id(child, category)) is None, category
    # the other child keeps theirs
    assert await fresh.get(data_key_id(other, "education")) is not None

    # (ii) the live projections, caught up on the tombstone, drop the child ...
    for runner in api.hub.runners:
        for name in runner.projection.logs:
            for part in range(api.hub.log.partitions(name)):
                await runner.catch_up(name, part)
    left = {t: n for t, n in (await projection_rows(api, child)).items() if n}
    assert not left, f"live projection rows of the erased child: {left}"
    # ... and so does a full rebuild of every projection from offset 0 ...
    for runner in api.hub.runners:
        await runner.rebuild()
    assert await child_rows(api, child) == dict.fromkeys(CHILD_TABLES, 0)
    left = {t: n for t, n in (await projection_rows(api, child)).items() if n}
    assert not left, f"projection rows of the erased child after a rebuild: {left}"
    assert await projection_rows(api, other) == other_before  # ... and all of the other child
    assert plaintext_hits(data_dir / "store.db", (*PERSONAL, UPN, NHS)) == []
    assert plaintext_hits(data_dir / "log.db", (*PERSONAL, UPN, NHS)) == []
    deadletters = await read_log(api, LogName.DEADLETTER)
    assert not deadletters, [d.value[:300] for d in deadletters]
    # ... and the raw logs open to placeholders for every sealed fact, never to a value
    records = await records_of(api, child)
    envelopes, text = await opened_text(api, records)
    erased = {str(e.event_id) for e in envelopes if isinstance(e.payload, ErasedPayload)}
    assert set(sealed_ids) <= erased, (sealed_ids, erased)
    assert all(v not in text for v in PERSONAL), "a personal value is readable after erasure"
    for e in envelopes:
        # what reads as erased is what had something sealed (the facts, the consent); what
        # still reads is all open (casework, identity: ids and codes)
        sealed = personal_fields(registry.payload_class(e.event_type))
        assert isinstance(e.payload, ErasedPayload) == (sealed != ()), e.event_type
    assert {e.event_type for e in envelopes if isinstance(e.payload, ErasedPayload)} >= {
        "education.pupil_identified", "family.views_recorded", "consent.recorded",
    }  # fmt: skip
    assert any(e.event_type == "identity.child_erased" for e in envelopes)  # the tombstone

    # (iii) every child route answers as for a child that does not exist
    missing = await c.get("/children/hc-no-such-child/record", headers=api.auth("casey"))
    for path in (f"/children/{child}/record", f"/children/{child}/consents"):
        r = await c.get(path, headers=api.auth("casey"))
        assert r.status_code == 404, (path, r.text)
        assert r.json()["detail"] == missing.json()["detail"]
        assert all(v not in r.text for v in PERSONAL)
    r = await c.post(
        f"/children/{child}/consents", json=consent("c-after"), headers=api.auth("casey")
    )
    assert r.status_code == 404, r.text
    r = await c.post(
        "/consents/c-a/withdraw",
        json={"withdrawn_by": {"reference": "parent-1", "capacity": "parent_with_pr"}},
        headers=api.auth("casey"),
    )
    assert r.status_code == 404, r.text
    r = await c.post(
        f"/children/{child}/coordinators", json={"coordinator": "casey"}, headers=api.auth("ops")
    )
    assert r.status_code == 404, r.text  # nobody can put the erased child back on a caseload
    r = await c.get(f"/children/{other}/record", headers=api.auth("casey"))
    assert r.status_code == 200 and r.json()["facts_shown"] == 2, r.text

    # (iv) the child's IG trail shows the erasure, holds no personal data, and verifies
    r = await c.get(f"/audit/children/{child}", headers=api.auth("ig"))
    assert r.status_code == 200, r.text
    records_ = r.json()["records"]
    erasures = [rec for rec in records_ if rec["kind"] == "erasure"]
    assert len(erasures) == 1, [rec["kind"] for rec in records_]
    [erasure] = erasures
    assert erasure["actor"] == "admin:ops"
    assert erasure["details"]["outcome"] == "erased"
    assert erasure["details"]["keys_deleted"] >= 3
    assert records_[-1]["kind"] == "erasure"  # nothing about the child happened since
    assert all(v not in r.text for v in PERSONAL) and UPN not in r.text and NHS not in r.text
    r = await c.get("/audit/verify", headers=api.auth("ig"))
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True, r.json()

    # (v) a new fact naming the erased child by its hub id is rejected, saying why
    r = await c.post(
        "/ingest/events",
        json={
            "events": [views(UPN, "a-after", "new views") | {"subject": {"hub_child_id": child}}]
        },
        headers=api.auth("oak-school-mis"),
    )
    assert r.status_code == 200, r.text
    [res] = r.json()["results"]
    assert res["status"] == "rejected", res
    assert res["field"] == "subject" and res["rule"] == "unknown_child", res
    assert res["reason"] == "no child with this hub child id", res
    assert res["child_id"] is None and res["event_id"] is None, res

    # ... and one naming it by its old UPN never reaches the erased child's record: the
    # identifiers were forgotten, so it starts a new child, with new keys
    [res] = await ingest(api, views(UPN, "a-after-upn", "newer views"))
    assert res["status"] in ("withheld", "rejected"), res
    assert res["child_id"] != child, res
    for category in policy.categories:
        assert await fresh.get(data_key_id(child, category)) is None, category
    assert not await api.hub.persons.exists(child)
    r = await c.get(f"/children/{child}/record", headers=api.auth("casey"))
    assert r.status_code == 404, r.text


async def test_a_fact_naming_an_erased_child_by_its_upn_is_rejected(api: Api) -> None:
    child, _ = await set_up_child(api, UPN, "a")
    r = await api.client.post(
        f"/children/{child}/erase", json={"reason": "ERQ-2"}, headers=api.auth("ops")
    )
    assert r.status_code == 200, r.text
    [res] = await ingest(api, views(UPN, "after", "new views"))
    assert res["status"] == "rejected", res
    assert "erased" in (res["reason"] or ""), res
