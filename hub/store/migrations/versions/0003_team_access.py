"""Team access: credentials that carry a practitioner's or a family member's identity,
one-time family invitations, and the index that finds a practitioner's teams.

`api_key` gains the practitioner's id, policy role and organisation (role
`practitioner`) and the child and capacity a family member acts in (role `family`).
`family_invitation` holds a coordinator's one-time invitation by the digest of its code
(never the code): which child, in what capacity, until when, and once redeemed, by which
key. `tac_fact_subject` lets the hub find every team a practitioner is on.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = ("practitioner_id", "policy_role", "organisation", "child_id", "capacity")

STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS family_invitation ("
    " invitation_id TEXT PRIMARY KEY, code_hash TEXT NOT NULL UNIQUE, child_id TEXT NOT NULL,"
    " capacity TEXT NOT NULL, invited_by TEXT NOT NULL, created_at TEXT NOT NULL,"
    " expires_at TEXT NOT NULL, redeemed_at TEXT, key_id TEXT)",
    "CREATE INDEX IF NOT EXISTS family_invitation_child ON family_invitation (child_id)",
    "CREATE INDEX IF NOT EXISTS tac_fact_subject ON tac_fact (subject_ref, child_id)",
    "CREATE INDEX IF NOT EXISTS api_key_child ON api_key (child_id)",
)


def upgrade() -> None:
    for column in COLUMNS:
        op.execute(f"ALTER TABLE api_key ADD COLUMN {column} TEXT")
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS api_key_child")
    op.execute("DROP INDEX IF EXISTS tac_fact_subject")
    op.execute("DROP TABLE IF EXISTS family_invitation")
    for column in COLUMNS:
        op.execute(f"ALTER TABLE api_key DROP COLUMN {column}")
