"""Failed sign-ins from one client are refused after a few, with a GOV.UK error and a
Retry-After, whatever the next credential; other clients are not affected; the lock-out
is logged and audited without the credential or the client's address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from structlog.testing import capture_logs

from hub.web.throttle import MAX_FAILURES, WINDOW_SECONDS, SignInThrottle
from tests.support.api import Api, embedded, running_api
from tests.support.web import Seeded, seed, sign_in


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        yield a


@pytest.fixture
async def seeded(api: Api) -> Seeded:
    return await seed(api)


@pytest.fixture
def clock(api: Api) -> Clock:
    clock = Clock()
    api.app.state.web_throttle = SignInThrottle(clock=clock)
    return clock


def browser(api: Api, address: str = "192.0.2.10") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=api.app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://hub.test")


async def test_failed_sign_ins_lock_the_client_out_for_a_while_and_say_so(
    api: Api, seeded: Seeded, clock: Clock
) -> None:
    client = browser(api)
    wrong = [f"thk_{'0' * 16}_{'x' * 43}", "ABCD-EFGH-JKLM-NPQR", "nope"]
    with capture_logs() as logs:
        for i in range(MAX_FAILURES - 1):
            r = await sign_in(client, wrong[i % len(wrong)])
            assert r.status_code == 400, (i, r.status_code)
            clock.now += 1
        r = await sign_in(client, wrong[0])
    assert r.status_code == 429
    assert r.headers["retry-after"] == str(WINDOW_SECONDS - (MAX_FAILURES - 1))
    assert 'class="govuk-error-summary"' in r.text and 'href="#credential"' in r.text
    assert "too many failed sign-ins from this device" in r.text
    assert "Wait 15 minutes and try again" in r.text
    assert r.text.count("<title>Error: ") == 1

    # refused however right the credential now is
    r = await sign_in(client, seeded.tokens["casey"])
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert (await client.get("/")).status_code == 303

    # another client is not affected
    other = browser(api, "192.0.2.99")
    assert (await sign_in(other, seeded.tokens["casey"])).status_code == 303

    # logged and audited without the credential or the address
    failed = [e for e in logs if e["event"] == "web.sign_in_failed"]
    assert len(failed) == MAX_FAILURES
    assert {e["credential"] for e in failed} == {"api_key", "invitation_code", "malformed"}
    assert len({e["client"] for e in failed}) == 1
    assert [e["event"] for e in logs].count("web.sign_in_locked") == 1
    dumped = repr(logs)
    assert "192.0.2.10" not in dumped and all(w not in dumped for w in wrong)
    await api.hub.views.catch_up_partitions(["audit_index"])
    rows = await api.hub.store.fetchall(
        "SELECT line FROM audit_entry WHERE kind = 'sign_in_refused'", ()
    )
    assert len(rows) == 1
    line = bytes(rows[0][0]).decode()
    record = orjson.loads(line)
    assert record["details"]["failures"] == MAX_FAILURES
    assert record["details"]["client"] == failed[0]["client"]
    assert "192.0.2.10" not in line and all(w not in line for w in wrong)

    # once the oldest failures age out of the window, the client may try again
    clock.now += WINDOW_SECONDS
    assert (await sign_in(client, seeded.tokens["casey"])).status_code == 303


async def test_a_sign_in_that_works_clears_the_count(
    api: Api, seeded: Seeded, clock: Clock
) -> None:
    client = browser(api)
    for _ in range(MAX_FAILURES - 1):
        assert (await sign_in(client, "ABCD-EFGH-JKLM-NPQR")).status_code == 400
    assert (await sign_in(client, seeded.tokens["casey"])).status_code == 303
    fresh = browser(api)  # same address, signed out
    for _ in range(MAX_FAILURES - 1):
        assert (await sign_in(fresh, "ABCD-EFGH-JKLM-NPQR")).status_code == 400
    assert (await sign_in(fresh, "ABCD-EFGH-JKLM-NPQR")).status_code == 429


async def test_an_empty_form_is_not_a_guess(api: Api, seeded: Seeded, clock: Clock) -> None:
    client = browser(api)
    for _ in range(MAX_FAILURES + 2):
        assert (await sign_in(client, "")).status_code == 400
    assert (await sign_in(client, seeded.tokens["casey"])).status_code == 303


def test_the_throttle_forgets_the_least_recently_failing_clients_first() -> None:
    clock = Clock()
    throttle = SignInThrottle(max_failures=2, window_seconds=60, max_clients=3, clock=clock)
    for ref in ("a", "b", "c"):
        assert throttle.failed(ref) is None
    assert throttle.failed("a") is not None  # a second failure locks "a" out
    assert throttle.failed("d") is None  # a fourth client: "b" is forgotten
    assert throttle.refusal("a") is not None
    assert throttle.failed("b") is None  # its first failure again
    assert throttle.failed("c") is None  # "b" coming back pushed "c" out
    assert throttle.client_ref("192.0.2.1") != "192.0.2.1"
    assert throttle.client_ref("192.0.2.1") == throttle.client_ref("192.0.2.1")
