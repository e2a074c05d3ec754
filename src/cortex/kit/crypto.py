"""Symmetric encryption for stored secrets (action credentials), keyed from the service secret."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, secret: str) -> None:
        # A dedicated derived key, so the JWT signing secret is never used directly as a cipher key.
        digest = hashlib.sha256(b"cortex-credentials:" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt_json(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def decrypt_json(self, token: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ValueError("stored credentials cannot be decrypted with this CORTEX_SECRET_KEY") from exc
        return data
