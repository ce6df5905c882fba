"""The recorder: moves readings from the Redis stream into the history database.

A process of its own (`python -m recorder`); it imports `shared` only
(docs/architecture.md, "Where each concern lives").
"""
