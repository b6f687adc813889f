"""Deriving notices from what the projections keep (real SQLite store): a child on
nobody's caseload is told to the triage coordinators after the grace days, a handover to
the child's coordinators within the lookback, an agency's webhook hears of the children
it publishes about, and deriving again adds nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from hub.notify.secret_box import SecretBox
from hub.service_layer.notify import DeriveNotices, NotifyConfig
from hub.store.notify_outbox import SqlOutbox
from hub.store.sqlite import SqliteReadStore

TODAY = date(2026, 12, 3)
NOW = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


async def _rows(store: SqliteReadStore) -> list[tuple[str, str, str]]:
    rows = await store.fetchall(
        "SELECT kind, recipient, child_id FROM notify_outbox ORDER BY kind, recipient, child_id"
    )
    return [(str(k), str(r), str(c)) for k, r, c in rows]


async def test_unassigned_children_handovers_and_agency_webhooks(tmp_path: Path) -> None:
    store = SqliteReadStore(tmp_path / "store.db")
    await store.start()
    try:
        async with store.transaction() as tx:
            await tx.executemany(
                "INSERT INTO caseload (coordinator, child_id, since) VALUES (?, ?, ?)",
                [("cm.a", "hc-held", "2026-11-01"), ("cm.b", "hc-held", "2026-11-01")],
            )
            await tx.executemany(
                "INSERT INTO notify_child (child_id, agency, first_seen) VALUES (?, ?, ?)",
                [("hc-held", "oak-school", "2026-11-01"), ("hc-new", "oak-school", "2026-12-01"),
                 ("hc-today", "oak-school", "2026-12-03")],
            )  # fmt: skip
            await tx.executemany(
                "INSERT INTO notify_source (event_id, child_id, kind, occurred_on)"
                " VALUES (?, ?, ?, ?)",
                [("ev-1", "hc-held", "key_worker_handover", "2026-12-02"),
                 ("ev-0", "hc-held", "consent_changed", "2026-10-01")],  # past the lookback
            )  # fmt: skip
        outbox = SqlOutbox(store, SecretBox(bytes(range(32))))
        await outbox.set_webhook("oak-school", "https://oak.example.org/hub", "s" * 20, NOW)
        derive = DeriveNotices(store, outbox, NotifyConfig(unassigned_after_days=1))
        assert await derive(TODAY, NOW) == 6
        assert await _rows(store) == [
            ("child_unassigned", "agency:oak-school", "hc-new"),
            ("child_unassigned", "coordinator:cm.a", "hc-new"),
            ("child_unassigned", "coordinator:cm.b", "hc-new"),
            ("key_worker_handover", "agency:oak-school", "hc-held"),
            ("key_worker_handover", "coordinator:cm.a", "hc-held"),
            ("key_worker_handover", "coordinator:cm.b", "hc-held"),
        ]
        assert await derive(TODAY, NOW) == 0  # derived again: the same notices
        # with a triage list, only they hear of unassigned children; a new day's child too
        triage = DeriveNotices(store, outbox, NotifyConfig(unassigned_after_days=0,
                                                           triage=("cm.t",)))  # fmt: skip
        assert await triage(TODAY, NOW) == 3
        new = [r for r in await _rows(store) if r[2] == "hc-today" or r[1] == "coordinator:cm.t"]
        assert sorted(new) == [
            ("child_unassigned", "agency:oak-school", "hc-today"),
            ("child_unassigned", "coordinator:cm.t", "hc-new"),
            ("child_unassigned", "coordinator:cm.t", "hc-today"),
        ]
    finally:
        await store.close()
