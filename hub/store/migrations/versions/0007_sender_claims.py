"""What a sender may claim: `api_key` gains `sender` (an agency key's kind of sender in
the policy's `senders`: the statutory bases it may claim) and `organisations` (the
organisation codes it publishes as, space-separated; NULL for a key bound to none).
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATEMENTS = (
    "ALTER TABLE api_key ADD COLUMN sender TEXT",
    "ALTER TABLE api_key ADD COLUMN organisations TEXT",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("ALTER TABLE api_key DROP COLUMN organisations")
    op.execute("ALTER TABLE api_key DROP COLUMN sender")
