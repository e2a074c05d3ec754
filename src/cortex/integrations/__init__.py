"""Integrations with other tools that talk to Cortex through its public API (dlt for data export)."""
