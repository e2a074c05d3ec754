"""Cortex: a self-hosted AI engine for customer conversations."""

__version__ = "0.1.0"
