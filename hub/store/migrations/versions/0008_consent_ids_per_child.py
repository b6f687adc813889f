"""Consent ids per child: `consent_claim` is keyed by (child, consent id), so one child's
consent id says nothing about another's and cannot be taken from under them (a consent id
is what the family's own form or the LA's system calls it, unique within the child's
record). Claims already made keep their child.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

STATEMENTS = (
    "CREATE TABLE consent_claim_per_child ("
    " child_id TEXT NOT NULL, consent_id TEXT NOT NULL, PRIMARY KEY (child_id, consent_id))",
    "INSERT INTO consent_claim_per_child (child_id, consent_id)"
    " SELECT child_id, consent_id FROM consent_claim",
    "DROP TABLE consent_claim",
    "ALTER TABLE consent_claim_per_child RENAME TO consent_claim",
    # every (child, consent id) the hub recorded, including those the hub-wide rule refused
    "INSERT INTO consent_claim (child_id, consent_id)"
    " SELECT DISTINCT child_id, consent_id FROM consent_event WHERE consent_id IS NOT NULL"
    " ON CONFLICT (child_id, consent_id) DO NOTHING",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("ALTER TABLE consent_claim RENAME TO consent_claim_per_child")
    op.execute("CREATE TABLE consent_claim (consent_id TEXT PRIMARY KEY, child_id TEXT NOT NULL)")
    op.execute(
        "INSERT INTO consent_claim (consent_id, child_id) SELECT consent_id, MIN(child_id)"
        " FROM consent_claim_per_child GROUP BY consent_id"
    )
    op.execute("DROP TABLE consent_claim_per_child")
