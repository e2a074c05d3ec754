"""The one door to every model: LiteLLM with per-call timeout, retries, fallback models, cost and limits.

Errors leave as Cortex errors the API maps to status codes: an unreachable provider is 503
(`ServiceUnavailable`), a model that does not answer in time is 504 (`GatewayTimeout`), a provider that
answers 200 with something that is not a completion (no choices, no message) is 502 (`BadGateway`).
A reply with neither text nor a usable tool call is tried on the next model (the tier's fallback); when
every model answers empty the last (empty) completion is returned, and the caller answers offline.

Each provider/model has a circuit breaker (`cortex.llm.breaker`): after repeated provider faults the
model is skipped at once (the next model is tried, or the call fails with 503 and `Retry-After`) until
a probe after the cooldown finds it answering again.

`stream` is `complete` with the model's text handed to a callback as it arrives. Retries and fallback
models apply only until the first token: once text has reached the caller a failure ends the call,
since a second attempt would repeat what the customer already saw.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx
import litellm
import openai

from cortex.agents.schemas import ModelPrice
from cortex.kit.errors import BadGateway, GatewayTimeout, ServiceUnavailable
from cortex.llm.breaker import CircuitBreaker, CircuitOpen
from cortex.observability.telemetry import NO_TIER, Telemetry
from cortex.settings import Settings

logger = logging.getLogger(__name__)
litellm.suppress_debug_info = True

# Used when neither LiteLLM's map nor the agent's settings know a model's context window.
DEFAULT_CONTEXT_WINDOW = 8_192
_RETRY_BACKOFF_SECONDS = 0.2


@dataclass(frozen=True)
class RequestedToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text as the model wrote it; validated by the tool executor


@dataclass
class Completion:
    text: str
    tool_calls: list[RequestedToolCall]
    model: str
    tokens_input: int
    tokens_output: int
    cost_usd: float
    latency_ms: float
    # The assistant message to append to the conversation when the tool loop continues.
    message: dict[str, Any] = field(default_factory=dict)


# `outcome` is the label a failed call gets in the metrics.
class _Unreachable(Exception):
    outcome = "unreachable"


class _TimedOut(Exception):
    outcome = "timeout"


class _Rejected(Exception):
    outcome = "rejected"


class _Malformed(Exception):
    """The provider answered 200 with something that is not a completion (`{"choices": []}`, no message)."""

    outcome = "malformed"


TextSink = Callable[[str], None]


class _FailedMidStream(Exception):
    """A streamed call failed after its first token: not retried, whatever the cause."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.outcome = getattr(cause, "outcome", "unreachable")


def _classify(exc: BaseException) -> type[Exception]:
    """Walk the cause chain: LiteLLM wraps a refused connection as an InternalServerError."""
    seen: BaseException | None = exc
    status: int | None = getattr(exc, "status_code", None)
    while seen is not None:
        if isinstance(seen, litellm.Timeout | openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
            return _TimedOut
        if isinstance(seen, openai.APIConnectionError | httpx.ConnectError | ConnectionError | OSError):
            return _Unreachable
        seen = seen.__cause__ or seen.__context__
    if status in (429, 500, 502, 503, 504):
        return _Unreachable
    return _Rejected


def price_of(model: str, prices: Mapping[str, ModelPrice], tokens_input: int, tokens_output: int,
             response: Any = None) -> float:
    """Per-model prices in settings win; then LiteLLM's cost map; models it doesn't know cost 0."""
    price = prices.get(model)
    if price is not None:
        return (tokens_input * price.input_per_million + tokens_output * price.output_per_million) / 1e6
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=tokens_input, completion_tokens=tokens_output
        )
        return float(prompt_cost + completion_cost)
    except Exception:  # litellm raises a bare Exception for models missing from its map
        return 0.0


def context_window(model: str, override: int | None = None) -> int:
    if override:
        return override
    return _mapped_window(model)


@lru_cache(maxsize=1_024)
def _mapped_window(model: str) -> int:
    try:
        info = litellm.get_model_info(model)
    except Exception:  # ModelNotMappedError and friends: a local or custom deployment
        return DEFAULT_CONTEXT_WINDOW
    return int(info.get("max_input_tokens") or info.get("max_tokens") or DEFAULT_CONTEXT_WINDOW)


def count_tokens(model: str | None, *, text: str | None = None,
                 messages: Sequence[Mapping[str, Any]] | None = None) -> int:
    """LiteLLM's offline counter: the model's own tokenizer where it ships one, else cl100k."""
    if text is not None:
        return int(litellm.token_counter(model=model or "", text=text))
    return int(litellm.token_counter(model=model or "", messages=list(messages or [])))


class LLMGateway:
    def __init__(self, settings: Settings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.telemetry = telemetry or Telemetry()
        self.breaker = CircuitBreaker(settings.llm_breaker_failures, settings.llm_breaker_cooldown_seconds)

    def circuit_key(self, model: str) -> str:
        """Provider and model: the same model name behind another api_base is another circuit."""
        return f"{self.settings.llm_api_base or 'default'}|{model}"

    def configured(self) -> bool:
        return any(self.settings.model_for_tier(tier) for tier in ("speed", "nano", "sonnet", "complex", "search"))

    async def complete(self, *, models: Sequence[str], messages: list[dict[str, Any]],
                       tools: list[dict[str, Any]] | None = None, temperature: float | None = None,
                       max_tokens: int | None = None, prices: Mapping[str, ModelPrice] | None = None,
                       response_format: dict[str, Any] | None = None,
                       timeout_seconds: float | None = None, tier: str | None = None) -> Completion:
        """Try each model in order (primary, then fallbacks); retry transient failures on each.

        `tier` only labels the call's metrics and span.
        """
        return await self._attempts(models, tier, lambda model: self._call(
            model, messages, tools, temperature, max_tokens, prices or {}, response_format, timeout_seconds),
            offers_tools=bool(tools))

    async def stream(self, *, models: Sequence[str], messages: list[dict[str, Any]], on_text: TextSink,
                     tools: list[dict[str, Any]] | None = None, temperature: float | None = None,
                     max_tokens: int | None = None, prices: Mapping[str, ModelPrice] | None = None,
                     timeout_seconds: float | None = None, tier: str | None = None) -> Completion:
        """`complete`, streamed from the provider: each piece of text goes to `on_text` as it arrives.

        The returned completion is the same as `complete`'s for the same answer (text, tool calls,
        tokens, cost); only the failures after the first token differ (not retried).
        """
        return await self._attempts(models, tier, lambda model: self._call_streaming(
            model, messages, tools, temperature, max_tokens, prices or {}, timeout_seconds, on_text),
            offers_tools=bool(tools))

    async def _attempts(self, models: Sequence[str], tier: str | None,
                        call_model: Callable[[str], Any], offers_tools: bool = False) -> Completion:
        if not models:
            raise ServiceUnavailable("no model is configured for this request")
        self.breaker.configure(self.settings.llm_breaker_failures, self.settings.llm_breaker_cooldown_seconds)
        last: Exception | None = None
        empty: Completion | None = None
        retry_after: float | None = None
        for model in models:
            key = self.circuit_key(model)
            for attempt in range(self.settings.llm_max_retries + 1):
                try:
                    self.breaker.before_call(key)
                except CircuitOpen as exc:
                    last, retry_after = exc, exc.retry_after if retry_after is None else min(retry_after,
                                                                                             exc.retry_after)
                    self.telemetry.metrics.llm_calls.labels(model=model, tier=tier or NO_TIER,
                                                            outcome=exc.outcome).inc()
                    break
                try:
                    with self.telemetry.llm_call(model, tier) as call:
                        completion: Completion = await call_model(model)
                        call.succeeded(completion)
                except _FailedMidStream as exc:
                    self.breaker.failed(key)
                    if isinstance(exc.cause, _TimedOut):
                        raise GatewayTimeout(f"the model stopped answering mid-reply ({exc.cause})") from exc
                    raise ServiceUnavailable(f"the LLM provider failed mid-reply ({exc.cause})") from exc
                except _TimedOut as exc:
                    self.breaker.failed(key)
                    last = exc  # a model that timed out once will not be faster on a retry: next model
                    break
                except _Unreachable as exc:
                    self.breaker.failed(key)
                    last = exc
                    if attempt < self.settings.llm_max_retries:
                        await asyncio.sleep(_RETRY_BACKOFF_SECONDS * (2**attempt))
                except _Malformed as exc:
                    self.breaker.failed(key)
                    last = exc  # the same provider will most likely answer the same way: next model
                    break
                except _Rejected as exc:
                    self.breaker.released(key)  # a 4xx says our request was refused, not that the model is down
                    last = exc
                    break
                except BaseException:
                    self.breaker.released(key)
                    raise
                else:
                    self.breaker.succeeded(key)
                    if not _is_empty(completion, offers_tools):
                        return completion
                    logger.warning("llm reply was empty", extra={"model": model})
                    empty = completion  # an empty reply: the next model may do better
                    break
        if empty is not None:
            return empty
        if isinstance(last, _TimedOut):
            raise GatewayTimeout(f"the model did not answer in time ({last})")
        if isinstance(last, _Rejected):
            raise ServiceUnavailable(f"the model provider rejected the request ({last})")
        if isinstance(last, _Malformed):
            raise BadGateway(f"the model provider sent an unusable answer ({last})")
        if isinstance(last, CircuitOpen):
            raise ServiceUnavailable(f"the model provider keeps failing; calls are paused ({last})",
                                     headers={"Retry-After": str(max(1, round(retry_after or 1)))})
        raise ServiceUnavailable(f"the LLM provider is unreachable ({last})")

    def _kwargs(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                temperature: float | None, max_tokens: int | None,
                timeout_seconds: float | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": model, "messages": messages,
            "timeout": timeout_seconds or self.settings.llm_timeout_seconds,
            # Retries are ours (above), so the OpenAI client must not add its own hidden ones.
            "max_retries": 0, "num_retries": 0,
        }
        if self.settings.llm_api_base:
            kwargs["api_base"] = self.settings.llm_api_base
        if self.settings.llm_api_key:
            kwargs["api_key"] = self.settings.llm_api_key
        if tools:
            kwargs["tools"] = tools
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        return kwargs

    async def _call_streaming(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                              temperature: float | None, max_tokens: int | None, prices: Mapping[str, ModelPrice],
                              timeout_seconds: float | None, on_text: TextSink) -> Completion:
        kwargs = self._kwargs(model, messages, tools, temperature, max_tokens, timeout_seconds)
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
        started = time.perf_counter()
        parts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage: Any = None
        try:
            response = await litellm.acompletion(**kwargs)
            async for chunk in response:
                usage = getattr(chunk, "usage", None) or usage
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                for call in getattr(delta, "tool_calls", None) or []:
                    entry = calls.setdefault(int(getattr(call, "index", 0) or 0),
                                             {"id": "", "name": "", "arguments": ""})
                    entry["id"] = call.id or entry["id"]
                    function = call.function
                    if function is not None:
                        entry["name"] += function.name or ""
                        entry["arguments"] += function.arguments or ""
                text = getattr(delta, "content", None)
                if text:
                    parts.append(text)
                    on_text(text)
        except Exception as exc:
            kind = _classify(exc)
            logger.warning("llm call failed", extra={"model": model, "error_type": type(exc).__name__})
            failure = kind(f"{model}: {type(exc).__name__}")
            if parts:
                raise _FailedMidStream(failure) from exc
            raise failure from exc
        latency_ms = (time.perf_counter() - started) * 1000
        text = "".join(parts)
        tool_calls = [RequestedToolCall(id=c["id"], name=c["name"], arguments=c["arguments"])
                      for _, c in sorted(calls.items())]
        tokens_input = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_output = int(getattr(usage, "completion_tokens", 0) or 0)
        if usage is None:  # a provider that sends no usage on streams: count as LiteLLM would
            tokens_input = count_tokens(model, messages=messages)
            tokens_output = count_tokens(model, text=text) if text else 0
        return _completion(model, text or None, tool_calls, tokens_input, tokens_output, prices, latency_ms)

    async def _call(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                    temperature: float | None, max_tokens: int | None, prices: Mapping[str, ModelPrice],
                    response_format: dict[str, Any] | None, timeout_seconds: float | None) -> Completion:
        kwargs = self._kwargs(model, messages, tools, temperature, max_tokens, timeout_seconds)
        if response_format is not None:
            kwargs["response_format"] = response_format
        started = time.perf_counter()
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            kind = _classify(exc)
            # The message of a provider error never holds our secrets: credentials travel in headers.
            logger.warning("llm call failed", extra={"model": model, "error_type": type(exc).__name__})
            raise kind(f"{model}: {type(exc).__name__}") from exc
        latency_ms = (time.perf_counter() - started) * 1000
        choices = getattr(response, "choices", None)
        message = getattr(choices[0], "message", None) if choices else None
        if message is None:
            logger.warning("llm answer malformed", extra={"model": model})
            raise _Malformed(f"{model}: an answer without choices")
        try:
            tool_calls = [
                RequestedToolCall(id=call.id, name=call.function.name or "", arguments=call.function.arguments or "")
                for call in (message.tool_calls or [])
            ]
        except (AttributeError, TypeError) as exc:
            raise _Malformed(f"{model}: a tool call without a function") from exc
        usage = getattr(response, "usage", None)
        tokens_input = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_output = int(getattr(usage, "completion_tokens", 0) or 0)
        return _completion(model, message.content, tool_calls, tokens_input, tokens_output, prices, latency_ms)

    async def complete_json(self, *, models: Sequence[str], messages: list[dict[str, Any]],
                            schema: dict[str, Any], name: str = "result",
                            timeout_seconds: float | None = None) -> tuple[dict[str, Any] | None, Completion]:
        """Ask for JSON matching `schema`; returns (parsed object or None when invalid, the completion).

        Providers that support structured output enforce the schema; others get it in the prompt. The
        caller validates the object against the schema either way.
        """
        completion = await self.complete(
            models=models, messages=messages, temperature=0, timeout_seconds=timeout_seconds,
            response_format={"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}},
        )
        try:
            parsed = json.loads(_strip_fences(completion.text))
        except (json.JSONDecodeError, TypeError):
            return None, completion
        return (parsed if isinstance(parsed, dict) else None), completion


def _completion(model: str, content: str | None, tool_calls: list[RequestedToolCall], tokens_input: int,
                tokens_output: int, prices: Mapping[str, ModelPrice], latency_ms: float) -> Completion:
    assistant: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        assistant["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in tool_calls
        ]
    return Completion(
        text=content or "", tool_calls=tool_calls, model=model, tokens_input=tokens_input,
        tokens_output=tokens_output, cost_usd=price_of(model, prices, tokens_input, tokens_output),
        latency_ms=latency_ms, message=assistant,
    )


def _is_empty(completion: Completion, offers_tools: bool) -> bool:
    """No text to show, and no tool call to run (tool calls count only when tools were offered)."""
    return not completion.text.strip() and not (offers_tools and completion.tool_calls)


def _strip_fences(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped
