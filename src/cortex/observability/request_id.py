"""The request id: accepted from `X-Request-ID` when well formed, otherwise made here; one per request."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
# Stored on the message (String(64)) and written to logs: a caller's value must be short and plain.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")

current_request_id: ContextVar[str | None] = ContextVar("cortex_request_id", default=None)


def accept_or_new(offered: str | None) -> str:
    if offered and _ACCEPTABLE.fullmatch(offered):
        return offered
    return uuid.uuid4().hex
