"""Verify the webhooks Cortex sends, as their receiver.

Cortex signs each delivery the Standard Webhooks way: `webhook-id`, `webhook-timestamp` and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, several space-separated while a
rotated secret is still valid). The secret is the `whsec_...` value Cortex returned when the endpoint was
created or its secret rotated.

    from cortex_client import webhooks
    event = webhooks.verify(request_body, request_headers, secret)   # raises WebhookVerificationError
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(Exception):
    """The request is not a genuine, recent Cortex delivery."""


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise WebhookVerificationError("the secret is not a whsec_ base64 secret") from exc


def sign(message_id: str, timestamp: int, payload: bytes | str, secret: str) -> str:
    """The `v1,` signature of one delivery (what Cortex puts in `webhook-signature`)."""
    body = payload.encode() if isinstance(payload, str) else payload
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def verify(payload: bytes | str, headers: Mapping[str, str], secret: str, *,
           tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> dict[str, Any]:
    """Check the delivery's signature and age; answer its JSON body (`type`, `timestamp`, `data`).

    `payload` must be the raw body as received (not re-serialised JSON). Header names are matched
    without regard to case. A delivery older or newer than `tolerance_seconds` is refused (a replay).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not message_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not a number") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError("the delivery's timestamp is too old or too new")
    expected = sign(message_id, timestamp, payload, secret)
    offered = [part for part in signatures.split(" ") if part]
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise WebhookVerificationError("no signature matches this secret")
    body = payload.decode() if isinstance(payload, bytes) else payload
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise WebhookVerificationError("the body is not JSON") from exc
    if not isinstance(parsed, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return parsed
