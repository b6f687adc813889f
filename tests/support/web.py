"""What the web page tests share: a hub seeded through the real API with one child and
its team (a SENCO, a teacher, a speech and language therapist), the family's consents,
an EHC plan request received three weeks ago, a second child nobody here reaches, a
key per role and an unredeemed family invitation; and a browser-like client that signs
in through the sign-in form, CSRF token and all."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from hub.auth.keys import Identity
from tests.e2e.test_team_access import (
    OTHER_UPN,
    SENCO,
    TEACHER,
    a_child_with_a_team,
    event,
    ingest,
)
from tests.support.api import Api

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Seeded:
    child: str
    other_child: str
    plan: str
    invitation_code: str
    tokens: dict[str, str]


async def seed(api: Api) -> Seeded:
    await api.key("oak-school-mis", "agency", "oak-school")
    await api.key("city-health", "agency", "city-health")
    await api.key("casey", "coordinator")
    await api.key("ig", "ig_auditor")
    await api.key("ops", "admin")
    for who, pid, role in (("senco", SENCO, "senco"), ("teacher", TEACHER, "teacher")):
        identity = Identity(practitioner_id=pid, policy_role=role, organisation="8881234")
        await api.key(who, "practitioner", "education", identity)
    child = await a_child_with_a_team(api)
    received = datetime.now(UTC).date() - timedelta(weeks=3)
    r = await api.client.post(
        f"/children/{child}/plans",
        json={
            "requested_on": received.isoformat(),
            "received_on": received.isoformat(),
            "requested_by": "parent",
        },
        headers=api.auth("casey"),
    )
    assert r.status_code in (200, 201), r.text
    plan = str(r.json()["plan_id"])
    sen = event(
        "education.sen_status_recorded",
        {"sen_provision": "K", "start_date": "2024-09-01"},
        message_id=f"sen-{OTHER_UPN}",
        subject={"upn": OTHER_UPN, "date_of_birth": "2014-05-06"},
        version=2,
    )
    [other] = await ingest(api, "oak-school-mis", [sen])
    r = await api.client.post(
        f"/children/{child}/invitations",
        json={"capacity": "parent_with_pr"},
        headers=api.auth("casey"),
    )
    assert r.status_code == 201, r.text
    return Seeded(
        child=child,
        other_child=str(other["child_id"]),
        plan=plan,
        invitation_code=str(r.json()["code"]),
        tokens=dict(api.tokens),
    )


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, credential: str) -> httpx.Response:
    """Sign in through the form as a browser does; the client keeps the session cookie."""
    page = await client.get("/sign-in")
    assert page.status_code == 200, page.text
    return await client.post(
        "/sign-in",
        data={"csrf_token": csrf_of(page.text), "credential": credential, "next": "/"},
    )
