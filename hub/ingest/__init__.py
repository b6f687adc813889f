"""Ingest: inbound adapters' common model and the path every fact takes to the logs."""
