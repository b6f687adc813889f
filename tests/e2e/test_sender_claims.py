"""What an agency claims about its facts comes from the policy and its credential, through
the real API: a school cannot claim `safeguarding` to get past a family's refusal, a health
condition cannot be sent as `education`, and a school cannot publish as an NHS trust. Each
refusal names its rule and is in the child's audit trail; nothing of the fact is shown.
An identity provider's agency token is judged by its sender and organisation claims, and
without them may not publish at all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.auth.keys import Publishing
from tests.support.api import Api, embedded, running_api
from tests.unit.test_oidc import JwksServer, claims, sign

UPN = "H801200001001"
NHS = "9434765919"
DOB = "2015-03-02"
SCHOOL_URN = "8881234"
TRUST_ODS = "RR8"


async def with_keys(a: Api) -> None:
    await a.key("oak-school-mis", "agency", "oak-school",
                    publishing=Publishing("education", (SCHOOL_URN,)))  # fmt: skip
    await a.key("city-health", "agency", "city-health",
                    publishing=Publishing("health", (TRUST_ODS,)))  # fmt: skip
    await a.key("children-services", "agency", "childrens-services",
                    publishing=Publishing("social_care", ("801",)))  # fmt: skip
    await a.key("legacy-school", "agency", "old-school")  # no sender kind, unbound
    await a.key("casey", "coordinator")
    await a.key("ops", "admin")
    await a.key("ig", "ig_auditor")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        await with_keys(a)
        yield a


def event(agency: str, org: str | None, message_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_type": "education.sen_status_recorded",
        "schema_version": 2,
        "subject": {"upn": UPN, "nhs_number": NHS, "date_of_birth": DOB},
        "source": {"agency": agency, "organisation_code": org, "message_id": message_id},
        "occurred_at": "2024-09-02T09:00:00Z",
        "payload": {
            "sen_provision": "K",
            "start_date": "2024-09-01",
            "needs": [{"type": "SLCN", "rank": 1}],
        },
        **extra,
    }


def condition(agency: str, org: str | None, message_id: str, **extra: Any) -> dict[str, Any]:
    return {
        **event(agency, org, message_id),
        "event_type": "health.condition_recorded",
        "schema_version": 1,
        "payload": {
            "condition_ref": "Condition/cp-1",
            "code": {
                "text": "Cerebral palsy",
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "128188000",
                        "display": "Cerebral palsy",
                    }
                ],
            },
        },
        **extra,
    }


async def ingest(api: Api, who: str, *events: dict[str, Any]) -> list[dict[str, Any]]:
    r = await api.client.post("/ingest/events", json={"events": list(events)},
                              headers=api.auth(who))  # fmt: skip
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


async def child_with_refusal(api: Api) -> str:
    """A child on casey's caseload whose family permits education and refuses health."""
    [res] = await ingest(api, "oak-school-mis", event("oak-school", SCHOOL_URN, "sen-1"))
    assert res["status"] == "withheld", res  # no consent yet
    child = str(res["child_id"])
    c = api.client
    r = await c.post(f"/children/{child}/coordinators", json={"coordinator": "casey"},
                     headers=api.auth("ops"))  # fmt: skip
    assert r.status_code == 200, r.text
    for cid, cats, decision in (("c-ed", ["education"], "permit"),
                                ("c-no", ["health"], "deny")):  # fmt: skip
        body = {
            "consent": {
                "consent_id": cid, "decision": decision,
                "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
                "given_on": "2024-09-04", "period": {"start": "2024-09-04"},
                "scope": {"categories": cats, "roles": ["coordinator"]},
                "capture_method": "form", "recorded_by": "ignored",
            },
            "child_date_of_birth": DOB,
        }  # fmt: skip
        r = await c.post(f"/children/{child}/consents", json=body, headers=api.auth("casey"))
        assert r.status_code == 200, r.text
    return child


async def shown(api: Api, child: str) -> list[str]:
    r = await api.client.get(f"/children/{child}/record", headers=api.auth("casey"))
    assert r.status_code == 200, r.text
    return sorted(f["event_type"] for fs in r.json()["agencies"].values() for f in fs)


async def refusals(api: Api, child: str) -> list[dict[str, Any]]:
    r = await api.client.get("/audit/export", headers=api.auth("ig"))
    assert r.status_code == 200, r.text
    records = [orjson.loads(line) for line in r.content.splitlines() if line]
    return [
        rec["details"] for rec in records
        if rec["child_id"] == child and rec["details"].get("outcome") == "refused"
    ]  # fmt: skip


async def test_a_school_claiming_safeguarding_over_a_refusal_gets_nothing_shown(
    api: Api,
) -> None:
    child = await child_with_refusal(api)
    claimed = condition("oak-school", SCHOOL_URN, "cp-1", statutory_basis="safeguarding")
    [res] = await ingest(api, "oak-school-mis", claimed)
    assert res["status"] == "rejected", res
    assert res["rule"] == "sender.basis_not_claimable" and res["field"] == "statutory_basis"
    assert "education sender" in res["reason"] and "safeguarding" in res["reason"]
    assert "health.condition_recorded" not in await shown(api, child)
    [audited] = await refusals(api, child)
    assert audited["rule"] == "sender.basis_not_claimable"
    assert audited["event_type"] == "health.condition_recorded"
    assert "Cerebral" not in orjson.dumps(audited).decode()


async def test_children_services_may_claim_safeguarding_over_a_refusal(api: Api) -> None:
    child = await child_with_refusal(api)
    claimed = condition("childrens-services", "801", "cp-2", statutory_basis="safeguarding")
    [res] = await ingest(api, "children-services", claimed)
    assert res["status"] == "appended", res
    assert "health.condition_recorded" in await shown(api, child)


async def test_a_health_condition_sent_as_education_is_refused(api: Api) -> None:
    child = await child_with_refusal(api)
    [res] = await ingest(
        api, "city-health", condition("city-health", TRUST_ODS, "cp-3", category="education")
    )
    assert res["status"] == "rejected", res
    assert res["rule"] == "sender.category_not_permitted" and res["field"] == "category"
    assert "health.condition_recorded" not in await shown(api, child)
    [audited] = await refusals(api, child)
    assert audited["rule"] == "sender.category_not_permitted"
    # the stricter reading is allowed: a condition marked as mental health is taken
    [res] = await ingest(
        api, "city-health", condition("city-health", TRUST_ODS, "cp-4", category="mental_health")
    )
    assert res["status"] in ("appended", "withheld"), res


async def test_a_school_publishing_as_an_nhs_trust_is_refused(api: Api) -> None:
    child = await child_with_refusal(api)
    [res] = await ingest(api, "oak-school-mis", event("oak-school", TRUST_ODS, "sen-2"))
    assert res["status"] == "rejected", res
    assert res["rule"] == "sender.organisation_not_allowed"
    assert res["field"] == "source.organisation_code"
    # a key bound to no organisation may not name one another key is bound to either
    [res] = await ingest(api, "legacy-school", event("old-school", TRUST_ODS, "sen-3"))
    assert res["rule"] == "sender.organisation_not_allowed", res
    assert len(await refusals(api, child)) == 2
    # ... and with no sender kind it claims no statutory basis
    [res] = await ingest(
        api, "legacy-school",
        event("old-school", None, "sen-4", statutory_basis="reg6_ehc_advice"),
    )  # fmt: skip
    assert res["rule"] == "sender.basis_not_claimable", res
    assert "no sender kind" in res["reason"]


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.add_rsa_key("k1")
        yield server


@pytest.fixture
async def oidc_api(tmp_path: Path, jwks: JwksServer) -> AsyncIterator[Api]:
    async with running_api(jwks.settings(tmp_path / "data", _env_file=None)) as a:
        await with_keys(a)
        yield a


def agency_token(jwks: JwksServer, agency: str, **publishing: Any) -> str:
    """An identity provider's token for an agency system, with the publishing claims given."""
    return sign(jwks.keys["k1"], "k1",
                claims(hub_role="agency", hub_agency=agency, preferred_username=f"{agency}-system",
                       **publishing))  # fmt: skip


async def test_an_oidc_agency_token_without_sender_claims_may_not_publish(
    oidc_api: Api, jwks: JwksServer
) -> None:
    api = oidc_api
    for who, publishing in (
        ("no-claims", {}),
        ("no-codes", {"hub_sender": "education"}),
        ("no-kind", {"hub_organisations": [SCHOOL_URN]}),
    ):
        api.tokens[who] = agency_token(jwks, "oak-school", **publishing)
        r = await api.client.post(
            "/ingest/events",
            json={"events": [event("oak-school", TRUST_ODS, f"m-{who}")]},
            headers=api.auth(who),
        )
        assert r.status_code == 403, (who, r.text)
        assert "hub_sender and hub_organisations claims" in r.json()["detail"], who
        xml = {**api.auth(who), "content-type": "application/xml"}
        r = await api.client.post("/ingest/school-mis", content=b"<CTfile/>", headers=xml)
        assert r.status_code == 403, (who, r.text)
    api.tokens["wizard"] = agency_token(
        jwks, "oak-school", hub_sender="wizard", hub_organisations=SCHOOL_URN
    )
    r = await api.client.post("/ingest/events", json={"events": [event("oak-school", None, "w")]},
                              headers=api.auth("wizard"))  # fmt: skip
    assert r.status_code == 403 and "names no sender of the sharing policy" in r.text, r.text


async def test_an_oidc_agency_token_claims_what_its_sender_claims_allow(
    oidc_api: Api, jwks: JwksServer
) -> None:
    api = oidc_api
    child = await child_with_refusal(api)
    api.tokens["oidc-school"] = agency_token(
        jwks, "oak-school", hub_sender="education", hub_organisations=[SCHOOL_URN]
    )
    api.tokens["oidc-social-care"] = agency_token(
        jwks, "childrens-services", hub_sender="social_care", hub_organisations="801 802"
    )
    # the school's token may not publish as the trust, nor claim safeguarding
    [res] = await ingest(api, "oidc-school", event("oak-school", TRUST_ODS, "o-1"))
    assert res["rule"] == "sender.organisation_not_allowed", res
    claimed = condition("oak-school", SCHOOL_URN, "o-2", statutory_basis="safeguarding")
    [res] = await ingest(api, "oidc-school", claimed)
    assert res["rule"] == "sender.basis_not_claimable" and "education sender" in res["reason"]
    assert "health.condition_recorded" not in await shown(api, child)
    assert sorted(r["rule"] for r in await refusals(api, child)) == [
        "sender.basis_not_claimable", "sender.organisation_not_allowed",
    ]  # fmt: skip
    # children's social care, by its token's claims, may claim safeguarding as itself
    claimed = condition("childrens-services", "802", "o-3", statutory_basis="safeguarding")
    [res] = await ingest(api, "oidc-social-care", claimed)
    assert res["status"] == "appended", res
    assert "health.condition_recorded" in await shown(api, child)
