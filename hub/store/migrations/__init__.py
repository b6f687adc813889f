"""The read store's versioned schema migrations (alembic revisions under `versions/`),
applied by `hub.store.schema.migrate`."""
