"""A circuit breaker per provider and model: stop calling a model that keeps failing, try it again later.

Closed (calls go through) until `failures` provider faults in a row (unreachable, timed out, a malformed
answer); then open for `cooldown_seconds`: calls to that model fail at once, so the gateway goes
straight to the tier's fallback model (then the offline answer where the agent enables it, else 503)
instead of every request waiting out its own timeout. After the cooldown one call is let through (half
open): if the provider answers the circuit closes, if not it opens for another cooldown. Requests that
arrive while that probe is running fail fast as if open.

The state lives in the process: each replica learns on its own, within `failures` calls, which costs a
few requests per replica and needs no shared store on the request path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class CircuitOpen(Exception):
    """Raised instead of calling a model whose circuit is open; `retry_after` is seconds to the next probe."""

    outcome = "circuit_open"

    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(f"{key}: circuit open")
        self.retry_after = retry_after


class CircuitBreaker:
    def __init__(self, failures: int = 5, cooldown_seconds: float = 30.0, clock: Clock = time.monotonic) -> None:
        self.failures = failures
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()  # the gateway may be shared by event loops of several threads (tests)

    def configure(self, failures: int, cooldown_seconds: float) -> None:
        """Settings read on each call, so a changed setting applies without a new gateway."""
        self.failures, self.cooldown_seconds = failures, cooldown_seconds

    def reset(self) -> None:
        with self._lock:
            self._circuits.clear()

    def state(self, key: str) -> str:
        """"closed", "open" or "half_open" (the cooldown is over: the next call is a probe)."""
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is None or circuit.opened_at is None:
                return "closed"
            if circuit.probing or self._clock() - circuit.opened_at < self.cooldown_seconds:
                return "open"
            return "half_open"

    def before_call(self, key: str) -> None:
        """Raise `CircuitOpen` when the model must not be called now; otherwise the call may go ahead."""
        if self.failures <= 0:
            return
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is None or circuit.opened_at is None:
                return
            waited = self._clock() - circuit.opened_at
            if circuit.probing or waited < self.cooldown_seconds:
                raise CircuitOpen(key, max(1.0, self.cooldown_seconds - waited))
            circuit.probing = True  # this call is the probe

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._circuits.pop(key, None)

    def failed(self, key: str) -> None:
        if self.failures <= 0:
            return
        with self._lock:
            circuit = self._circuits.setdefault(key, _Circuit())
            circuit.failures += 1
            if circuit.probing or circuit.failures >= self.failures:
                circuit.opened_at = self._clock()
            circuit.probing = False

    def released(self, key: str) -> None:
        """A call ended without telling anything about the provider (cancelled, rejected as our fault)."""
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is not None:
                circuit.probing = False
