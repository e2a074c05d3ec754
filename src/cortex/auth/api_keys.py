"""API key material: generation, hashing and scopes."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "ctx_"
SCOPES = ("chat", "agents", "knowledge", "memory", "cache", "keys", "metrics", "events", "webhooks", "*")


def generate_key() -> str:
    # 32 random bytes → 43 URL-safe characters after the prefix.
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def display_prefix(raw_key: str) -> str:
    return raw_key[:12]


def looks_like_key(raw_key: str) -> bool:
    return raw_key.startswith(KEY_PREFIX) and 36 <= len(raw_key) <= 128


def has_scope(granted: list[str], required: str) -> bool:
    return "*" in granted or required in granted
