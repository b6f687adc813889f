"""After an erasure and `hub replay --all`, no byte of the embedded hub's files (log and
store, with their write-ahead logs) holds a value from the erased child's health facts:
condition codes, displays and text, encounter types, observation values; the child's
name and date-of-birth fingerprint is gone too, so nothing says such a child existed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hub.auth.keys import Publishing
from tests.support.api import embedded, running_api

UPN = "H801200001001"
NHS = "9434765919"
DOB = "2015-03-02"
# distinctive values, one per field of each health fact (none is a word the hub uses)
SEEDED = {
    "condition_display": "Cerebral palsy Qv7",
    "condition_text": "Spastic diplegia Wz3",
    "condition_note": "Note about the child Kp9",
    "severity": "Severity word Hx2",
    "encounter_type": "Physiotherapy review Jm4",
    "encounter_reason": "Reason for visit Ty8",
    "observation_code": "Gross motor score Lb5",
    "observation_value": "Value text Rn6",
}
SUBJECT = {"upn": UPN, "nhs_number": NHS, "date_of_birth": DOB,
           "given_name": "Ava", "family_name": "Residue"}  # fmt: skip


def concept(text: str, display: str | None = None) -> dict[str, Any]:
    coding = [{"system": "http://snomed.info/sct", "code": "128188000", "display": display}]
    return {"text": text, "coding": coding if display else []}


def health_events() -> list[dict[str, Any]]:
    source = {"agency": "city-health", "organisation_code": "RR8"}
    common = {"subject": SUBJECT, "occurred_at": "2024-09-03T10:00:00Z", "schema_version": 1}
    return [
        {**common, "event_type": "health.condition_recorded",
         "source": {**source, "message_id": "cond-1"},
         "payload": {"condition_ref": "Condition/1",
                     "code": concept(SEEDED["condition_text"], SEEDED["condition_display"]),
                     "severity": concept(SEEDED["severity"]),
                     "notes": [SEEDED["condition_note"]]}},
        {**common, "event_type": "health.encounter_recorded",
         "source": {**source, "message_id": "enc-1"},
         "payload": {"encounter_ref": "Encounter/1", "status": "finished",
                     "attendance": "attended", "types": [concept(SEEDED["encounter_type"])],
                     "reasons": [concept(SEEDED["encounter_reason"])]}},
        {**common, "event_type": "health.observation_recorded",
         "source": {**source, "message_id": "obs-1"},
         "payload": {"observation_ref": "Observation/1", "status": "final",
                     "code": concept(SEEDED["observation_code"]),
                     "value": {"kind": "string", "text": SEEDED["observation_value"]}}},
    ]  # fmt: skip


def residue(data_dir: Path) -> dict[str, list[str]]:
    """Each seeded value found in the raw bytes of any file of the data directory."""
    found: dict[str, list[str]] = {}
    for path in sorted(data_dir.iterdir()):
        if path.is_file():
            blob = path.read_bytes()
            hits = [v for v in SEEDED.values() if v.encode() in blob]
            if hits:
                found[path.name] = hits
    return found


def hub_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUB_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def test_after_erasure_and_replay_no_file_holds_the_childs_health_data(
    tmp_path: Path,
) -> None:
    settings = embedded(tmp_path)
    data_dir = settings.data_dir
    async with running_api(settings, run_projector=True) as api:
        await api.key("city-health", "agency", "city-health",
                      publishing=Publishing("health", ("RR8",)))  # fmt: skip
        await api.key("ops", "admin")
        r = await api.client.post(
            "/ingest/events", json={"events": health_events()}, headers=api.auth("city-health")
        )
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert all(res["status"] in ("appended", "withheld") for res in results), results
        child = results[0]["child_id"]
        # sealed on the logs from the start: no seeded value is in any file ...
        assert residue(data_dir) == {}
        # ... yet the facts open with the child's keys (so the search can fail)
        fingerprints = await api.hub.store.fetchall(
            "SELECT fingerprint FROM match_fingerprint WHERE child_id = ?", (child,)
        )
        assert fingerprints, "the name and date of birth were fingerprinted"

        r = await api.client.post(
            f"/children/{child}/erase", json={"reason": "ERQ-9"}, headers=api.auth("ops")
        )
        assert r.status_code == 200, r.text
        left = await api.hub.store.fetchall(
            "SELECT COUNT(*) FROM match_fingerprint WHERE child_id = ?", (child,)
        )
        assert left[0][0] == 0
        queued = await api.hub.store.fetchall(
            "SELECT COUNT(*) FROM match_queue_item WHERE fingerprint = ?", (fingerprints[0][0],)
        )
        assert queued[0][0] == 0

    replay = hub_cli("replay", "--all", data_dir=data_dir)
    assert replay.returncode == 0, replay.stderr
    assert residue(data_dir) == {}


RARE_DOB = "2013-07-19"


async def catch_up(api: Any) -> None:
    for runner in api.hub.runners:
        for name in runner.projection.logs:
            for part in range(api.hub.log.partitions(name)):
                await runner.catch_up(name, part)


def store_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("store.db*")) if p.is_file())


async def test_rows_the_tombstone_deletes_are_not_left_in_the_sqlite_files(
    tmp_path: Path,
) -> None:
    async with running_api(embedded(tmp_path)) as api:
        data_dir = api.hub.settings.data_dir
        await api.key("city-health", "agency", "city-health",
                      publishing=Publishing("health", ("RR8",)))  # fmt: skip
        await api.key("ops", "admin")
        await api.key("casey", "coordinator")
        patient = {
            "event_type": "health.patient_identified", "schema_version": 1,
            "subject": {"nhs_number": NHS, "date_of_birth": RARE_DOB},
            "source": {"agency": "city-health", "organisation_code": "RR8",
                       "message_id": "pat-1"},
            "occurred_at": "2024-09-03T10:00:00Z",
            "payload": {"patient_ref": "Patient/1", "nhs_number": NHS,
                        "date_of_birth": RARE_DOB, "family_name": "Residue"},
        }  # fmt: skip
        r = await api.client.post(
            "/ingest/events", json={"events": [patient]}, headers=api.auth("city-health")
        )
        assert r.status_code == 200, r.text
        child = r.json()["results"][0]["child_id"]
        r = await api.client.post(
            f"/children/{child}/coordinators",
            json={"coordinator": "casey"},
            headers=api.auth("ops"),
        )
        assert r.status_code == 200, r.text
        consent = {
            "consent": {
                "consent_id": "c-1", "decision": "permit",
                "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
                "given_on": "2024-09-04", "period": {"start": "2024-09-04"},
                "scope": {"categories": ["identity", "health"], "roles": ["coordinator"]},
                "capture_method": "form", "recorded_by": "ignored",
            },
            "child_date_of_birth": RARE_DOB,
        }  # fmt: skip
        r = await api.client.post(f"/children/{child}/consents", json=consent,
                                  headers=api.auth("casey"))  # fmt: skip
        assert r.status_code == 200, r.text
        await catch_up(api)
        await api.hub.store.checkpoint()  # type: ignore[attr-defined]
        # a projection holds the date of birth in the clear (the caseload's standing)
        assert RARE_DOB.encode() in store_bytes(data_dir)

        r = await api.client.post(
            f"/children/{child}/erase", json={"reason": "ERQ-10"}, headers=api.auth("ops")
        )
        assert r.status_code == 200, r.text
        await catch_up(api)  # the projections apply the tombstone and delete their rows
        assert RARE_DOB.encode() not in store_bytes(data_dir)
