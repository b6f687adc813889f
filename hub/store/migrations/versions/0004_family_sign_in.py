"""Family sign-in through an identity provider: which children an OIDC subject acts for.

A family member who signs in with an identity provider (e.g. GOV.UK One Login) redeems
their invitation while signed in; `family_binding` then links the issuer and subject of
their tokens to the child and the capacity the invitation named. A token carries no
child: the binding is the hub's own record, revoked with the child's erasure.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE IF NOT EXISTS family_binding ("
        " issuer TEXT NOT NULL, subject TEXT NOT NULL, child_id TEXT NOT NULL,"
        " capacity TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL,"
        " PRIMARY KEY (issuer, subject, child_id))"
    )
    op.execute("CREATE INDEX IF NOT EXISTS family_binding_child ON family_binding (child_id)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS family_binding")
