# ruff: noqa: E501 - frozen DDL, one statement a line, as the hub ran it
"""Baseline: the read store's schema as the hub created it before migrations existed.

Every statement is `IF NOT EXISTS`, so applying this revision to a database made by an
earlier hub adopts its tables as they are and stamps the version; on an empty database
it creates them. Frozen: a later change is a new revision, never an edit here.
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS projection_offset ( projection TEXT NOT NULL, log TEXT NOT NULL, part INTEGER NOT NULL, applied_offset BIGINT NOT NULL, PRIMARY KEY (projection, log, part))",
    "CREATE TABLE IF NOT EXISTS projection_state ( projection TEXT PRIMARY KEY, generation BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS projection_replayed ( projection TEXT NOT NULL, dlq_id TEXT NOT NULL, PRIMARY KEY (projection, dlq_id))",
    "CREATE TABLE IF NOT EXISTS data_key ( child_id TEXT PRIMARY KEY, wrapped BYTEA, created_at TEXT NOT NULL, erased_at TEXT)",
    "CREATE TABLE IF NOT EXISTS person ( child_id TEXT PRIMARY KEY, date_of_birth TEXT, created_at TEXT NOT NULL, erased_at TEXT)",
    "CREATE TABLE IF NOT EXISTS person_identifier ( id_hash TEXT PRIMARY KEY, system TEXT NOT NULL, child_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS person_identifier_child ON person_identifier (child_id)",
    "CREATE TABLE IF NOT EXISTS person_suppressed ( id_hash TEXT PRIMARY KEY, erased_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_head ( part INTEGER PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL, log_offset BIGINT NOT NULL, record BYTEA)",
    "CREATE TABLE IF NOT EXISTS match_queue_item ( item_id TEXT PRIMARY KEY, provisional_child_id TEXT NOT NULL UNIQUE, reason TEXT NOT NULL, rule TEXT, candidates TEXT NOT NULL, agency TEXT NOT NULL, message_id TEXT, subject BYTEA NOT NULL, fingerprint TEXT, held_types TEXT NOT NULL, facts_held INTEGER NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, decision TEXT, resolved_child_id TEXT, resolved_by TEXT, resolved_at TEXT)",
    "CREATE INDEX IF NOT EXISTS match_queue_item_status ON match_queue_item (status, created_at)",
    "CREATE TABLE IF NOT EXISTS match_queue_fact ( dedupe_key TEXT PRIMARY KEY, item_id TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS match_fingerprint ( fingerprint TEXT NOT NULL, child_id TEXT NOT NULL, PRIMARY KEY (fingerprint, child_id))",
    "CREATE TABLE IF NOT EXISTS api_key ( key_id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, agency TEXT, secret_hash TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)",
    "CREATE INDEX IF NOT EXISTS api_key_by_name ON api_key (name)",
    "CREATE TABLE IF NOT EXISTS event_counts ( child_id TEXT NOT NULL, event_type TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (child_id, event_type))",
    "CREATE TABLE IF NOT EXISTS consent_event ( event_id TEXT PRIMARY KEY, child_id TEXT NOT NULL, part INTEGER NOT NULL, log_offset BIGINT NOT NULL, consent_id TEXT, body BYTEA NOT NULL)",
    "CREATE INDEX IF NOT EXISTS consent_event_child ON consent_event (child_id, part, log_offset)",
    "CREATE INDEX IF NOT EXISTS consent_event_consent ON consent_event (consent_id)",
    "CREATE TABLE IF NOT EXISTS caseload ( coordinator TEXT NOT NULL, child_id TEXT NOT NULL, since TEXT NOT NULL, PRIMARY KEY (coordinator, child_id))",
    "CREATE INDEX IF NOT EXISTS caseload_child ON caseload (child_id)",
    "CREATE TABLE IF NOT EXISTS withheld_fact ( event_id TEXT PRIMARY KEY, child_id TEXT NOT NULL, part INTEGER NOT NULL, log_offset BIGINT NOT NULL, category TEXT NOT NULL, body BYTEA NOT NULL, headers BYTEA, released INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS withheld_fact_child ON withheld_fact (child_id, part, log_offset)",
    "CREATE TABLE IF NOT EXISTS withheld_release ( event_id TEXT PRIMARY KEY, child_id TEXT NOT NULL, category TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS withheld_release_child ON withheld_release (child_id, category)",
    "CREATE TABLE IF NOT EXISTS withheld_erasure ( child_hash TEXT NOT NULL, category TEXT NOT NULL, erased_at TEXT NOT NULL, PRIMARY KEY (child_hash, category, erased_at))",
    "CREATE TABLE IF NOT EXISTS ingest_dedupe ( dedupe_key TEXT PRIMARY KEY, event_id TEXT NOT NULL, child_id TEXT NOT NULL, log TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS shared_fact ( event_id TEXT PRIMARY KEY, child_id TEXT NOT NULL, part INTEGER NOT NULL, log_offset BIGINT NOT NULL, event_type TEXT NOT NULL, category TEXT NOT NULL, agency TEXT NOT NULL, occurred_at TEXT NOT NULL, purposes TEXT, basis_claimed TEXT, body BYTEA NOT NULL)",
    "CREATE INDEX IF NOT EXISTS shared_fact_child ON shared_fact (child_id, occurred_at)",
    "CREATE TABLE IF NOT EXISTS audit_entry ( record_id TEXT PRIMARY KEY, chain TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL, child_id TEXT, agency TEXT, outcome TEXT, part INTEGER NOT NULL, log_offset BIGINT NOT NULL, line BYTEA NOT NULL)",
    "CREATE INDEX IF NOT EXISTS audit_entry_child ON audit_entry (child_id, at)",
    "CREATE INDEX IF NOT EXISTS audit_entry_at ON audit_entry (at)",
    "CREATE TABLE IF NOT EXISTS tac_fact ( event_id TEXT PRIMARY KEY, child_id TEXT NOT NULL, part INTEGER NOT NULL, log_offset BIGINT NOT NULL, event_type TEXT NOT NULL, category TEXT NOT NULL, agency TEXT NOT NULL, organisation TEXT, occurred_at TEXT NOT NULL, purposes TEXT, basis_claimed TEXT, subject_ref TEXT, body BYTEA NOT NULL)",
    "CREATE INDEX IF NOT EXISTS tac_fact_child ON tac_fact (child_id, part, log_offset)",
    "CREATE TABLE IF NOT EXISTS plan_fact ( event_id TEXT PRIMARY KEY, child_id TEXT NOT NULL, part INTEGER NOT NULL, log_offset BIGINT NOT NULL, event_type TEXT NOT NULL, category TEXT NOT NULL, agency TEXT NOT NULL, organisation TEXT, occurred_at TEXT NOT NULL, purposes TEXT, basis_claimed TEXT, plan_id TEXT, body BYTEA NOT NULL)",
    "CREATE INDEX IF NOT EXISTS plan_fact_child ON plan_fact (child_id, part, log_offset)",
    "CREATE INDEX IF NOT EXISTS plan_fact_plan ON plan_fact (plan_id)",
    "CREATE TABLE IF NOT EXISTS caseload_plan_fact ( event_id TEXT PRIMARY KEY, child_id TEXT NOT NULL, plan_id TEXT, part INTEGER NOT NULL, log_offset BIGINT NOT NULL, event_type TEXT NOT NULL, category TEXT NOT NULL, agency TEXT NOT NULL, organisation TEXT, purposes TEXT NOT NULL, basis_claimed TEXT, facts TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS caseload_plan_fact_child ON caseload_plan_fact (child_id, part, log_offset)",
    "CREATE TABLE IF NOT EXISTS caseload_plan ( child_id TEXT NOT NULL, plan_id TEXT NOT NULL, status TEXT, stage TEXT NOT NULL, received_on TEXT, summary TEXT NOT NULL, PRIMARY KEY (child_id, plan_id))",
    "CREATE INDEX IF NOT EXISTS caseload_plan_plan ON caseload_plan (plan_id)",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: restore from a backup instead")
