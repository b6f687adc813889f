"""The HTTP API: ingest, coordinator queries, IG audit, and authentication."""
