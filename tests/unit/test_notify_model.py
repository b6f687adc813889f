"""The notice: one id per thing told to one recipient, and wording that names nobody."""

from __future__ import annotations

from datetime import date

from hub.adapters.delivery import sign
from hub.notify.model import KINDS, make_notice, notice_id, render, render_digest, webhook_body


def test_the_same_notice_derived_twice_has_one_id_and_anything_else_another() -> None:
    a = make_notice("advice_overdue", "coordinator:x", "hc-1", "advice:ar-1", plan_id="p-1",
                    due_on=date(2026, 10, 1))  # fmt: skip
    b = make_notice("advice_overdue", "coordinator:x", "hc-1", "advice:ar-1", plan_id="p-1",
                    due_on=date(2026, 10, 1))  # fmt: skip
    assert a == b and a.id.startswith("ntc-")
    others = {
        notice_id("advice_due_soon", "coordinator:x", "hc-1", "advice:ar-1", date(2026, 10, 1)),
        notice_id("advice_overdue", "coordinator:y", "hc-1", "advice:ar-1", date(2026, 10, 1)),
        notice_id("advice_overdue", "coordinator:x", "hc-2", "advice:ar-1", date(2026, 10, 1)),
        notice_id("advice_overdue", "coordinator:x", "hc-1", "advice:ar-2", date(2026, 10, 1)),
        notice_id("advice_overdue", "coordinator:x", "hc-1", "advice:ar-1", date(2026, 10, 2)),
    }
    assert a.id not in others and len(others) == 5


def test_the_wording_holds_the_kind_the_due_date_and_the_link_and_no_other_id() -> None:
    for kind in KINDS:
        n = make_notice(kind, "coordinator:cm.jones", "hc-7f3a", "event-9", plan_id="p-42",
                        due_on=date(2026, 12, 24))  # fmt: skip
        subject, body = render(n, "https://hub.example.org/")
        assert subject.startswith("TAC Hub: ")
        assert "https://hub.example.org/plan/p-42" in body
        assert "cm.jones" not in body + subject  # the recipient's own name is not repeated
        assert "event-9" not in body and "hc-7f3a" not in body + subject  # the link is all
        if kind.endswith(("due_soon", "overdue")):
            assert "2026-12-24" in body
    child = make_notice("child_unassigned", "coordinator:a", "hc-9", "unassigned")
    assert child.link == "/child/hc-9"
    assert webhook_body(child, "https://h")["link"] == "https://h/child/hc-9"


def test_a_digest_lists_each_notice_with_its_link() -> None:
    items = [
        make_notice(
            "milestone_overdue",
            "coordinator:a",
            f"hc-{i}",
            f"k{i}",
            plan_id=f"p-{i}",
            due_on=date(2026, 11, i + 1),
        )
        for i in range(3)
    ]
    subject, body = render_digest(items, date(2026, 12, 3), "https://h")
    assert "3 item(s)" in subject
    assert [line for line in body.splitlines() if line.startswith("- ")] == [
        f"- A statutory time limit has passed (due 2026-11-0{i + 1}): https://h/plan/p-{i}"
        for i in range(3)
    ]


def test_a_webhook_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    import hashlib
    import hmac

    body = b'{"notice_id":"ntc-1"}'
    assert (
        sign("s3cret", 1700000000, body)
        == hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    )
    assert sign("s3cret", 1700000001, body) != sign("s3cret", 1700000000, body)
