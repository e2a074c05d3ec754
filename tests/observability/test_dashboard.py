"""GET /v1/metrics/dashboard: the numbers equal what the stored messages say, for the key's company only."""

from __future__ import annotations

import statistics

import httpx
import pytest
from sqlalchemy import select

from cortex.db.models import Message
from cortex.kit.runtime import Runtime
from tests.conftest import SCRIPTED_MODEL
from tests.observability.scenario import scripted_run, semantic_cache
from tests.scripted_llm import ScriptedLLM
from tests.support import Tenant, create_agent, make_key
from tests.webhook_target import WebhookTarget


async def test_dashboard_matches_the_stored_messages(client: httpx.AsyncClient, tenant: Tenant,
                                                     other_tenant: Tenant, runtime: Runtime, llm: ScriptedLLM,
                                                     webhooks: WebhookTarget) -> None:
    with semantic_cache(runtime):
        await scripted_run(client, tenant, llm, webhooks)
        await scripted_run(client, other_tenant, llm, webhooks)  # another company's traffic must not count
    response = await client.get("/v1/metrics/dashboard", headers=tenant.headers)
    assert response.status_code == 200, response.text
    board = response.json()
    assert set(board) == {"since", "agent_id", "config_loading", "model_routing", "agent_compilation",
                          "semantic_cache", "cost"}
    assert set(board["config_loading"]) == {"cache_hit_rate", "total_loads", "cache_hits", "avg_duration_ms"}
    assert set(board["model_routing"]) == {"total_routed", "by_tier"}
    assert set(board["agent_compilation"]) == {"avg_llm_latency_ms", "tool_call_rate", "avg_tool_rounds"}

    async with runtime.database.session() as session:
        replies = list(await session.scalars(select(Message).where(
            Message.company_id == tenant.company_id, Message.role == "assistant")))
    assert len(replies) == 4
    generated = [r for r in replies if not r.cached]
    with_llm = [r for r in replies if r.llm_latency_ms is not None]

    # What the messages say, computed here independently of the SQL.
    config = board["config_loading"]
    assert config["total_loads"] == 4 and config["cache_hits"] == 3 and config["cache_hit_rate"] == 0.75
    assert config["avg_duration_ms"] == pytest.approx(
        statistics.mean(r.step_timings["config_load"] for r in replies), abs=1e-3)
    routing = board["model_routing"]
    tiers: dict[str, int] = {}
    for reply in replies:
        if reply.tier:
            tiers[reply.tier] = tiers.get(reply.tier, 0) + 1
    assert routing["total_routed"] == 3 and routing["by_tier"] == tiers
    compilation = board["agent_compilation"]
    assert compilation["avg_llm_latency_ms"] == pytest.approx(
        statistics.mean(r.llm_latency_ms for r in with_llm if r.llm_latency_ms is not None), abs=1e-3)
    assert compilation["tool_call_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert compilation["avg_tool_rounds"] == pytest.approx(sum(r.tool_rounds for r in generated) / 3, abs=1e-4)
    cache = board["semantic_cache"]
    assert cache == {"lookups": 4, "hits": 1, "misses": 3, "hit_rate": 0.25, "avg_similarity": 0.97}
    cost = board["cost"]
    assert cost["replies"] == 4
    assert cost["tokens_input"] == sum(r.tokens_input for r in replies) == 1000
    assert cost["tokens_output"] == sum(r.tokens_output for r in replies) == 100
    assert cost["total_cost_usd"] == pytest.approx(float(sum(r.cost_usd for r in replies))) and \
        cost["total_cost_usd"] == pytest.approx(1.4)
    assert cost["by_model"][SCRIPTED_MODEL] == {"replies": 3, "cost_usd": pytest.approx(1.4),
                                                "tokens_input": 1000, "tokens_output": 100}
    assert cost["by_model"]["cache"]["replies"] == 1 and cost["by_model"]["cache"]["cost_usd"] == 0


async def test_an_empty_company_has_zeros(client: httpx.AsyncClient, tenant: Tenant) -> None:
    board = (await client.get("/v1/metrics/dashboard", headers=tenant.headers)).json()
    assert board["config_loading"] == {"cache_hit_rate": 0.0, "total_loads": 0, "cache_hits": 0,
                                       "avg_duration_ms": 0.0}
    assert board["model_routing"] == {"total_routed": 0, "by_tier": {}}
    assert board["semantic_cache"]["lookups"] == 0 and board["cost"]["total_cost_usd"] == 0


async def test_dashboard_errors(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    assert (await client.get("/v1/metrics/dashboard")).status_code == 401
    chat_only = await make_key(runtime, tenant.company_id, ["chat"])
    assert (await client.get("/v1/metrics/dashboard",
                             headers={"Authorization": f"Bearer {chat_only}"})).status_code == 403
    for bad in ("0", "367", "abc"):
        response = await client.get("/v1/metrics/dashboard", params={"days": bad}, headers=tenant.headers)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "days"]
    assert (await client.get("/v1/metrics/dashboard", params={"days": "1"}, headers=tenant.headers)).status_code == 200
    bad_id = await client.get("/v1/metrics/dashboard", params={"agent_id": "nope"}, headers=tenant.headers)
    assert bad_id.status_code == 422 and bad_id.json()["detail"][0]["loc"] == ["query", "agent_id"]


async def test_dashboard_for_one_agent(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant,
                                       runtime: Runtime, llm: ScriptedLLM, webhooks: WebhookTarget) -> None:
    with semantic_cache(runtime):
        run = await scripted_run(client, tenant, llm, webhooks)
    quiet = await create_agent(client, tenant)
    theirs = await create_agent(client, other_tenant)
    one = (await client.get("/v1/metrics/dashboard", params={"agent_id": run.agent["id"]},
                            headers=tenant.headers)).json()
    assert one["agent_id"] == run.agent["id"] and one["cost"]["replies"] == 4
    assert one["semantic_cache"]["hits"] == 1 and one["model_routing"]["total_routed"] == 3
    none = (await client.get("/v1/metrics/dashboard", params={"agent_id": quiet["id"]}, headers=tenant.headers))
    assert none.status_code == 200 and none.json()["cost"]["replies"] == 0
    other = await client.get("/v1/metrics/dashboard", params={"agent_id": theirs["id"]}, headers=tenant.headers)
    assert other.status_code == 404 and theirs["id"] not in other.text
