"""The web pages over HTTP, as a browser without JavaScript meets them: every page admits
only its roles (the sign-in page for nobody, a 403 page for a wrong role, a 404 page for
a child out of reach), no POST is taken without the session's CSRF token, every response
carries the security headers and the session cookie is sealed, HttpOnly and SameSite;
sign-in names the field when the credential is wrong, an invitation code becomes a
family key shown once; each page view of a child is the same audited read as the API's.
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hub.web import STATIC
from hub.web.security import PAGE_POLICY
from hub.web.sessions import COOKIE
from tests.e2e.test_team_access import UPN
from tests.support.api import Api, embedded, running_api
from tests.support.web import Seeded, csrf_of, seed, sign_in

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("casey", "senco", "parent", "ig", "ops")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        yield a


@pytest.fixture
async def seeded(api: Api) -> Seeded:
    return await seed(api)


def browser(api: Api, base: str = "http://hub.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url=base)


async def signed_in_as(api: Api, seeded: Seeded, who: str) -> httpx.AsyncClient:
    """A browser signed in as `who` (the parent signs in with the invitation code)."""
    client = browser(api)
    credential = seeded.invitation_code if who == "parent" else seeded.tokens[who]
    r = await sign_in(client, credential)
    if who == "parent":
        assert r.status_code == 200 and 'data-testid="family-key"' in r.text, r.text
    else:
        assert r.status_code == 303, r.text
    return client


async def audited_reads(api: Api, child: str, actor: str) -> list[dict[str, Any]]:
    await api.hub.views.catch_up_partitions(["audit_index"])
    rows = await api.hub.store.fetchall(
        "SELECT line FROM audit_entry WHERE child_id = ? AND kind = 'read'", (child,)
    )
    records = [orjson.loads(bytes(r[0])) for r in rows]
    return [r["details"] for r in records if r["actor"] == actor]


PAGES: dict[str, set[str]] = {
    "/": {"casey", "senco", "parent", "ig"},
    "/child/{child_id}": {"casey", "senco"},
    "/plan/{plan_id}": {"casey", "senco", "parent"},  # the plan is shared with education
    "/our-child/{child_id}": {"parent"},
    "/trail": {"ig"},
    "/trail/{child_id}": {"ig"},
    "/verify": {"ig"},
}
"""Each page (GET) and who may open it."""
FORMS: dict[str, str] = {
    "/sign-in": "public: the sign-in form (GET and POST)",
    "/sign-out": "POST: tested with and without its CSRF token below",
    "/our-child/{child_id}/consents/{consent_id}/withdraw": "POST: family only, tested below",
}


def page_url(template: str, s: Seeded) -> str:
    url = template.replace("{child_id}", s.child).replace("{plan_id}", s.plan)
    return f"{url}?child_id={s.child}" if url == "/trail" else url


def test_the_role_matrix_knows_every_page_route() -> None:
    """test_auth_routes.py leaves the page routes to this module: none may be missed."""
    from hub.web.pages import router

    served = {r.path for r in router.routes}
    assert served == set(PAGES) | set(FORMS), served ^ (set(PAGES) | set(FORMS))


async def test_every_page_admits_its_roles_only_and_nobody_gets_the_sign_in_page(
    api: Api, seeded: Seeded
) -> None:
    clients = {who: await signed_in_as(api, seeded, who) for who in ROLES}
    anonymous = browser(api)
    for template, allowed in PAGES.items():
        path = page_url(template, seeded)
        r = await anonymous.get(path)
        if path == "/":
            assert r.status_code == 303 and r.headers["location"] == "/sign-in"
        else:
            assert r.status_code == 401, (path, r.text)
            assert 'action="/sign-in"' in r.text and f'name="next" value="{path}"' in r.text
        for who, client in clients.items():
            r = await client.get(path)
            if who in allowed:
                assert r.status_code in (200, 303), (path, who, r.status_code, r.text[-800:])
            else:
                assert r.status_code == 403, (path, who, r.status_code)
                assert "You cannot see this page" in r.text, (path, who)
    # the POST form of the family is refused alike to every other role
    withdraw = f"/our-child/{seeded.child}/consents/c-edu-{UPN}/withdraw"
    for who in ("casey", "senco", "ig", "ops"):
        r = await clients[who].post(withdraw, data={"csrf_token": "x"})
        assert r.status_code == 403 and "You cannot see this page" in r.text, who
    r = await anonymous.post(withdraw, data={"csrf_token": "x"})
    assert r.status_code == 401


async def test_a_child_out_of_reach_is_the_404_page_as_one_that_does_not_exist(
    api: Api, seeded: Seeded
) -> None:
    casey = await signed_in_as(api, seeded, "casey")
    senco = await signed_in_as(api, seeded, "senco")
    parent = await signed_in_as(api, seeded, "parent")
    for client, path in (
        (casey, f"/child/{seeded.other_child}"),
        (casey, "/child/hc-00000000000000000000000000000000"),
        (casey, "/plan/no-such-plan"),
        (senco, f"/child/{seeded.other_child}"),
        (parent, f"/our-child/{seeded.other_child}"),
        (parent, f"/our-child/{seeded.other_child}/consents/c-edu-{UPN}/withdraw"),
    ):
        if path.endswith("/withdraw"):
            page = await client.get(f"/our-child/{seeded.child}")
            r = await client.post(path, data={"csrf_token": csrf_of(page.text)})
        else:
            r = await client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "Page not found" in r.text
        assert UPN not in r.text


async def test_no_post_is_taken_without_the_sessions_csrf_token(api: Api, seeded: Seeded) -> None:
    anonymous = browser(api)
    await anonymous.get("/sign-in")
    r = await anonymous.post("/sign-in", data={"credential": seeded.tokens["casey"]})
    assert r.status_code == 403 and "could not be sent" in r.text
    assert (await anonymous.get("/")).status_code == 303  # still not signed in

    parent = await signed_in_as(api, seeded, "parent")
    other = await signed_in_as(api, seeded, "casey")
    stolen = csrf_of((await other.get("/")).text)  # a token from another session
    withdraw = f"/our-child/{seeded.child}/consents/c-edu-{UPN}/withdraw"
    for data in ({}, {"csrf_token": ""}, {"csrf_token": stolen}):
        r = await parent.post(withdraw, data=data)
        assert r.status_code == 403, (data, r.status_code)
    r = await parent.post(withdraw, content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 400
    page = await parent.get(f"/our-child/{seeded.child}")
    assert "Withdraw" in page.text  # the consent is still there to withdraw
    r = await parent.post("/sign-out", data={})
    assert r.status_code == 403
    assert (await parent.get(f"/our-child/{seeded.child}")).status_code == 200


async def test_responses_carry_the_security_headers_and_a_sealed_httponly_strict_cookie(
    api: Api, seeded: Seeded
) -> None:
    client = browser(api)
    r = await client.get("/sign-in")
    assert r.headers["content-security-policy"] == PAGE_POLICY
    assert "script-src 'self';" in PAGE_POLICY and "frame-ancestors 'none'" in PAGE_POLICY
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text and " style=" not in r.text  # nothing inline
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}=") and "httponly" in cookie
    assert "samesite=strict" in cookie and "path=/" in cookie and "secure" not in cookie

    r = await sign_in(client, seeded.tokens["casey"])
    sealed = r.headers["set-cookie"]
    assert seeded.tokens["casey"] not in sealed and seeded.tokens["casey"][4:12] not in sealed
    tampered = sealed.split(";")[0].split("=", 1)[1][:-4] + "AAAA"
    forged = browser(api)
    forged.cookies.set(COOKIE, tampered)
    assert (await forged.get(f"/child/{seeded.child}")).status_code == 401

    secure = browser(api, "https://hub.test")
    r = await secure.get("/sign-in")
    assert "secure" in r.headers["set-cookie"].lower()
    static = await client.get("/static/vendor/govuk/govuk-frontend.min.css")
    assert static.status_code == 200 and static.headers["content-type"].startswith("text/css")
    assert "GDS Transport" not in static.text
    assert "cache-control" not in static.headers


async def test_sign_in_names_the_field_and_an_invitation_code_becomes_a_family_key(
    api: Api, seeded: Seeded
) -> None:
    client = browser(api)
    for credential, words in (
        ("", "Enter your API key or your invitation code"),
        ("thk_nope.nope", "This API key is not valid"),
        ("ABCD-EFGH-JKLM", "This invitation code is not valid"),
    ):
        r = await sign_in(client, credential)
        assert r.status_code == 400, credential
        assert 'class="govuk-error-summary"' in r.text and 'href="#credential"' in r.text
        assert words in r.text and 'id="credential-error"' in r.text
        assert r.text.count("<title>Error: ") == 1

    r = await sign_in(client, seeded.invitation_code.lower())
    assert r.status_code == 200 and 'data-testid="family-key"' in r.text
    key = r.text.split('data-testid="family-key">')[1].split("<")[0].strip()
    assert key.startswith("thk_")
    home = await client.get("/")
    assert home.status_code == 303 and home.headers["location"] == f"/our-child/{seeded.child}"
    family_page = await client.get(home.headers["location"])
    r = await client.post("/sign-out", data={"csrf_token": csrf_of(family_page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/sign-in?signed_out=1"
    assert (await client.get(f"/our-child/{seeded.child}")).status_code == 401
    again = await sign_in(client, seeded.invitation_code)
    assert again.status_code == 400 and "not valid" in again.text  # the code works once
    assert (await sign_in(client, key)).status_code == 303  # the key signs in next time
    assert (await client.get(f"/our-child/{seeded.child}")).status_code == 200

    # a revoked key ends the session at the next request
    casey = await signed_in_as(api, seeded, "casey")
    assert (await casey.get("/")).status_code == 200
    await api.hub.api_keys.revoke("casey")
    r = await casey.get("/")
    assert r.status_code == 303
    r = await casey.get(f"/child/{seeded.child}")
    assert r.status_code == 401


async def test_each_page_view_of_a_child_is_audited_as_the_apis_read(
    api: Api, seeded: Seeded
) -> None:
    casey = await signed_in_as(api, seeded, "casey")
    before = await audited_reads(api, seeded.child, "coordinator:casey")
    r = await casey.get(f"/child/{seeded.child}")
    assert r.status_code == 200
    after = await audited_reads(api, seeded.child, "coordinator:casey")
    new = after[len(before) :]
    assert [d["route"] for d in new] == ["GET /children/{id}/team", "GET /children/{id}/plans"]
    assert all(d["outcome"] == "shown" and d["event_ids"] for d in new)

    r = await casey.get(f"/plan/{seeded.plan}")
    assert r.status_code == 200 and 'data-testid="milestone"' in r.text
    latest = (await audited_reads(api, seeded.child, "coordinator:casey"))[-1]
    assert latest["route"] == "GET /plans/{id}/timeline" and latest["plan_id"] == seeded.plan

    senco = await signed_in_as(api, seeded, "senco")
    await senco.get(f"/child/{seeded.child}")
    senco_reads = await audited_reads(api, seeded.child, "practitioner:senco")
    assert {d["route"] for d in senco_reads} >= {"GET /children/{id}/team"}
    assert all(d["as"] == "senco" for d in senco_reads)

    parent = await signed_in_as(api, seeded, "parent")
    page = await parent.get(f"/our-child/{seeded.child}")
    assert page.status_code == 200
    assert "casey (coordinator) looked at the team around the child" in page.text
    assert "teacher" not in page.text.split('data-testid="who-looked"')[1].split("</ul>")[0]


async def test_the_family_withdraws_a_consent_and_the_teacher_no_longer_sees_what_it_shared(
    api: Api, seeded: Seeded
) -> None:
    teacher = browser(api)
    assert (await sign_in(teacher, api.tokens["teacher"])).status_code == 303
    before = await teacher.get(f"/child/{seeded.child}")
    assert "SEN support since" in before.text

    parent = await signed_in_as(api, seeded, "parent")
    page = await parent.get(f"/our-child/{seeded.child}")
    r = await parent.post(
        f"/our-child/{seeded.child}/consents/c-edu-{UPN}/withdraw",
        data={"csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 303, r.text
    done = await parent.get(r.headers["location"])
    assert "You withdrew your consent" in done.text
    assert "govuk-notification-banner--success" in done.text

    after = await teacher.get(f"/child/{seeded.child}")
    assert after.status_code == 200
    assert "SEN support since" not in after.text and "Not shared with you" in after.text


def test_the_wheel_ships_every_template_and_static_file() -> None:
    """Each file under hub/web/templates and hub/web/static matches a package-data glob."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["hub"]
    web = STATIC.parent
    files = [p for d in ("templates", "static") for p in (web / d).rglob("*") if p.is_file()]
    assert any(p.name == "LICENCE.txt" for p in files)
    missing = [
        str(p.relative_to(web.parent))
        for p in files
        if not any(fnmatch(str(p.relative_to(web.parent)), g) for g in globs)
    ]
    assert not missing, missing


async def test_the_api_docs_are_served_from_the_package_not_a_cdn(api: Api) -> None:
    client = browser(api)
    for path, assets in (
        ("/docs", ["/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/swagger-init.js"]),
        ("/redoc", ["/static/vendor/redoc/redoc.standalone.js"]),
    ):
        r = await client.get(path)
        assert r.status_code == 200 and "https://" not in r.text and "http://" not in r.text
        assert "<script>" not in r.text
        for asset in assets:
            assert f'src="{asset}"' in r.text
            got = await client.get(asset)
            assert got.status_code == 200 and len(got.content) > 100, asset


async def test_a_malformed_page_cursor_is_a_page_saying_so_and_one_page_has_no_next_link(
    api: Api, seeded: Seeded
) -> None:
    casey = await signed_in_as(api, seeded, "casey")
    ig = await signed_in_as(api, seeded, "ig")
    first = await casey.get("/?stage=enter")
    assert first.status_code == 200 and 'data-testid="next-page"' not in first.text
    assert 'data-testid="caseload-row"' in first.text
    for client, path in ((casey, "/?cursor=not-a-cursor"), (ig, f"/trail/{seeded.child}?cursor=x")):
        r = await client.get(path)
        assert r.status_code == 400, (path, r.status_code)
        assert "cannot be shown" in r.text and "not-a-cursor" not in r.text
    trail = await ig.get(f"/trail/{seeded.child}")
    assert trail.status_code == 200 and 'data-testid="trail-record"' in trail.text
