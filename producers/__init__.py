"""Producers: read sensors, keep every reading in an outbox, publish to Redis."""
