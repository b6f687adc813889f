"""Signed audit chain heads: each `audit_head` row carries an Ed25519 signature over its
chain, seq, hash and the number of chains (`hub.consent.audit_heads`), so a head edited
without the hub's key, or a chain cut back to match an edited head, is detected by
verify. Heads written before this revision are signed once, on the first start after it.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE audit_head ADD COLUMN signature TEXT")


def downgrade() -> None:
    op.execute("ALTER TABLE audit_head DROP COLUMN signature")
