"""The circuit breaker's states on a clock the test moves."""

from __future__ import annotations

import pytest

from cortex.llm.breaker import CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_repeated_failures_and_closes_after_a_good_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown_seconds=10, clock=clock)
    for _ in range(2):
        breaker.before_call("m")
        breaker.failed("m")
    assert breaker.state("m") == "closed"
    breaker.before_call("m")
    breaker.failed("m")
    assert breaker.state("m") == "open"
    with pytest.raises(CircuitOpen) as opened:
        breaker.before_call("m")
    assert opened.value.retry_after == pytest.approx(10)
    breaker.before_call("other")  # another model's circuit is its own
    clock.now += 10
    assert breaker.state("m") == "half_open"
    breaker.before_call("m")  # the probe goes through ...
    with pytest.raises(CircuitOpen):
        breaker.before_call("m")  # ... alone
    breaker.succeeded("m")
    assert breaker.state("m") == "closed"
    breaker.before_call("m")


def test_a_failed_probe_opens_again_for_a_whole_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=2, cooldown_seconds=5, clock=clock)
    for _ in range(2):
        breaker.failed("m")
    clock.now += 5
    breaker.before_call("m")
    breaker.failed("m")
    assert breaker.state("m") == "open"
    clock.now += 4
    with pytest.raises(CircuitOpen):
        breaker.before_call("m")
    clock.now += 1
    breaker.before_call("m")


def test_a_success_resets_the_count_and_a_cancelled_probe_lets_the_next_call_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=2, cooldown_seconds=5, clock=clock)
    breaker.failed("m")
    breaker.succeeded("m")
    breaker.failed("m")
    assert breaker.state("m") == "closed"  # not two in a row
    breaker.failed("m")
    clock.now += 5
    breaker.before_call("m")
    breaker.released("m")  # the probe was cancelled: it told nothing
    breaker.before_call("m")


def test_zero_failures_turns_it_off() -> None:
    breaker = CircuitBreaker(failures=0, cooldown_seconds=5)
    for _ in range(10):
        breaker.failed("m")
        breaker.before_call("m")
    assert breaker.state("m") == "closed"
