"""A big SSDA903 return does not hold the write side: its facts are taken a batch at a
time, and a request that arrives while it is being taken is answered before it is done.
Shown by ordering on the logs, not by timing: when the small request's answer arrives,
only part of the big file's records are on the logs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hub.log import LogName
from hub.settings import Settings
from tests.support.api import Api, running_api

COLUMNS = "CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,URN"
EPISODES = 3000
BATCH = 200


def big_return() -> bytes:
    rows = [f"C{n},01/04/2022,S,C2,N1,U1,PR1,01/10/2022,E11,,1234567" for n in range(EPISODES)]
    return ("\n".join([COLUMNS, *rows]) + "\n").encode()


async def records_on_logs(api: Api) -> int:
    total = 0
    for name in (LogName.EVENTS, LogName.WITHHELD):
        total += sum((await api.hub.log.end_offsets(name)).values())
    return total


async def test_a_request_is_answered_while_a_big_return_is_being_taken(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        ingest_batch_facts=BATCH,
        _env_file=None,  # type: ignore[call-arg]
    )
    async with running_api(settings) as api:
        await api.key("county-sc", "agency", "county-social-care")
        await api.key("school", "agency", "oak-school")
        body = big_return()
        big = asyncio.create_task(
            api.client.post(
                "/ingest/social-care?la_code=801", content=body,
                headers={**api.auth("county-sc"), "content-type": "text/csv"},
            )
        )  # fmt: skip
        while await records_on_logs(api) == 0:  # the big return's first batch has landed
            assert not big.done(), big.result().text
            await asyncio.sleep(0)
        small = {
            "event_type": "education.sen_status_recorded", "schema_version": 2,
            "subject": {"upn": "H801200001001"},
            "source": {"agency": "oak-school", "message_id": "sen-1"},
            "occurred_at": "2024-09-02T09:00:00Z",
            "payload": {"sen_provision": "K", "start_date": "2024-09-01", "needs": []},
        }  # fmt: skip
        r = await api.client.post(
            "/ingest/events", json={"events": [small]}, headers=api.auth("school")
        )
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["status"] in ("appended", "withheld"), r.text
        seen_then = await records_on_logs(api)
        answer = await big
        assert answer.status_code == 200, answer.text
        taken = answer.json()["summary"]
        assert taken["facts"] >= EPISODES and taken["rejected"] == 0, taken
        # the small request was answered with most of the big return still to come
        assert seen_then < await records_on_logs(api) - BATCH
