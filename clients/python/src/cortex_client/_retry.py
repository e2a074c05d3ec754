"""When to retry a request and how long to wait first: jittered exponential backoff, or Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Answers worth another try: rate limited, and the server's or a proxy's transient failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# A server that asks for a longer wait than this is not retried: the caller decides.
MAX_RETRY_AFTER_SECONDS = 60.0


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (a number or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class Backoff:
    initial_seconds: float = 0.5
    max_seconds: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before retry number `attempt` (1-based).

        A Retry-After from the server wins (it knows when it will take the request again); otherwise
        the exponential delay gets full jitter in its upper half, so that clients that failed together
        do not come back together.
        """
        if retry_after is not None:
            return retry_after
        base = min(self.max_seconds, self.initial_seconds * 2.0 ** max(attempt - 1, 0))
        return base * (0.5 + random.random() / 2)
