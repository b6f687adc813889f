"""The notification outbox, its sources, recipients' preferences and agency webhooks.

- `notify_outbox`: one row per notice, keyed by its deterministic id (so a notice
  derived again is the same row); `status` pending -> sending (claimed under a lease:
  `lease_owner`, `lease_until`) -> sent, or back to pending with `next_attempt_at` after
  a failure, or dead; `held` waits for the recipient's daily digest (`digest_id` once in
  one).
- `notify_source` / `notify_child`: the `notify_outbox` projection's tables: events a
  notice is derived from (handovers, consent changes) and every child the log has named,
  with the agencies that published about it.
- `notify_preference`: how a recipient is told; `notify_webhook`: an agency's webhook URL
  and signing secret.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE IF NOT EXISTS notify_outbox ("
        " notice_id TEXT PRIMARY KEY, kind TEXT NOT NULL, recipient TEXT NOT NULL,"
        " child_id TEXT NOT NULL, plan_id TEXT, about TEXT NOT NULL, due_on TEXT,"
        " link TEXT NOT NULL, created_at TEXT NOT NULL, status TEXT NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT NOT NULL,"
        " lease_owner TEXT, lease_until TEXT, sent_at TEXT, channel TEXT, last_error TEXT,"
        " digest_id TEXT)"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox (status, next_attempt_at)"
    )
    op.execute("CREATE INDEX IF NOT EXISTS notify_outbox_child ON notify_outbox (child_id)")
    op.execute(
        "CREATE TABLE IF NOT EXISTS notify_source ("
        " event_id TEXT PRIMARY KEY, child_id TEXT NOT NULL, kind TEXT NOT NULL,"
        " occurred_on TEXT NOT NULL)"
    )
    op.execute("CREATE INDEX IF NOT EXISTS notify_source_child ON notify_source (child_id)")
    op.execute(
        "CREATE TABLE IF NOT EXISTS notify_child ("
        " child_id TEXT NOT NULL, agency TEXT NOT NULL, first_seen TEXT NOT NULL,"
        " PRIMARY KEY (child_id, agency))"
    )
    op.execute(
        "CREATE TABLE IF NOT EXISTS notify_preference ("
        " recipient TEXT PRIMARY KEY, channel TEXT NOT NULL, address TEXT,"
        " digest INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL)"
    )
    op.execute(
        "CREATE TABLE IF NOT EXISTS notify_webhook ("
        " agency TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL,"
        " updated_at TEXT NOT NULL)"
    )


def downgrade() -> None:
    for table in (
        "notify_webhook", "notify_preference", "notify_child", "notify_source", "notify_outbox"
    ):  # fmt: skip
        op.execute(f"DROP TABLE IF EXISTS {table}")
