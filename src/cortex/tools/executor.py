"""Executing an agent's actions as HTTP webhooks, with every guard the issue asks for.

Guards, in order: the action must be linked to the agent; arguments must match its schema; the
per-action rate limit must allow it; the URL must not resolve to a private address (unless allowed);
then the call itself: 15 s timeout, response capped at 50 KB, two retries with backoff for connection
errors and 502/503/504. Failures come back as a `ToolOutcome` whose content tells the model what went
wrong; they never raise into the pipeline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from cortex.agents.schemas import ActionConfig
from cortex.kit.runtime import Runtime
from cortex.kit.url_guard import BlockedUrl, GuardedTransport, check_url
from cortex.tools.auth import AuthFailed, apply_auth, load_credentials
from cortex.tools.request import InvalidArguments, parse_arguments, prepare

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15.0
MAX_RESPONSE_BYTES = 50 * 1024
MAX_RETRIES = 2
_RETRY_STATUSES = frozenset({502, 503, 504})
_BACKOFF_SECONDS = 0.25


@dataclass
class ToolOutcome:
    name: str
    outcome: str  # ok | http_error | invalid_arguments | unknown_action | rate_limited | refused | unreachable
    status: int | None
    duration_ms: float
    size_bytes: int
    truncated: bool
    attempts: int
    content: str  # what the model reads back

    @property
    def reached_webhook(self) -> bool:
        return self.status is not None

    def record(self) -> dict[str, Any]:
        """What is stored on the message: no response body, no arguments, no credentials."""
        data = asdict(self)
        data.pop("content")
        return data


class ToolExecutor:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False, transport=GuardedTransport(
            allow_private=lambda: runtime.settings.allow_private_webhooks))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def execute(self, *, company_id: uuid.UUID, actions: list[ActionConfig], name: str,
                      raw_arguments: str) -> ToolOutcome:
        with self.runtime.telemetry.tool_call(name) as call:
            outcome = await self._execute(company_id, actions, name, raw_arguments)
            call.finished(outcome)
        return outcome

    async def _execute(self, company_id: uuid.UUID, actions: list[ActionConfig], name: str,
                       raw_arguments: str) -> ToolOutcome:
        started = time.perf_counter()

        def failed(outcome: str, message: str) -> ToolOutcome:
            return ToolOutcome(name=name, outcome=outcome, status=None,
                               duration_ms=(time.perf_counter() - started) * 1000, size_bytes=0, truncated=False,
                               attempts=0, content=json.dumps({"error": message}))

        action = next((a for a in actions if a.name == name), None)
        if action is None:
            return failed("unknown_action", f"no action named {name!r} is available to this agent")
        try:
            arguments = parse_arguments(action, raw_arguments)
            request = prepare(action, arguments)
        except InvalidArguments as exc:
            return failed("invalid_arguments", str(exc))
        retry_after = await self._rate_limited(action)
        if retry_after is not None:
            return failed("rate_limited", f"action {name} is rate limited; try again in {retry_after} s")
        try:
            await check_url(request.url, allow_private=self.runtime.settings.allow_private_webhooks)
        except BlockedUrl as exc:
            return failed("refused", f"the action's URL is refused: {exc}")
        headers = {str(k): str(v) for k, v in action.headers.items()}
        try:
            credentials = ({} if action.auth_type == "none"
                           else await load_credentials(self.runtime, company_id, action.id))
            auth = await apply_auth(self.runtime, self._client, action_id=action.id, auth_type=action.auth_type,
                                    credentials=credentials, headers=headers)
        except (AuthFailed, KeyError) as exc:
            return failed("auth_failed", f"could not authenticate the action: {exc}")
        return await self._send(name, request.method, request.url, request.params, request.json_body, headers,
                                auth, started)

    async def _send(self, name: str, method: str, url: str, params: dict[str, str], body: dict[str, Any] | None,
                    headers: dict[str, str], auth: httpx.BasicAuth | None, started: float) -> ToolOutcome:
        last_error = ""
        for attempt in range(1, MAX_RETRIES + 2):
            try:
                async with self._client.stream(method, url, params=params, json=body, headers=headers,
                                               auth=auth or httpx.USE_CLIENT_DEFAULT) as response:
                    if response.status_code in _RETRY_STATUSES and attempt <= MAX_RETRIES:
                        last_error = f"HTTP {response.status_code}"
                        await asyncio.sleep(_BACKOFF_SECONDS * attempt)
                        continue
                    payload, truncated = await _read_capped(response)
                    return self._answered(name, response.status_code, payload, truncated, attempt, started)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                last_error = type(exc).__name__
                if attempt <= MAX_RETRIES:
                    await asyncio.sleep(_BACKOFF_SECONDS * attempt)
                    continue
            except httpx.TimeoutException:
                last_error = f"no answer within {TIMEOUT_SECONDS:.0f} s"
                break
        return ToolOutcome(name=name, outcome="unreachable", status=None,
                           duration_ms=(time.perf_counter() - started) * 1000, size_bytes=0, truncated=False,
                           attempts=attempt, content=json.dumps({"error": f"the action failed: {last_error}"}))

    @staticmethod
    def _answered(name: str, status: int, payload: bytes, truncated: bool, attempts: int,
                  started: float) -> ToolOutcome:
        text = payload.decode("utf-8", errors="replace")
        body: Any = text
        if not truncated:
            try:
                body = json.loads(text)
            except ValueError:
                pass
        content = json.dumps({"status": status, "body": body, "truncated": truncated})
        return ToolOutcome(name=name, outcome="ok" if status < 400 else "http_error", status=status,
                           duration_ms=(time.perf_counter() - started) * 1000, size_bytes=len(payload),
                           truncated=truncated, attempts=attempts, content=content)

    async def _rate_limited(self, action: ActionConfig) -> int | None:
        """Fixed window per action in the shared cache backend, so the limit holds across workers."""
        if action.rate_limit is None:
            return None
        window = action.rate_limit.window_seconds
        now = time.time()
        slot = int(now // window)
        count = await self.runtime.cache.incr(f"cortex:action-rate:{action.id}:{slot}", 1, ttl_seconds=window)
        if count > action.rate_limit.max_calls:
            return max(1, int((slot + 1) * window - now))
        return None


async def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return b"".join(chunks)[:MAX_RESPONSE_BYTES], True
    return b"".join(chunks), False
