"""An erasure made through one hub process is honoured by another that had the child's
key and identifier links cached: once its projections apply the tombstone it can no
longer open the child's sealed facts, nor link new facts to the erased child. Two apps
over one embedded data directory stand for two API processes sharing the store."""

from __future__ import annotations

from pathlib import Path

from hub.consent.sealing import ErasedPayload
from hub.events import Envelope
from hub.log import LogName
from tests.e2e.test_erasure import read_log
from tests.support.api import Api, embedded, running_api

UPN = "H801200001001"
SURNAME = "Cachedname"
PUPIL = "education.pupil_identified"


async def catch_up(api: Api) -> None:
    for runner in api.hub.runners:
        for name in runner.projection.logs:
            for part in range(api.hub.log.partitions(name)):
                await runner.catch_up(name, part)


async def opened(api: Api, child: str) -> list[Envelope]:
    records = [*await read_log(api, LogName.EVENTS), *await read_log(api, LogName.WITHHELD)]
    values = [r.value for r in records if child.encode() in r.value]
    out = await api.hub.opener.open_values(values)
    return [e for e in out if isinstance(e, Envelope) and e.event_type == PUPIL]


async def test_another_process_stops_reading_a_child_once_it_sees_the_erasure(
    tmp_path: Path,
) -> None:
    settings = embedded(tmp_path)
    async with running_api(settings) as first, running_api(settings) as second:
        await first.key("oak-school-mis", "agency", "oak-school")
        await first.key("ops", "admin")
        pupil = {
            "event_type": "education.pupil_identified", "schema_version": 1,
            "subject": {"upn": UPN},
            "source": {"agency": "oak-school", "message_id": "pupil-1"},
            "occurred_at": "2024-09-02T09:00:00Z",
            "payload": {"upn": UPN, "surname": SURNAME, "forename": "Pat"},
        }  # fmt: skip
        r = await first.client.post(
            "/ingest/events", json={"events": [pupil]}, headers=first.auth("oak-school-mis")
        )
        assert r.status_code == 200, r.text
        child = str(r.json()["results"][0]["child_id"])
        # the second process reads the child: its key and links are now cached there
        [before] = await opened(second, child)
        assert getattr(before.payload, "surname", None) == SURNAME

        r = await first.client.post(
            f"/children/{child}/erase", json={"reason": "ERQ-3"}, headers=first.auth("ops")
        )
        assert r.status_code == 200, r.text
        await catch_up(second)  # the second process's projections apply the tombstone
        [after] = await opened(second, child)
        assert isinstance(after.payload, ErasedPayload), after.payload
