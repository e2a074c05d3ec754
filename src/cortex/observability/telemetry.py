"""Telemetry: the metrics and the tracer of one running service, and the hooks that feed them.

The pipeline, the LLM gateway and the tool executor call the small hooks here; everything about
label names, span names and attributes lives in this one module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from cortex.observability.metrics import Metrics
from cortex.settings import Settings

if TYPE_CHECKING:
    from cortex.llm.gateway import Completion
    from cortex.pipeline.context import RequestContext
    from cortex.tools.executor import ToolOutcome

SERVICE_NAME = "cortex"
NO_TIER = "none"


class Telemetry:
    """Tracing is off (a no-op tracer) until an exporter is attached: OTLP from settings, or a test's."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.tracer: Tracer = trace.NoOpTracer()
        self._provider: TracerProvider | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Telemetry:
        telemetry = cls()
        if settings.otel_exporter_otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
            telemetry.export_spans(OTLPSpanExporter(endpoint=endpoint), batch=True)
        return telemetry

    def export_spans(self, exporter: SpanExporter, *, batch: bool = False) -> None:
        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
        provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
        self.shutdown()
        self._provider = provider
        self.tracer = provider.get_tracer("cortex")

    def shutdown(self) -> None:
        """Flushes pending spans and turns tracing off again."""
        if self._provider is not None:
            self._provider.shutdown()
        self._provider = None
        self.tracer = trace.NoOpTracer()

    # --- HTTP ---------------------------------------------------------------------------------------

    def http_finished(self, method: str, route: str, status: int, duration_ms: float) -> None:
        self.metrics.http_requests.labels(method=method, route=route, status=str(status)).inc()
        self.metrics.http_duration.labels(method=method, route=route).observe(duration_ms)

    def rate_limited(self, limit: str) -> None:
        self.metrics.rate_limited.labels(limit=limit).inc()

    # --- the chat pipeline ---------------------------------------------------------------------------

    @contextmanager
    def chat(self, ctx: RequestContext) -> Iterator[Span]:
        """The pipeline's span; on the way out, what the request context says goes to the metrics."""
        with self.tracer.start_as_current_span("chat.pipeline", record_exception=True) as span:
            try:
                yield span
            except BaseException as exc:
                self._chat_finished(ctx, span, outcome=_outcome_of(exc))
                raise
            self._chat_finished(ctx, span, outcome="ok")

    def _chat_finished(self, ctx: RequestContext, span: Span, outcome: str) -> None:
        m = self.metrics
        # Only an agent that loaded (this company's) becomes a label: a request's raw id is unbounded.
        agent_id = str(ctx.agent.id) if ctx.agent is not None else "unknown"
        cached = ctx.cache_hit is not None
        tier = "cache" if cached else (ctx.tier or NO_TIER)
        m.chat_requests.labels(agent_id=agent_id, outcome=outcome).inc()
        m.pipeline_duration.labels(tier=tier).observe(ctx.elapsed_ms())
        for step, duration in ctx.timings.items():
            if duration > 0:
                m.step_duration.labels(step=step).observe(duration)
        if ctx.config_cache_hit is not None:
            counter = m.config_cache_hits if ctx.config_cache_hit else m.config_cache_misses
            counter.labels(agent_id=agent_id).inc()
        if cached:
            m.semantic_cache_hits.labels(agent_id=agent_id).inc()
        elif ctx.cache_checked:
            m.semantic_cache_misses.labels(agent_id=agent_id).inc()
        span.set_attributes(_chat_attributes(ctx, agent_id, tier, outcome))

    # --- customer memory -----------------------------------------------------------------------------

    def memory_extraction(self, outcome: str, facts: dict[str, int] | None = None) -> None:
        """One extraction run ended with `outcome`; `facts` counts created, confirmed and superseded facts."""
        self.metrics.memory_extraction_runs.labels(outcome=outcome).inc()
        for action, number in (facts or {}).items():
            if number:
                self.metrics.memory_facts.labels(action=action).inc(number)

    # --- model calls ---------------------------------------------------------------------------------

    @contextmanager
    def llm_call(self, model: str, tier: str | None) -> Iterator[LLMCall]:
        tier = tier or NO_TIER
        started = time.perf_counter()
        with self.tracer.start_as_current_span(
                "llm.call", attributes={"cortex.model": model, "cortex.tier": tier}) as span:
            call = LLMCall(span)
            try:
                yield call
            except BaseException as exc:
                outcome = _outcome_of(exc)
                span.set_status(Status(StatusCode.ERROR, outcome))
                self.metrics.llm_calls.labels(model=model, tier=tier, outcome=outcome).inc()
                raise
            finally:
                self.metrics.llm_duration.labels(model=model, tier=tier).observe(
                    (time.perf_counter() - started) * 1000)
            completion = call.completion
            if completion is not None:
                m = self.metrics
                m.llm_calls.labels(model=model, tier=tier, outcome="ok").inc()
                m.llm_tokens.labels(model=model, tier=tier, direction="input").inc(completion.tokens_input)
                m.llm_tokens.labels(model=model, tier=tier, direction="output").inc(completion.tokens_output)
                m.llm_cost.labels(model=model, tier=tier).inc(max(0.0, completion.cost_usd))
                span.set_attributes({"cortex.tokens_input": completion.tokens_input,
                                     "cortex.tokens_output": completion.tokens_output,
                                     "cortex.cost_usd": completion.cost_usd,
                                     "cortex.tool_calls": len(completion.tool_calls)})

    # --- tools ---------------------------------------------------------------------------------------

    @contextmanager
    def tool_call(self, name: str) -> Iterator[ToolCall]:
        with self.tracer.start_as_current_span("tool.call") as span:
            call = ToolCall()
            yield call
            outcome = call.outcome
            if outcome is None:
                return
            # A name the model made up is not an action: it must not become a label of its own.
            action = name if outcome.outcome != "unknown_action" else "unknown"
            self.metrics.tool_calls.labels(action=action, outcome=outcome.outcome).inc()
            self.metrics.tool_duration.labels(action=action).observe(outcome.duration_ms)
            span.set_attributes({"cortex.action": action, "cortex.outcome": outcome.outcome,
                                 "cortex.attempts": outcome.attempts,
                                 **({"http.response.status_code": outcome.status} if outcome.status else {})})
            if outcome.outcome != "ok":
                span.set_status(Status(StatusCode.ERROR, outcome.outcome))


class LLMCall:
    def __init__(self, span: Span) -> None:
        self.span = span
        self.completion: Completion | None = None

    def succeeded(self, completion: Completion) -> None:
        self.completion = completion


class ToolCall:
    def __init__(self) -> None:
        self.outcome: ToolOutcome | None = None

    def finished(self, outcome: ToolOutcome) -> None:
        self.outcome = outcome


def _outcome_of(exc: BaseException) -> str:
    """A bounded label for a failure: the error's own `outcome`, its status code, or its class."""
    outcome = getattr(exc, "outcome", None)
    if isinstance(outcome, str):
        return outcome
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return f"http_{status}"
    if type(exc).__name__ == "CancelledError":
        return "cancelled"
    return "error"


def _chat_attributes(ctx: RequestContext, agent_id: str, tier: str, outcome: str) -> dict[str, Any]:
    return {
        "cortex.request_id": ctx.request_id, "cortex.agent_id": agent_id, "cortex.tier": tier,
        "cortex.model": ctx.model_used or "", "cortex.cached": ctx.cache_hit is not None,
        "cortex.tokens_input": ctx.tokens_input, "cortex.tokens_output": ctx.tokens_output,
        "cortex.cost_usd": ctx.cost_usd, "cortex.tool_rounds": ctx.tool_rounds, "cortex.outcome": outcome,
        "cortex.config_cache_hit": bool(ctx.config_cache_hit),
    }
