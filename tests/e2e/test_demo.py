"""The demo the README promises: `hub demo`'s synthetic cohort, loaded through the real
adapters and routes into a fresh embedded hub, shows the demo coordinator a caseload with
overdue advice (and every other stage of the journey) and a team of thirty around one
child, and shows the IG auditor a trail that verifies. The cohort is the same for the same
seed, its identifiers pass their checks, and the demo never wipes a directory it did not
make."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from hub.api.app import create_app
from hub.cli import main as hub_main
from hub.demo import (
    MARKER,
    PARENT,
    PRACTITIONER,
    DemoDirError,
    open_in_process,
    prepare_demo_dir,
    run_demo_load,
)
from hub.demo.cohort import COMMUNITY_TRUST, SCHOOLS, build_cohort
from hub.demo.journeys import final_date
from hub.demo.messages import cin_census_message, ctf_message, health_bundle
from hub.identity.identifiers import check_nhs_number, check_upn
from hub.settings import Settings

TODAY = date(2026, 11, 22)


def demo_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, sqlite_synchronous="NORMAL", _env_file=None)


async def test_the_demo_shows_overdue_advice_a_team_of_thirty_and_a_trail_that_verifies(
    tmp_path: Path,
) -> None:
    settings = demo_settings(prepare_demo_dir(tmp_path / "demo-data"))
    lines: list[str] = []
    cohort, result = await run_demo_load(settings, children=40, seed=7, progress=lines.append)
    assert any("CTF" in line and "appended" in line for line in lines), lines
    assert result.outcomes["appended"] > 1000 and result.outcomes["rejected"] == 0
    assert result.outcomes["withheld"] > 0  # a refusal, a family not yet asked, a s.47 enquiry
    assert len(result.plan_ids) == sum(1 for c in cohort.children if c.scenario != "no_plan")

    # served afresh from the same data directory, as `hub demo` serves it
    async with open_in_process(create_app(settings)) as client:
        coordinator = {"Authorization": f"Bearer {result.keys.coordinator}"}
        r = await client.get("/caseload", headers=coordinator)
        assert r.status_code == 200, r.text
        caseload = r.json()
        assert caseload["total"] == 40
        entries: list[dict[str, Any]] = caseload["children"]
        deadlines = Counter(
            (e["next_deadline"]["rule"], e["next_deadline"]["state"])
            for e in entries
            if e["next_deadline"]
        )
        assert deadlines[("advice", "overdue")] >= 1, deadlines
        assert deadlines[("advice", "paused")] >= 1, deadlines
        assert deadlines[("assessment_decision", "overdue")] >= 1, deadlines
        assert deadlines[("annual_review", "overdue")] >= 1, deadlines
        assert ("phase_transfer", "due") in deadlines, deadlines
        assert {"requested", "assessing", "drafting", "final"} <= {e["status"] for e in entries}
        assert entries[0]["overdue_count"] > 0  # most urgent first
        # children are named as their schools and health records name them
        by_id = {result.child_id(c): c for c in cohort.children}
        named = {e["child_id"]: e["name"] for e in entries}
        assert sum(1 for n in named.values() if n) >= 35, named
        for child_id, name in named.items():
            child = by_id[child_id]
            assert name is None or (child.given in name and child.family in name), (name, child)

        overdue = next(
            e for e in entries if e["next_deadline"] and e["next_deadline"]["rule"] == "advice"
            and e["next_deadline"]["state"] == "overdue"
        )  # fmt: skip
        r = await client.get(f"/plans/{overdue['plan_id']}/timeline", headers=coordinator)
        assert r.status_code == 200, r.text

        big = result.child_id(cohort.big_team_child)
        r = await client.get(f"/children/{big}/team", headers=coordinator)
        assert r.status_code == 200, r.text
        team = r.json()
        assert team["member_count"] == 30
        ids = [m["practitioner_id"] for g in team["agencies"] for m in g["members"]]
        assert len(set(ids)) == 30
        # each member says how to reach them at work, whichever system sent them
        contacts = [m["contact"] for g in team["agencies"] for m in g["members"]]
        assert all(c and "@example.org" in c and "0113 496 0" in c for c in contacts), contacts
        # ... and is named, whichever system sent them (FHIR, MIS, case system, events)
        unnamed = [m["practitioner_id"] for g in team["agencies"] for m in g["members"]
                   if not m["name"]]  # fmt: skip
        assert unnamed == [], unnamed
        # ... and has a role from the controlled vocabulary (DOMAIN.md's thirty, all named)
        outside = [
            m["role"] for g in team["agencies"] for m in g["members"] if not m["in_vocabulary"]
        ]
        assert outside == [], outside
        by_agency = {g["agency"]: g["count"] for g in team["agencies"]}
        assert {"education", "health", "social_care", "voluntary"} <= set(by_agency), by_agency
        assert team["key_worker"] is not None and team["key_working_model"] == "multi_person"
        cover = team["key_worker"]["cover"]  # the social worker covers the casework officer
        assert (
            cover["cover_practitioner_id"]
            == cohort.big_team_child.member("social_worker").practitioner_id
        )  # type: ignore[union-attr]
        assert cover["cover_contact"].startswith("SEN team duty line")
        assert cover["name"] == cohort.big_team_child.member("social_worker").name  # type: ignore[union-attr]
        # the latest annual review is concluded, with progress towards each outcome
        reviewed = next(c for c in cohort.children if c.scenario == "phase_transfer")
        plan = result.plan_ids[reviewed.index]
        r = await client.get(f"/plans/{plan}/timeline", headers=coordinator)
        assert r.status_code == 200, r.text
        timeline = r.json()
        [review] = [c for c in timeline["contributions"] if c["kind"] == "review"]
        assert (
            review["agreed_with_family"] and timeline["next_review_on"] == review["next_review_on"]
        )
        # two years of census returns: each CIN episode once, last year's open version
        # under its history
        episodes = []
        for c in cohort.children:
            if c.social_care != "cin_census":
                continue
            r = await client.get(f"/children/{result.child_id(c)}/record", headers=coordinator)
            assert r.status_code == 200, r.text
            episodes += [
                e
                for entries in r.json()["agencies"].values()
                for e in entries
                if e["event_type"] == "social_care.cin_episode_recorded"
            ]
        assert episodes, "the coordinator sees the census children's CIN episodes"
        by_referral = Counter(e["payload"]["referral_date"] for e in episodes)
        assert max(by_referral.values()) == 1, by_referral  # one fact per episode
        restated = [e for e in episodes if e["history"]]
        assert restated, "an episode reported open last year and closed this year"
        assert all(e["payload"]["closure_date"] for e in restated)
        assert all(h["payload"].get("closure_date") is None for e in restated for h in e["history"])
        section_e = [c for c in timeline["contributions"] if c["kind"] == "outcome"]
        progressed = [o for o in section_e if o["latest_progress"]]
        assert len(progressed) == len(reviewed.needs) >= 1, section_e
        # a key worker hands over to the casework officer: both shown while the overlap runs
        handing = [
            c for c in cohort.children if c.scenario == "review_due" and c.member("key_worker")
        ]
        assert handing, "the cohort has a child in review with a key worker"
        r = await client.get(f"/children/{result.child_id(handing[0])}/team", headers=coordinator)
        assert r.status_code == 200, r.text
        kws = r.json()["key_workers"]
        assert [k["role"] for k in kws] == ["la_sen_officer", "key_worker"], kws
        assert (
            kws[1]["handing_over_until"] and kws[1]["handing_over_to"] == kws[0]["practitioner_id"]
        )
        assert r.json()["key_worker"]["practitioner_id"] == kws[0]["practitioner_id"]
        # plans in the 20-week process with no key worker are flagged on the caseload
        flagged = [e for e in entries if e["warnings"]]
        assert flagged and all(
            e["status"] in ("requested", "assessing", "drafting") for e in flagged
        )
        assert team["open_actions"]

        # the big team child's SENCo and parent have their own tokens, and reach the child
        senco = {"Authorization": f"Bearer {result.keys.tokens[PRACTITIONER]}"}
        r = await client.get("/me/children", headers=senco)
        assert r.status_code == 200 and big in [c["child_id"] for c in r.json()["children"]]
        r = await client.get(f"/children/{big}/team", headers=senco)
        assert r.status_code == 200, r.text
        assert 0 < r.json()["member_count"] <= 30
        parent = {"Authorization": f"Bearer {result.keys.tokens[PARENT]}"}
        r = await client.get(f"/children/{big}/team", headers=parent)
        assert r.status_code == 200 and r.json()["member_count"] > 0, r.text
        r = await client.get(f"/children/{big}/access-log", headers=parent)
        assert r.status_code == 200 and any(
            "(senco) looked at the team around the child" in line["text"]
            for line in r.json()["lines"]
        ), r.text
        other = next(result.child_id(c) for c in cohort.children[1:])
        assert (await client.get(f"/children/{other}/team", headers=parent)).status_code == 404

        auditor = {"Authorization": f"Bearer {result.keys.ig_auditor}"}
        r = await client.get("/audit/verify", headers=auditor)
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True


def test_the_cohort_is_the_same_for_the_same_seed_and_its_identifiers_pass_their_checks() -> None:
    one, two = build_cohort(20, seed=3, today=TODAY), build_cohort(20, seed=3, today=TODAY)
    finals = {c.index: d for c in one.children if (d := final_date(c, TODAY))}
    assert ctf_message(one, SCHOOLS[0], finals) == ctf_message(two, SCHOOLS[0], finals)
    assert health_bundle(one, COMMUNITY_TRUST) == health_bundle(two, COMMUNITY_TRUST)
    assert cin_census_message(one) == cin_census_message(two)
    other = build_cohort(20, seed=4, today=TODAY)
    assert [c.nhs_number for c in other.children] != [c.nhs_number for c in one.children]

    numbers = [c.nhs_number for c in one.children]
    assert len(set(numbers)) == len(numbers)
    for child in one.children:
        assert child.nhs_number.startswith("999")  # the range kept for testing
        check_nhs_number(child.nhs_number)
        if child.upn is not None:
            check_upn(child.upn)
    assert len(one.big_team_child.team) == 30


def test_the_demo_never_wipes_a_directory_it_did_not_make(tmp_path: Path) -> None:
    real = tmp_path / "data"
    real.mkdir()
    (real / "log.db").write_bytes(b"a real hub's log")
    with pytest.raises(DemoDirError):
        prepare_demo_dir(real)
    assert hub_main(["demo", "--data-dir", str(real), "--port", "0"]) == 2
    assert (real / "log.db").read_bytes() == b"a real hub's log"

    demo = prepare_demo_dir(tmp_path / "demo-data")
    (demo / "log.db").write_bytes(b"yesterday's demo")
    again = prepare_demo_dir(demo)
    assert (again / MARKER).is_file() and not (again / "log.db").exists()
