"""One identifier has one spelling: an LA code or child id sent in Arabic-Indic or
full-width digits names the same child as its ASCII digits, through the real API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import Api, embedded, running_api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        await a.key("county-sc", "agency", "county-social-care")
        yield a


def worker_joined(la_code: str, la_child_id: str, message_id: str) -> dict[str, Any]:
    return {
        "event_type": "team.practitioner_joined",
        "schema_version": 1,
        "subject": {"la_code": la_code, "la_child_id": la_child_id},
        "source": {"agency": "county-social-care", "message_id": message_id},
        "occurred_at": "2024-09-03T10:00:00Z",
        "payload": {
            "practitioner_id": f"sw-{message_id}",
            "role": "social_worker",
            "agency": "social_care",
            "since": "2024-09-03",
        },
    }


@pytest.mark.parametrize(
    ("la_code", "child_id"),
    [("\u0669\u0669\u0669", "C\u0661\u0662\u0663"), ("\uff19\uff19\uff19", "C\uff11\uff12\uff13")],
    ids=["arabic-indic", "full-width"],
)
async def test_non_ascii_digits_name_the_same_child_as_ascii_ones(
    api: Api, la_code: str, child_id: str
) -> None:
    r = await api.client.post(
        "/ingest/events",
        json={
            "events": [worker_joined("999", "C123", "m-1"), worker_joined(la_code, child_id, "m-2")]
        },
        headers=api.auth("county-sc"),
    )
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert first["status"] in ("appended", "withheld"), first
    assert second["status"] in ("appended", "withheld"), second
    assert second["child_id"] == first["child_id"]
