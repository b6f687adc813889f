"""Finding a child and paging long lists, through the real API on SQLite and on
PostgreSQL read stores.

`POST /children/search` finds a child on the caller's caseload by NHS number, UPN, LA
child id, or name and date of birth; a child off the caseload gets the answer an unknown
key gets; a broken identifier is a 422 naming the field and the rule; each search is one
audit entry holding the kind of key and the count, never the value. The caseload, a
child's audit trail and the match queue page by an opaque cursor: walking every page
shows each row once, in the order of the whole list; a malformed cursor is a 422 naming
`query.cursor`. Each caseload row says the child's consent in force in a few words.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from hub.settings import Settings
from tests.support.api import Api, embedded, running_api
from tests.support.factories import nhs_number, upn

NHS = "9434765919"
UPN = "H801200001001"
LA_CODE, LA_CHILD = "801", "SC-000123"
DOB = "2015-03-02"
FORENAME, SURNAME = "Ava", "Thompson"
SECRETS = (NHS, "943 476 5919", UPN, LA_CHILD, FORENAME, SURNAME, DOB)
"""What a search is given and must leave nowhere: not in the trail, not in the logs."""


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return embedded(tmp_path)
    return Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        store_backend="postgres",
        postgres_dsn=request.getfixturevalue("postgres_dsn"),
        postgres_schema=request.getfixturevalue("postgres_schema"),
        _env_file=None,
    )


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as a:
        await a.key("oak-school-mis", "agency", "oak-school")
        await a.key("city-health", "agency", "city-health")
        await a.key("casey", "coordinator")
        await a.key("other", "coordinator")
        await a.key("ig", "ig_auditor")
        await a.key("ops", "admin")
        yield a


# --------------------------------------------------------------------------- helpers


def pupil(
    message_id: str,
    *,
    upn_: str = UPN,
    nhs: str | None = NHS,
    names: tuple[str, str] = (FORENAME, SURNAME),
    la_child: str | None = LA_CHILD,
) -> dict[str, Any]:
    forename, surname = names
    subject: dict[str, Any] = {
        "upn": upn_,
        "nhs_number": nhs,
        "given_name": forename,
        "family_name": surname,
        "date_of_birth": DOB,
    }
    if la_child is not None:
        subject |= {"la_code": LA_CODE, "la_child_id": la_child}
    return {
        "event_type": "education.pupil_identified",
        "schema_version": 1,
        "subject": subject,
        "source": {
            "agency": "oak-school",
            "organisation_code": "8881234",
            "message_id": message_id,
        },
        "occurred_at": "2024-09-02T09:00:00Z",
        "payload": {"upn": upn_, "forename": forename, "surname": surname, "date_of_birth": DOB},
    }


def sen(message_id: str, upn_: str) -> dict[str, Any]:
    return {
        "event_type": "education.sen_status_recorded",
        "schema_version": 2,
        "subject": {"upn": upn_},
        "source": {"agency": "oak-school", "message_id": message_id},
        "occurred_at": "2024-09-02T09:00:00Z",
        "payload": {"sen_provision": "K", "start_date": "2024-09-01"},
    }


def consent(consent_id: str, categories: list[str], decision: str = "permit") -> dict[str, Any]:
    return {
        "consent": {
            "consent_id": consent_id,
            "decision": decision,
            "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
            "given_on": "2024-09-04",
            "scope": {"categories": categories, "roles": ["coordinator"]},
            "period": {"start": "2024-09-04"},
            "capture_method": "form",
            "recorded_by": "ignored",
        },
        "child_date_of_birth": DOB,
    }


async def ingest(api: Api, *events: dict[str, Any]) -> list[str]:
    r = await api.client.post(
        "/ingest/events", json={"events": list(events)}, headers=api.auth("oak-school-mis")
    )
    assert r.status_code == 200, r.text
    return [str(res["child_id"]) for res in r.json()["results"]]


async def assign(api: Api, child: str, coordinator: str = "casey") -> None:
    r = await api.client.post(
        f"/children/{child}/coordinators",
        json={"coordinator": coordinator},
        headers=api.auth("ops"),
    )
    assert r.status_code == 200, r.text


async def post(api: Api, url: str, body: dict[str, Any], who: str = "casey") -> None:
    r = await api.client.post(url, json=body, headers=api.auth(who))
    assert r.status_code in (200, 201), (url, r.text)


async def ava(api: Api) -> str:
    """Ava: a pupil record naming her by NHS number, UPN, LA child id, name and date of
    birth, on casey's caseload, with consent for education (so her name shows)."""
    [child] = await ingest(api, pupil("pupil-1"))
    await assign(api, child)
    await post(api, f"/children/{child}/consents", consent("c-edu", ["education"]))
    return child


async def search(api: Api, body: dict[str, Any], who: str = "casey") -> dict[str, Any]:
    r = await api.client.post("/children/search", json=body, headers=api.auth(who))
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def trail(api: Api) -> list[dict[str, Any]]:
    r = await api.client.get("/audit/export", headers=api.auth("ig"))
    assert r.status_code == 200, r.text
    return [orjson.loads(line) for line in r.content.splitlines() if line]


def searches(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["details"].get("route") == "POST /children/search"]


KEYS: dict[str, dict[str, Any]] = {
    "nhs_number": {"nhs_number": "943 476 5919"},
    "upn": {"upn": UPN.lower()},
    "la_child_id": {"la_code": LA_CODE, "la_child_id": LA_CHILD},
    "name_and_date_of_birth": {
        "given_name": "AVA",
        "family_name": " thompson",
        "date_of_birth": DOB,
    },
}
"""One search body per kind of key, each written differently from how it was sent."""

UNKNOWN: dict[str, dict[str, Any]] = {
    "nhs_number": {"nhs_number": nhs_number(7)},
    "upn": {"upn": upn(7)},
    "la_child_id": {"la_code": LA_CODE, "la_child_id": "SC-999999"},
    "name_and_date_of_birth": {
        "given_name": "Ava",
        "family_name": "Thompson",
        "date_of_birth": "2015-03-03",
    },
}


# --------------------------------------------------------------------------- search


async def test_each_key_finds_the_child_on_the_callers_caseload(api: Api) -> None:
    child = await ava(api)
    for key, body in KEYS.items():
        answer = await search(api, body)
        assert answer == {
            "key": key,
            "count": 1,
            "children": [{"child_id": child, "name": f"{FORENAME} {SURNAME}"}],
        }, key


async def test_a_child_off_the_caseload_gets_the_answer_an_unknown_key_gets(api: Api) -> None:
    child = await ava(api)
    for key, body in KEYS.items():
        off = await search(api, body, who="other")
        unknown = await search(api, UNKNOWN[key], who="casey")
        assert off == unknown == {"key": key, "count": 0, "children": []}, key
    # an erased child is not found either, even by its owner
    r = await api.client.post(
        f"/children/{child}/erase", json={"reason": "request 42"}, headers=api.auth("ops")
    )
    assert r.status_code == 200, r.text
    for key, body in KEYS.items():
        assert (await search(api, body))["count"] == 0, key


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"nhs_number": NHS[:-1] + "8"}, "nhs_number", "nhs_number.check_digit"),
        ({"nhs_number": "94347659"}, "nhs_number", "nhs_number.format"),
        ({"upn": "A" + UPN[1:]}, "upn", "upn.check_letter"),
        ({"la_code": "80", "la_child_id": LA_CHILD}, "la_code", "la_child_id.la_code"),
        ({"la_code": LA_CODE, "la_child_id": "no spaces!"}, "la_child_id", "la_child_id.format"),
        ({"la_code": LA_CODE}, "la_child_id", "la_child_id.format"),
        ({"given_name": "Ava", "family_name": "Thompson"}, "date_of_birth",
         "search.name_and_date_of_birth"),
        ({"given_name": "--", "family_name": "Thompson", "date_of_birth": DOB}, "given_name",
         "search.name_and_date_of_birth"),
        ({"nhs_number": NHS, "upn": UPN}, "body", "search.one_key"),
        ({}, "body", "search.one_key"),
    ],
)  # fmt: skip
async def test_a_broken_key_is_a_422_naming_the_field_and_rule_not_the_value(
    api: Api, body: dict[str, Any], field: str, rule: str
) -> None:
    await ava(api)
    r = await api.client.post("/children/search", json=body, headers=api.auth("casey"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert (problem["field"], problem["rule"]) == (field, rule)
    assert problem["errors"][0]["field"] == field
    assert problem["detail"].startswith(f"{field}: ")
    for value in body.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in r.text
    assert searches(await trail(api)) == []  # refused before anything was looked up


async def test_the_search_must_be_a_post_with_a_json_body(api: Api) -> None:
    r = await api.client.get(
        "/children/search", params={"nhs_number": NHS}, headers=api.auth("casey")
    )
    assert r.status_code == 405, r.text
    r = await api.client.post(
        "/children/search", json={"nhs": NHS}, headers=api.auth("casey")
    )  # an unknown field is refused, not ignored
    assert r.status_code == 422, r.text
    assert NHS not in r.text


async def test_each_search_is_one_audit_entry_with_the_key_kind_and_count_never_the_value(
    api: Api,
) -> None:
    child = await ava(api)
    with capture_logs() as logs:
        for body in KEYS.values():
            await search(api, body)
        for body in UNKNOWN.values():
            await search(api, body)
        await search(api, KEYS["nhs_number"], who="other")
    entries = searches(await trail(api))
    assert [
        (e["kind"], e["child_id"], e["details"]["search_key"], e["details"]["results"])
        for e in entries
    ] == [
        *[("read", child, key, 1) for key in KEYS],
        *[("read", None, key, 0) for key in UNKNOWN],
        ("read", None, "nhs_number", 0),
    ]
    assert [e["actor"] for e in entries] == ["coordinator:casey"] * 8 + ["coordinator:other"]
    assert entries[0]["details"]["child_ids"] == [child]
    assert entries[0]["details"]["event_ids"]  # the pupil record her name came from
    assert {e["details"]["outcome"] for e in entries} == {"shown", "not_found"}
    written = repr(entries) + repr(logs)
    for value in SECRETS:
        assert value not in written, value
    # the trail still verifies with the searches in it
    r = await api.client.get("/audit/verify", headers=api.auth("ig"))
    assert r.json()["ok"] is True, r.text


async def test_a_search_by_name_finds_every_child_seen_with_that_name_on_the_caseload(
    api: Api,
) -> None:
    # two records with the same name and date of birth but different strong identifiers:
    # two children (never merged on demographics); both are found, each once
    [first] = await ingest(api, pupil("p-1", upn_=upn(1), nhs=None, la_child=None))
    [second] = await ingest(api, pupil("p-2", upn_=upn(2), nhs=None, la_child=None))
    [third] = await ingest(api, pupil("p-3", upn_=upn(3), nhs=None, la_child=None))
    assert len({first, second, third}) == 3
    await assign(api, first)
    await assign(api, second)
    await assign(api, third, "other")
    answer = await search(api, KEYS["name_and_date_of_birth"])
    assert answer["count"] == 2
    assert [c["child_id"] for c in answer["children"]] == sorted([first, second])
    assert all(c["name"] is None for c in answer["children"])  # no consent: no name shown
    [entry] = searches(await trail(api))
    assert (entry["child_id"], entry["details"]["child_ids"]) == (None, sorted([first, second]))


# --------------------------------------------------------------------------- paging


async def test_walking_the_caseload_pages_shows_every_child_once_in_one_order(api: Api) -> None:
    children = await ingest(api, *(sen(f"sen-{n}", upn(n)) for n in range(7)))
    for child in children:
        await assign(api, child)
    # plans received on different days, so the order is by urgency, not only by id
    for n, child in enumerate(children[:3]):
        await post(
            api,
            f"/children/{child}/plans",
            {"requested_on": f"2024-0{n + 1}-15", "received_on": f"2024-0{n + 1}-18",
             "requested_by": "parent"},
        )  # fmt: skip
    whole = await api.client.get(
        "/caseload", params={"as_of": "2024-03-01"}, headers=api.auth("casey")
    )
    assert whole.status_code == 200, whole.text
    assert whole.json()["next_cursor"] is None
    order = [c["child_id"] for c in whole.json()["children"]]
    assert sorted(order) == sorted(children)
    # the children with a plan have deadlines, so come first; the others tie on urgency
    # and follow in child id order
    assert set(order[:3]) == set(children[:3])
    assert order[3:] == sorted(children[3:])

    walked: list[str] = []
    pages = 0
    params: dict[str, Any] = {"limit": 3, "as_of": "2024-03-01"}
    while True:
        r = await api.client.get("/caseload", params=params, headers=api.auth("casey"))
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        assert page["total"] == 7 and page["as_of"] == "2024-03-01"
        walked += [c["child_id"] for c in page["children"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": 3, "cursor": page["next_cursor"]}  # the cursor keeps the day
    assert walked == order
    assert pages == 3


async def test_the_caseload_cursor_keeps_its_day_and_refuses_another(api: Api) -> None:
    children = await ingest(api, *(sen(f"sen-{n}", upn(n)) for n in range(3)))
    for child in children:
        await assign(api, child)
    r = await api.client.get(
        "/caseload", params={"limit": 1, "as_of": "2024-03-01"}, headers=api.auth("casey")
    )
    cursor = r.json()["next_cursor"]
    same = await api.client.get(
        "/caseload", params={"cursor": cursor, "as_of": "2024-03-01"}, headers=api.auth("casey")
    )
    assert same.status_code == 200 and same.json()["as_of"] == "2024-03-01", same.text
    other = await api.client.get(
        "/caseload", params={"cursor": cursor, "as_of": "2024-03-02"}, headers=api.auth("casey")
    )
    assert other.status_code == 422, other.text
    assert (other.json()["field"], other.json()["rule"]) == ("query.cursor", "cursor.other_day")


async def test_a_malformed_cursor_is_a_422_naming_the_cursor_on_every_listing(api: Api) -> None:
    child = await ava(api)
    [trail_cursor] = [
        (await api.client.get(
            f"/audit/children/{child}", params={"limit": 1}, headers=api.auth("ig")
        )).json()["next_cursor"]
    ]  # fmt: skip
    listings = [
        ("/caseload", "casey"),
        (f"/audit/children/{child}", "ig"),
        ("/match-queue", "ops"),
    ]
    for url, who in listings:
        for cursor in ("not-a-cursor!", "e30", "eyJsIjoiY2FzZWxvYWQiLCJrIjpbMV19", trail_cursor):
            if url.startswith("/audit") and cursor == trail_cursor:
                continue
            r = await api.client.get(url, params={"cursor": cursor}, headers=api.auth(who))
            assert r.status_code == 422, (url, cursor, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            problem = r.json()
            assert problem["field"] == "query.cursor", (url, problem)
            assert problem["rule"] in ("cursor.malformed", "cursor.other_listing"), problem
            assert problem["detail"].startswith("query.cursor: ")
    r = await api.client.get(
        "/caseload", params={"cursor": trail_cursor}, headers=api.auth("casey")
    )
    assert r.json()["rule"] == "cursor.other_listing"


async def test_walking_a_childs_trail_pages_shows_every_record_once_in_order(api: Api) -> None:
    child = await ava(api)
    for _ in range(3):  # reads of her record add to her trail
        await api.client.get(f"/children/{child}/team", headers=api.auth("casey"))
    r = await api.client.get(f"/audit/children/{child}", headers=api.auth("ig"))
    assert r.status_code == 200, r.text
    before = r.json()["records"]
    assert r.json()["next_cursor"] is None and len(before) > 6

    walked: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        r = await api.client.get(f"/audit/children/{child}", params=params, headers=api.auth("ig"))
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["records"]) <= 2
        walked += page["records"]
        if page["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": page["next_cursor"]}
    # each page read is itself audited, so the walk also meets the reads made meanwhile
    assert walked[: len(before)] == before
    ids = [rec["record_id"] for rec in walked]
    assert len(ids) == len(set(ids))
    seqs = [rec["seq"] for rec in walked]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one chain, no gaps


async def test_walking_the_match_queue_pages_shows_every_item_once_in_order(api: Api) -> None:
    # records naming a child by demographics only wait in the match queue
    events = []
    for n in range(5):
        event = pupil(f"mq-{n}", names=(f"Kid{n}", "Nobody"), la_child=None)
        event["subject"] = {"given_name": f"Kid{n}", "family_name": "Nobody", "date_of_birth": DOB}
        events.append(event)
    await ingest(api, *events)
    r = await api.client.get("/match-queue", headers=api.auth("ops"))
    assert r.status_code == 200, r.text
    whole = [i["item_id"] for i in r.json()["items"]]
    assert len(whole) == 5 and r.json()["next_cursor"] is None
    walked: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        r = await api.client.get("/match-queue", params=params, headers=api.auth("ops"))
        assert r.status_code == 200, r.text
        walked += [i["item_id"] for i in r.json()["items"]]
        if r.json()["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": r.json()["next_cursor"]}
    assert walked == whole


# --------------------------------------------------------------------------- consent


async def test_each_caseload_row_says_the_childs_consent_in_a_few_words(api: Api) -> None:
    none, given, refused, withdrawn = await ingest(
        api, *(sen(f"sen-{n}", upn(n)) for n in range(4))
    )
    for child in (none, given, refused, withdrawn):
        await assign(api, child)
    await post(api, f"/children/{given}/consents", consent("c-given", ["education"]))
    await post(api, f"/children/{refused}/consents", consent("c-ed", ["education"]))
    await post(api, f"/children/{refused}/consents", consent("c-no", ["health"], "deny"))
    await post(api, f"/children/{withdrawn}/consents", consent("c-gone", ["education"]))
    await post(
        api,
        "/consents/c-gone/withdraw",
        {"withdrawn_by": {"reference": "parent-1", "capacity": "parent_with_pr"}},
    )
    r = await api.client.get("/caseload", headers=api.auth("casey"))
    assert r.status_code == 200, r.text
    status = {c["child_id"]: c["consent_status"] for c in r.json()["children"]}
    assert status == {
        none: "no consent recorded",
        given: "consent given for education",
        refused: "consent given for education; refused for health",
        withdrawn: "withdrawn",
    }
