"""Indexes for cursor paging: a child's trail in log order, the match queue by arrival.

`GET /audit/children/{id}` pages a child's audit records by (part, log_offset) and the
match queue pages by (created_at, item_id); without these indexes each page sorted the
child's whole trail, or the whole queue.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX IF NOT EXISTS audit_entry_child_log"
        " ON audit_entry (child_id, part, log_offset)"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS match_queue_item_arrival"
        " ON match_queue_item (created_at, item_id)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS match_queue_item_arrival")
    op.execute("DROP INDEX IF EXISTS audit_entry_child_log")
