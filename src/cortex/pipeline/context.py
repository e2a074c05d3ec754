"""The one request context the eight services read and fill, in order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import NoOpTracer, Tracer

from cortex.agents.schemas import AgentConfig
from cortex.pipeline.events import TurnEvents
from cortex.pipeline.ports import CacheHit, HistoryTurn, KnowledgeChunk, MemoryFact
from cortex.pipeline.schemas import STEP_NAMES, ChatRequest
from cortex.tools.executor import ToolOutcome


@dataclass
class CustomerProfile:
    customer_id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    organization: str | None = None
    segments: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Budget:
    """What the token optimizer kept, and what it counted before and after."""

    before: int = 0
    after: int = 0
    window: int = 0
    reserved_output: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)

    @property
    def savings_pct(self) -> float:
        return round((self.before - self.after) * 100 / self.before, 1) if self.before else 0.0


@dataclass
class TurnOptions:
    """How a caller other than `POST /v1/chat`'s plain form wants the turn run (streamed, its own history)."""

    # Set: every step, piece of reply text and tool run is told here as it happens.
    events: TurnEvents | None = None
    # The history of a conversation that is new to Cortex (a stateless client sends its own).
    history: list[HistoryTurn] | None = None
    # Within the agent's own settings: a lower `max_tokens` applies, a higher one is capped.
    temperature: float | None = None
    max_tokens: int | None = None
    # Filled by the pipeline: the stored reply's message id.
    message_id: uuid.UUID | None = None


@dataclass
class RequestContext:
    request: ChatRequest
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEP_NAMES, 0.0))
    # What each component said about itself, e.g. {"memory": "unavailable: ..."}; kept on the message.
    notes: dict[str, str] = field(default_factory=dict)
    # Each service's `timed` block is also its trace span (a no-op tracer unless tracing is on).
    tracer: Tracer = field(default_factory=NoOpTracer)
    options: TurnOptions = field(default_factory=TurnOptions)

    # 01
    agent: AgentConfig | None = None
    config_cache_hit: bool | None = None
    # conversation
    customer_message_id: uuid.UUID | None = None
    customer_stored: bool = False  # the question is in the database (written with the reply on a cache hit)
    history: list[HistoryTurn] = field(default_factory=list)
    # 02
    profile: CustomerProfile | None = None
    facts: list[MemoryFact] = field(default_factory=list)
    # 03
    chunks: list[KnowledgeChunk] = field(default_factory=list)
    # 04: what survives, by kind, in priority order
    budget: Budget = field(default_factory=Budget)
    kept_history: list[HistoryTurn] = field(default_factory=list)
    kept_facts: list[MemoryFact] = field(default_factory=list)
    kept_chunks: list[KnowledgeChunk] = field(default_factory=list)
    kept_faqs: list[dict[str, str]] = field(default_factory=list)
    # 05
    cache_hit: CacheHit | None = None
    cache_checked: bool = False  # a lookup ran (a check that ran and found nothing is a miss)
    # 06
    tier: str | None = None
    tier_reason: str | None = None
    models: list[str] = field(default_factory=list)
    # 07
    reply: str = ""
    model_used: str = ""
    tokens_input: int = 0
    tokens_output: int = 0
    cost_usd: float = 0.0
    llm_latency_ms: float = 0.0
    tool_rounds: int = 0
    tool_outcomes: list[ToolOutcome] = field(default_factory=list)

    @property
    def company_id(self) -> uuid.UUID:
        return self.request.company_id

    @property
    def config(self) -> AgentConfig:
        if self.agent is None:
            raise RuntimeError("the config loader has not run")
        return self.agent

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            with self.tracer.start_as_current_span(f"pipeline.{step}") as span:
                yield
                if span.is_recording():
                    span.set_attributes(self.span_attributes())
        finally:
            self.timings[step] = round(self.timings[step] + (time.perf_counter() - started) * 1000, 3)
        if self.options.events is not None:
            self.options.events.step(step, self.timings[step])

    def step_timings(self) -> dict[str, float]:
        """The timed steps in milliseconds, and `tool_call_rounds`, the count of tool rounds executed."""
        return {**self.timings, "tool_call_rounds": self.tool_rounds}

    def span_attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {"cortex.request_id": self.request_id}
        if self.agent is not None:
            attributes["cortex.agent_id"] = str(self.agent.id)
        if self.tier:
            attributes["cortex.tier"] = self.tier
        if self.model_used:
            attributes["cortex.model"] = self.model_used
        return attributes

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)

    @property
    def actions_executed(self) -> list[str]:
        return [o.name for o in self.tool_outcomes if o.reached_webhook]
