"""Metrics, traces, structured logs, request ids and rate limits."""
