"""Write-side claims: what the gate takes is claimed under a unique key before it is
appended, so that any number of processes take one message once and one consent id once.

`ingest_claim` is keyed by the idempotency key (source agency, message id, the fact's
place in the message); `appended_at` is set once the fact is on the log, so a claim left
by a process that died between the claim and the append can be recognised and taken
over. `consent_claim` makes consent ids unique across the hub. Both are filled from
what the earlier hub had already taken (its `ingest_dedupe` and `consent_event` views).
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS ingest_claim ("
    " dedupe_key TEXT PRIMARY KEY, event_id TEXT NOT NULL, child_id TEXT NOT NULL,"
    " claimed_at TEXT NOT NULL, appended_at TEXT)",
    "INSERT INTO ingest_claim (dedupe_key, event_id, child_id, claimed_at, appended_at)"
    " SELECT dedupe_key, event_id, child_id, 'before-migration', 'before-migration'"
    " FROM ingest_dedupe WHERE TRUE ON CONFLICT (dedupe_key) DO NOTHING",  # WHERE: SQLite's parse
    "CREATE TABLE IF NOT EXISTS consent_claim ("
    " consent_id TEXT PRIMARY KEY, child_id TEXT NOT NULL)",
    "INSERT INTO consent_claim (consent_id, child_id)"
    " SELECT consent_id, MIN(child_id) FROM consent_event WHERE consent_id IS NOT NULL"
    " GROUP BY consent_id ON CONFLICT (consent_id) DO NOTHING",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS consent_claim")
    op.execute("DROP TABLE IF EXISTS ingest_claim")
