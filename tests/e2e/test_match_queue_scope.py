"""The match queue is scoped to caseloads, through the real API: a coordinator sees only
the queued records whose candidates are on their caseload (with only those candidates),
cannot decide another's item or link a record into a child outside their reach (answered
exactly as for an item or child that does not exist), and the admin lists the queue
without any record's demographics. Every view and decision is in the trail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.api import Api, embedded, running_api

DOB = "2015-03-02"
PEOPLE = {"a": ("H801200001001", "Amara", "Okafor"), "b": ("X801200001002", "Ben", "Lowry")}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        await a.key("oak-school-mis", "agency", "oak-school")
        await a.key("casey", "coordinator")
        await a.key("dana", "coordinator")
        await a.key("ops", "admin")
        await a.key("ig", "ig_auditor")
        yield a


def sen(subject: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {
        "event_type": "education.sen_status_recorded",
        "schema_version": 2,
        "subject": subject,
        "source": {"agency": "oak-school", "message_id": message_id},
        "occurred_at": "2024-09-02T09:00:00Z",
        "payload": {
            "sen_provision": "K",
            "start_date": "2024-09-01",
            "needs": [{"type": "SLCN", "rank": 1}],
        },
    }


async def ingest(api: Api, *events: dict[str, Any]) -> list[dict[str, Any]]:
    r = await api.client.post(
        "/ingest/events", json={"events": list(events)}, headers=api.auth("oak-school-mis")
    )
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


async def queue(api: Api, who: str) -> dict[str, Any]:
    r = await api.client.get("/match-queue", headers=api.auth(who))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def set_up(api: Api) -> tuple[dict[str, str], dict[str, str]]:
    """Children a (casey's) and b (dana's), and for each a queued record naming them by
    name and date of birth only; returns child ids and item ids by letter."""
    children, items = {}, {}
    for tag, (upn, given, family) in PEOPLE.items():
        subject = {"upn": upn, "given_name": given, "family_name": family, "date_of_birth": DOB}
        [res] = await ingest(api, sen(subject, f"sen-{tag}"))
        children[tag] = str(res["child_id"])
    for tag, who in (("a", "casey"), ("b", "dana")):
        r = await api.client.post(f"/children/{children[tag]}/coordinators",
                                  json={"coordinator": who}, headers=api.auth("ops"))  # fmt: skip
        assert r.status_code == 200, r.text
    for tag, (_, given, family) in PEOPLE.items():
        subject = {"given_name": given, "family_name": family, "date_of_birth": DOB}
        [res] = await ingest(api, sen(subject, f"queued-{tag}"))
        assert res["status"] == "queued", res
    listed = (await queue(api, "ops"))["items"]
    for item in listed:
        [candidate] = item["candidates"]
        tag = next(t for t, c in children.items() if c == candidate["child_id"])
        items[tag] = item["item_id"]
    assert set(items) == {"a", "b"}, listed
    return children, items


async def test_a_coordinator_sees_and_decides_only_records_of_their_caseload(api: Api) -> None:
    children, items = await set_up(api)
    seen = await queue(api, "casey")
    assert [i["item_id"] for i in seen["items"]] == [items["a"]]
    [item] = seen["items"]
    assert item["record"]["given_name"] == "Amara"
    assert [c["child_id"] for c in item["candidates"]] == [children["a"]]
    assert "Ben" not in orjson.dumps(seen).decode() and children["b"] not in str(seen)

    def resolve(item_id: str, child: str, who: str = "casey") -> Any:
        body = {"decision": "link", "child_id": child}
        return api.client.post(f"/match-queue/{item_id}/resolve", json=body,
                               headers=api.auth(who))  # fmt: skip

    # dana's item answers exactly as one that does not exist
    theirs = await resolve(items["b"], children["a"])
    missing = await resolve("mq-0000000000000000", children["a"])
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"].replace(items["b"], "ID") == missing.json()["detail"].replace(
        "mq-0000000000000000", "ID"
    )
    # linking casey's record into dana's child answers as a child that does not exist
    outside = await resolve(items["a"], children["b"])
    nobody = await resolve(items["a"], "hc-no-such-child")
    assert outside.status_code == nobody.status_code == 404
    assert outside.json()["detail"].replace(children["b"], "ID") == nobody.json()["detail"].replace(
        "hc-no-such-child", "ID"
    )
    # the record is still queued after both refusals; casey's own decision goes through
    ok = await resolve(items["a"], children["a"])
    assert ok.status_code == 200, ok.text
    assert ok.json()["child_id"] == children["a"]

    r = await api.client.get("/audit/export", headers=api.auth("ig"))
    records = [orjson.loads(line) for line in r.content.splitlines() if line]
    reads = [x for x in records if x["details"].get("route") == "GET /match-queue"
             and x["actor"] == "coordinator:casey"]  # fmt: skip
    assert {x["details"]["item_id"] for x in reads} == {items["a"]}
    decided = [x for x in records if x["details"].get("item_id") == items["a"]
               and x["kind"] == "decision" and x["actor"] == "coordinator:casey"]  # fmt: skip
    assert decided, "the decision is audited"


async def test_the_admin_lists_the_queue_without_demographics(api: Api) -> None:
    await set_up(api)
    listed = await queue(api, "ops")
    assert len(listed["items"]) == 2
    text = orjson.dumps(listed).decode()
    for _, given, family in PEOPLE.values():
        assert given not in text and family not in text
    assert DOB not in text
    assert all(i["record"] == {"readable": False} for i in listed["items"])
