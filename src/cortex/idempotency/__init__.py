"""Idempotency-Key: a retried request replays the first one's response instead of running again."""
