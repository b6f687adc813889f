"""Inbound adapters: one module per agency format, each a pure function from a message's
bytes to `hub.ingest.model.AdapterResult` (facts about a child plus what was not taken).
Import the module you need; nothing is imported or built here.
"""
