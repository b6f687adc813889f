"""Natural keys are pure: the same fact in any message and at any place has one key; other
content, another child as the source names them or another source is another key; a FHIR
fact is keyed by its resource; no key holds an identifier; versions group latest-last."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

from hub.events.education import SenStatusRecorded
from hub.events.envelope import Source
from hub.events.health import ConditionRecorded
from hub.events.team import PractitionerJoined
from hub.ingest.model import InboundFact, Subject
from hub.ingest.natural_keys import (
    current_versions,
    fact_key,
    group_versions,
    restatement_key,
    version_rank,
)

UPN = "H801200001001"


def sen(message: str, ref: str, **payload: object) -> InboundFact:
    return InboundFact(
        subject=Subject(upn=UPN, date_of_birth=date(2015, 3, 2)),
        payload=SenStatusRecorded(sen_provision="K", start_date=date(2024, 9, 1), **payload),
        occurred_at=datetime(2024, 9, 2, tzinfo=UTC),
        source=Source(agency="oak-school", organisation_code="8881234", message_id=message),
        ref=ref,
    )


def test_a_restatement_has_the_key_of_the_fact_it_restates_and_a_change_does_not() -> None:
    first = restatement_key(sen("ctf:2024", "Pupil[1]/SENhistory/SEN[1]"))
    assert first is not None and UPN not in first and "8881234" not in first
    assert restatement_key(sen("ctf:2025", "Pupil[7]/SENhistory/SEN[2]")) == first
    assert restatement_key(sen("ctf:2025", "x", end_date=date(2025, 3, 31))) != first
    other_child = replace(sen("m", "x"), subject=Subject(upn=UPN, date_of_birth=date(2014, 1, 1)))
    assert restatement_key(other_child) != first  # named otherwise: identity decides again
    other_school = replace(sen("m", "x"), source=Source(agency="elm-school", message_id="m"))
    assert restatement_key(other_school) != first


def test_the_versions_of_one_fact_share_a_fact_key_and_group_latest_last() -> None:
    a, b = sen("m1", "r").payload, sen("m2", "r", end_date=date(2025, 3, 31)).payload
    source = sen("m1", "r").source
    assert fact_key(source, a) == fact_key(source, b) is not None
    assert group_versions(["x1", "y", "x2"], lambda s: s[0] if s != "y" else None) == [
        ("x2", ["x1"]),
        ("y", []),
    ]


def test_a_fhir_fact_is_keyed_by_its_resource_and_a_type_without_fields_by_nothing() -> None:
    joined = PractitionerJoined(practitioner_id="p1", role="gp", agency="health",
                                since=date(2024, 1, 1))  # fmt: skip
    source = Source(agency="city-health")
    one = fact_key(source, joined, "Bundle.entry[3].resource(PractitionerRole/r1)")
    assert one == fact_key(source, joined, "Bundle.entry[9].resource(PractitionerRole/r1)")
    assert one != fact_key(source, joined, "Bundle.entry[3].resource(PractitionerRole/r2)")
    assert fact_key(source, joined, "Team[1]") is None  # no natural key: the message's applies


def condition(
    message: str, version: str | None, updated: datetime | None, **payload: object
) -> InboundFact:
    """A FHIR Condition as the adapter gives it: its resource and version on the source."""
    return InboundFact(
        subject=Subject(nhs_number="9434765919"),
        payload=ConditionRecorded(condition_ref="Condition/c1", code={"text": "x"}, **payload),  # type: ignore[arg-type]
        occurred_at=datetime(2024, 9, 2, tzinfo=UTC),
        source=Source(agency="city-health", message_id=message, record_id="Condition/c1",
                      record_version=version, record_updated=updated),
        ref="Bundle.entry[1].resource(Condition/c1)",
    )  # fmt: skip


def test_a_fhir_resource_at_one_version_is_one_fact_whatever_else_differs() -> None:
    at = datetime(2024, 9, 1, tzinfo=UTC)
    first = restatement_key(condition("Bundle/a", "2", at, clinical_status="active"))
    # the same versionId from another bundle, its payload read otherwise (narrative, meta)
    assert restatement_key(condition("Bundle/b", "2", at, clinical_status="remission")) == first
    assert restatement_key(condition("Bundle/b", "3", at, clinical_status="active")) != first
    # lastUpdated stands for the version when there is no versionId
    only_updated = restatement_key(condition("Bundle/c", None, at))
    assert only_updated == restatement_key(condition("Bundle/d", None, at, clinical_status="x"))
    assert only_updated != restatement_key(
        condition("Bundle/d", None, datetime(2024, 9, 5, tzinfo=UTC))
    )
    # no version at all: the content decides, as for any other fact
    plain = restatement_key(condition("Bundle/e", None, None, clinical_status="active"))
    assert plain != restatement_key(condition("Bundle/e", None, None, clinical_status="resolved"))


def test_the_current_version_is_the_newest_by_the_source_not_the_last_to_arrive() -> None:
    at = datetime(2024, 9, 1, tzinfo=UTC)
    v1, v3, v2 = (condition("m", v, at) for v in ("1", "3", "2"))  # v2 arrives last
    key = fact_key(v1.source, v1.payload)
    assert key is not None and key == fact_key(v3.source, v3.payload)
    [(current, earlier)] = group_versions(
        [v1, v3, v2], lambda f: fact_key(f.source, f.payload), lambda f: version_rank(f.source)
    )
    assert current is v3 and earlier == [v1, v2]  # history oldest first by version
    assert current_versions(
        [v1, v3, v2], lambda f: fact_key(f.source, f.payload), lambda f: version_rank(f.source)
    ) == [v3]
    # lastUpdated orders versions whose versionIds are not numbers
    early, late = (condition("m", "abc", datetime(2024, 9, d, tzinfo=UTC)) for d in (9, 1))
    [(now, _)] = group_versions([early, late], lambda f: "k", lambda f: version_rank(f.source))
    assert now is early
    # facts without source versions: arrival decides and the fold keeps them all
    a, b = sen("m1", "r"), sen("m2", "r", end_date=date(2025, 3, 31))
    kept = current_versions([a, b], lambda f: fact_key(f.source, f.payload),
                            lambda f: version_rank(f.source))  # fmt: skip
    assert kept == [a, b]


def test_keyed_by_the_hubs_secret_a_key_cannot_be_made_without_it() -> None:
    """Restatement keys stay on the log after an erasure: keyed (HMAC) by a secret
    derived from the master key, nobody holding the log alone can recompute one from a
    guess of the child and the fact to confirm it; with the secret they work as before."""
    secret, other = bytes(range(32)), bytes(32)
    plain = restatement_key(sen("ctf:2024", "a"))
    keyed = restatement_key(sen("ctf:2024", "a"), secret=secret)
    assert keyed is not None and plain is not None and keyed != plain
    assert restatement_key(sen("ctf:2025", "b"), secret=secret) == keyed  # still absorbed
    assert restatement_key(sen("ctf:2024", "a"), secret=other) != keyed
    assert keyed.startswith("oak-school|nk|") and UPN not in keyed
