"""Webhook execution and its guards, against a real HTTP server on loopback."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cortex.agents.schemas import ActionConfig
from cortex.agents.service import build_config
from cortex.kit.runtime import Runtime
from cortex.tools.executor import MAX_RESPONSE_BYTES, ToolExecutor
from tests.support import Tenant, create_action, create_agent
from tests.webhook_target import Call, WebhookTarget


@pytest.fixture
async def executor(runtime: Runtime) -> AsyncIterator[ToolExecutor]:
    tools = ToolExecutor(runtime)
    yield tools
    await tools.aclose()


async def _actions(runtime: Runtime, tenant: Tenant, agent_id: str) -> list[ActionConfig]:
    async with runtime.database.session() as session:
        return (await build_config(session, tenant.company_id, uuid.UUID(agent_id))).action_definitions


async def _setup(client: Any, runtime: Runtime, tenant: Tenant, **action: Any) -> list[ActionConfig]:
    created = await create_action(client, tenant, **action)
    agent = await create_agent(client, tenant, action_ids=[created["id"]])
    return await _actions(runtime, tenant, agent["id"])


@pytest.mark.parametrize(("auth_type", "credentials", "header", "expected"), [
    ("api_key", {"api_key": "k-123"}, "x-api-key", "k-123"),
    ("api_key", {"api_key": "k-123", "header_name": "X-Shop-Key"}, "x-shop-key", "k-123"),
    ("bearer", {"token": "t-456"}, "authorization", "Bearer t-456"),
    ("basic", {"username": "u", "password": "p"}, "authorization", "Basic " + base64.b64encode(b"u:p").decode()),
])
async def test_auth_headers_come_from_stored_credentials(client: Any, runtime: Runtime, tenant: Tenant,
                                                         executor: ToolExecutor, webhooks: WebhookTarget,
                                                         auth_type: str, credentials: dict[str, str], header: str,
                                                         expected: str) -> None:
    actions = await _setup(client, runtime, tenant, name="act", webhook_url=webhooks.base_url + "/hook",
                           auth_type=auth_type, auth_credentials=credentials)
    outcome = await executor.execute(company_id=tenant.company_id, actions=actions, name="act",
                                     raw_arguments="{}")
    assert outcome.outcome == "ok" and outcome.status == 200
    assert webhooks.calls[-1].headers[header] == expected


async def test_oauth2_client_credentials_token_is_cached(client: Any, runtime: Runtime, tenant: Tenant,
                                                         executor: ToolExecutor, webhooks: WebhookTarget) -> None:
    def answer(call: Call) -> Response:
        if call.path == "/token":
            return JSONResponse({"access_token": "tok-" + str(len(webhooks.calls)), "expires_in": 3600})
        return JSONResponse({"seen": call.headers.get("authorization")})

    webhooks.answer = answer
    actions = await _setup(client, runtime, tenant, name="crm", webhook_url=webhooks.base_url + "/crm",
                           auth_type="oauth2", auth_credentials={
                               "token_url": webhooks.base_url + "/token", "client_id": "cid",
                               "client_secret": "csecret"})
    for _ in range(3):
        outcome = await executor.execute(company_id=tenant.company_id, actions=actions, name="crm",
                                         raw_arguments="{}")
        assert outcome.outcome == "ok"
    token_calls = [c for c in webhooks.calls if c.path == "/token"]
    assert len(token_calls) == 1
    assert b"grant_type=client_credentials" in token_calls[0].body and b"client_secret=csecret" in token_calls[0].body
    assert {c.headers["authorization"] for c in webhooks.calls if c.path == "/crm"} == {"Bearer tok-1"}


async def test_post_body_and_path_from_validated_arguments(client: Any, runtime: Runtime, tenant: Tenant,
                                                           executor: ToolExecutor, webhooks: WebhookTarget) -> None:
    actions = await _setup(
        client, runtime, tenant, name="ticket", method="POST", webhook_url=webhooks.base_url + "/t",
        path_template="/customers/{customer}/tickets", headers={"X-Source": "cortex"},
        parameters_schema={"type": "object", "properties": {"customer": {"type": "string"},
                                                             "subject": {"type": "string"}},
                           "required": ["customer", "subject"], "additionalProperties": False})
    outcome = await executor.execute(company_id=tenant.company_id, actions=actions, name="ticket",
                                     raw_arguments='{"customer": "../admin", "subject": "Broken"}')
    assert outcome.outcome == "ok"
    call = webhooks.calls[-1]
    assert call.raw_path == "/t/customers/..%2Fadmin/tickets"
    assert call.json() == {"subject": "Broken"} and call.headers["x-source"] == "cortex"
    extra = await executor.execute(company_id=tenant.company_id, actions=actions, name="ticket",
                                   raw_arguments='{"customer": "c", "subject": "s", "url": "http://evil"}')
    assert extra.outcome == "invalid_arguments" and len(webhooks.calls) == 1


async def test_unknown_action_is_a_tool_error(runtime: Runtime, tenant: Tenant, executor: ToolExecutor) -> None:
    outcome = await executor.execute(company_id=tenant.company_id, actions=[], name="rm_rf", raw_arguments="{}")
    assert outcome.outcome == "unknown_action" and "rm_rf" in json.loads(outcome.content)["error"]


async def test_large_responses_are_truncated_and_flagged(client: Any, runtime: Runtime, tenant: Tenant,
                                                         executor: ToolExecutor, webhooks: WebhookTarget) -> None:
    webhooks.answer = lambda call: PlainTextResponse("x" * (MAX_RESPONSE_BYTES * 3))
    actions = await _setup(client, runtime, tenant, name="big", webhook_url=webhooks.base_url + "/big")
    outcome = await executor.execute(company_id=tenant.company_id, actions=actions, name="big", raw_arguments="{}")
    assert outcome.truncated and outcome.size_bytes == MAX_RESPONSE_BYTES
    assert json.loads(outcome.content)["truncated"] is True


async def test_retries_on_503_then_succeeds(client: Any, runtime: Runtime, tenant: Tenant,
                                            executor: ToolExecutor, webhooks: WebhookTarget) -> None:
    unavailable = lambda call: Response(status_code=503)  # noqa: E731
    webhooks.answer_in_order(unavailable, unavailable)
    actions = await _setup(client, runtime, tenant, name="flaky", webhook_url=webhooks.base_url + "/f")
    outcome = await executor.execute(company_id=tenant.company_id, actions=actions, name="flaky",
                                     raw_arguments="{}")
    assert outcome.outcome == "ok" and outcome.attempts == 3 and len(webhooks.calls) == 3


async def test_client_errors_are_not_retried(client: Any, runtime: Runtime, tenant: Tenant,
                                             executor: ToolExecutor, webhooks: WebhookTarget) -> None:
    webhooks.answer = lambda call: JSONResponse({"error": "nope"}, status_code=404)
    actions = await _setup(client, runtime, tenant, name="missing", webhook_url=webhooks.base_url + "/m")
    outcome = await executor.execute(company_id=tenant.company_id, actions=actions, name="missing",
                                     raw_arguments="{}")
    assert outcome.outcome == "http_error" and outcome.status == 404 and len(webhooks.calls) == 1


async def test_connection_refused_after_retries(client: Any, runtime: Runtime, tenant: Tenant,
                                                executor: ToolExecutor, webhooks: WebhookTarget) -> None:
    actions = await _setup(client, runtime, tenant, name="gone", webhook_url=webhooks.base_url + "/g")
    webhooks.stop()
    outcome = await executor.execute(company_id=tenant.company_id, actions=actions, name="gone",
                                     raw_arguments="{}")
    assert outcome.outcome == "unreachable" and outcome.attempts == 3


async def test_rate_limit_per_action(client: Any, runtime: Runtime, tenant: Tenant, executor: ToolExecutor,
                                     webhooks: WebhookTarget) -> None:
    actions = await _setup(client, runtime, tenant, name="limited", webhook_url=webhooks.base_url + "/l",
                           rate_limit={"max_calls": 2, "window_seconds": 60})
    outcomes = [await executor.execute(company_id=tenant.company_id, actions=actions, name="limited",
                                       raw_arguments="{}") for _ in range(3)]
    assert [o.outcome for o in outcomes] == ["ok", "ok", "rate_limited"] and len(webhooks.calls) == 2


async def test_private_addresses_refused_unless_allowed(client: Any, runtime: Runtime, tenant: Tenant,
                                                        executor: ToolExecutor, webhooks: WebhookTarget) -> None:
    actions = await _setup(client, runtime, tenant, name="internal", webhook_url=webhooks.base_url + "/i")
    runtime.settings.allow_private_webhooks = False
    try:
        outcome = await executor.execute(company_id=tenant.company_id, actions=actions, name="internal",
                                         raw_arguments="{}")
    finally:
        runtime.settings.allow_private_webhooks = True
    assert outcome.outcome == "refused" and webhooks.calls == []


async def test_credentials_of_another_company_are_never_used(client: Any, runtime: Runtime, tenant: Tenant,
                                                             other_tenant: Tenant, executor: ToolExecutor,
                                                             webhooks: WebhookTarget) -> None:
    theirs = await _setup(client, runtime, other_tenant, name="theirs", webhook_url=webhooks.base_url + "/x",
                          auth_type="bearer", auth_credentials={"token": "their-secret"})
    # Even handed another company's action config, the credentials lookup is scoped to the caller.
    outcome = await executor.execute(company_id=tenant.company_id, actions=theirs, name="theirs",
                                     raw_arguments="{}")
    assert outcome.outcome == "auth_failed"
    assert all("their-secret" not in json.dumps(c.headers) for c in webhooks.calls)
