"""Standard Webhooks signing (https://www.standardwebhooks.com), with the `standardwebhooks` package."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """`whsec_` and 24 random bytes in base64, the form the Standard Webhooks libraries read."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def body(event_type: str, created_at: datetime, data: dict[str, Any]) -> str:
    return json.dumps({"type": event_type, "timestamp": created_at.astimezone(UTC).isoformat(), "data": data},
                      separators=(",", ":"), default=str)


def headers(message_id: str, payload: str, signing_secrets: list[str], now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers; one `v1,` signature per secret, space-separated (rotation)."""
    signatures = " ".join(Webhook(secret).sign(message_id, now.astimezone(UTC), payload) for secret in signing_secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": "Cortex-Webhooks/1",
    }
