"""GET /v1/metrics: the Prometheus text format, parsed with the official parser, after scripted chats."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from cortex.kit.runtime import Runtime
from cortex.observability.metrics import Metrics
from tests.conftest import SCRIPTED_MODEL
from tests.observability.helpers import app_client, variant
from tests.observability.scenario import scripted_run, semantic_cache
from tests.observability.test_rate_limit import _wait_ready, server_env
from tests.scripted_llm import ScriptedLLM, _free_port
from tests.support import Tenant, create_agent, make_key, make_tenant
from tests.webhook_target import WebhookTarget

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def scrape(client: httpx.AsyncClient, headers: dict[str, str]) -> Samples:
    response = await client.get("/v1/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def test_a_scrape_after_scripted_chats_parses_and_counts_them(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, llm: ScriptedLLM,
        webhooks: WebhookTarget) -> None:
    before = await scrape(client, tenant.headers)
    with semantic_cache(runtime):
        run = await scripted_run(client, tenant, llm, webhooks)
    after = await scrape(client, tenant.headers)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    agent_id = run.agent["id"]
    assert delta("cortex_chat_requests_total", agent_id=agent_id, outcome="ok") == 4
    assert delta("cortex_config_cache_misses_total", agent_id=agent_id) == 1
    assert delta("cortex_config_cache_hits_total", agent_id=agent_id) == 3
    assert delta("cortex_semantic_cache_hits_total", agent_id=agent_id) == 1
    assert delta("cortex_semantic_cache_misses_total", agent_id=agent_id) == 3
    assert delta("cortex_pipeline_duration_ms_count") == 4
    assert delta("cortex_pipeline_duration_ms_count", tier="cache") == 1
    assert delta("cortex_step_duration_ms_count", step="agent_compiler") == 3
    assert delta("cortex_step_duration_ms_count", step="tool_execution") == 1
    assert delta("cortex_step_duration_ms_count", step="cache_check") == 4
    assert delta("cortex_llm_calls_total", model=SCRIPTED_MODEL, outcome="ok") == 4
    assert delta("cortex_llm_tokens_total", model=SCRIPTED_MODEL, direction="input") == 1000
    assert delta("cortex_llm_tokens_total", model=SCRIPTED_MODEL, direction="output") == 100
    # 1000 input tokens at $1000/M plus 100 output tokens at $4000/M.
    assert delta("cortex_llm_cost_usd_total", model=SCRIPTED_MODEL) == pytest.approx(1.4)
    tiers = {dict(ls)["tier"] for (n, ls) in after if n == "cortex_llm_calls_total"}
    assert tiers and "none" not in {dict(ls)["tier"] for (n, ls), v in after.items()
                                    if n == "cortex_llm_calls_total" and v != before.get((n, ls), 0)}
    assert delta("cortex_tool_calls_total", action="order_status", outcome="ok") == 1
    assert delta("cortex_http_requests_total", route="/v1/chat", method="POST", status="200") == 4
    assert delta("cortex_http_requests_total", route="/v1/agents", method="POST", status="201") == 1
    # Labels stay bounded: no raw paths, no customer ids, no message text anywhere in a scrape.
    text = (await client.get("/v1/metrics", headers=tenant.headers)).text
    assert "customer-1" not in text and "order A1" not in text and str(tenant.company_id) not in text


async def test_route_labels_are_templates(client: httpx.AsyncClient, tenant: Tenant) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for agent_id in ids:
        assert (await client.get(f"/v1/agents/{agent_id}", headers=tenant.headers)).status_code == 404
    await client.get("/no/such/path/" + ids[0])
    samples = await scrape(client, tenant.headers)
    routes = {dict(ls).get("route") for (n, ls) in samples if n == "cortex_http_requests_total"}
    assert "/v1/agents/{agent_id}" in routes and "unmatched" in routes
    assert not any(agent_id in str(route) for route in routes for agent_id in ids)


async def test_a_company_sees_only_its_own_agents_series(client: httpx.AsyncClient, tenant: Tenant,
                                                          other_tenant: Tenant, runtime: Runtime,
                                                          llm: ScriptedLLM) -> None:
    mine = await create_agent(client, tenant)
    theirs = await create_agent(client, other_tenant)
    for who, agent in ((tenant, mine), (other_tenant, theirs)):
        body = {"company_id": str(who.company_id), "agent_id": agent["id"], "conversation_id": str(uuid.uuid4()),
                "customer_id": "c", "message": "hi"}
        assert (await client.post("/v1/chat", json=body, headers=who.headers)).status_code == 200
    text = (await client.get("/v1/metrics", headers=tenant.headers)).text
    assert mine["id"] in text and theirs["id"] not in text
    token = "scrape-" + uuid.uuid4().hex
    async with app_client(variant(runtime, metrics_token=token)) as http:
        scraped = await http.get("/v1/metrics", headers={"Authorization": f"Bearer {token}"})
        assert scraped.status_code == 200 and mine["id"] in scraped.text and theirs["id"] in scraped.text
        assert (await http.get("/v1/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401


async def test_metrics_needs_the_metrics_scope(client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    assert (await client.get("/v1/metrics")).status_code == 401
    chat_only = await make_key(runtime, tenant.company_id, ["chat"])
    forbidden = await client.get("/v1/metrics", headers={"Authorization": f"Bearer {chat_only}"})
    assert forbidden.status_code == 403
    metrics_only = await make_key(runtime, tenant.company_id, ["metrics"])
    assert (await client.get("/v1/metrics", headers={"Authorization": f"Bearer {metrics_only}"})).status_code == 200
    # Without a configured scraper token, no bearer value opens it.
    assert (await client.get("/v1/metrics", headers={"Authorization": "Bearer "})).status_code == 401


async def test_rate_limited_requests_are_counted(runtime: Runtime) -> None:
    tenant = await make_tenant(runtime)
    before = parse(runtime.telemetry.metrics.render().decode())
    async with app_client(variant(runtime, rate_limit_per_minute=1)) as http:
        statuses = [(await http.get("/v1/agents", headers=tenant.headers)).status_code for _ in range(3)]
    assert statuses == [200, 429, 429]
    after = parse(runtime.telemetry.metrics.render().decode())
    assert value(after, "cortex_rate_limited_requests_total", limit="key") - \
        value(before, "cortex_rate_limited_requests_total", limit="key") == 2
    assert value(after, "cortex_http_requests_total", route="/v1/agents", status="429") - \
        value(before, "cortex_http_requests_total", route="/v1/agents", status="429") == 2


def test_label_sets_are_bounded() -> None:
    allowed = {"agent_id", "tier", "model", "step", "route", "method", "status", "outcome", "direction", "action",
               "limit", "embedding_model", "le"}
    for family in Metrics().registry.collect():
        for name in getattr(family, "_labelnames", ()):
            assert name in allowed
    metrics = Metrics()
    labelled = [m for m in vars(metrics).values() if hasattr(m, "_labelnames")]
    assert labelled and all(set(m._labelnames) <= allowed for m in labelled)


# --- several workers ----------------------------------------------------------------------------------

@dataclass
class Workers:
    base: str
    token: str
    multiproc: Path


@pytest.fixture
def two_workers(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Workers]:
    """`cortex serve --workers 2` (which needs Redis) with a scraper token and its own PROMETHEUS_MULTIPROC_DIR."""
    token = "scrape-" + uuid.uuid4().hex
    multiproc = tmp_path / "prom"
    env = server_env(database_url, tmp_path, CORTEX_METRICS_TOKEN=token, PROMETHEUS_MULTIPROC_DIR=str(multiproc),
                     CORTEX_LOG_LEVEL="WARNING", REDIS_URL=redis_url,
                     CORTEX_RATE_LIMIT_PREFIX=f"cortex-test:{uuid.uuid4().hex}")
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cortex.cli", "serve", "--port", str(port), "--workers", "2"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(port, proc, log)
        yield Workers(f"http://127.0.0.1:{port}", token, multiproc)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _workers_that_served_health(folder: Path) -> int:
    """How many worker processes' own counter files record /health requests."""
    served = 0
    for path in folder.glob("counter_*.db"):
        families = MultiProcessCollector.merge([str(path)], accumulate=True)
        if any(s.name == "cortex_http_requests_total" and s.labels.get("route") == "/health" and s.value > 0
               for family in families for s in family.samples):
            served += 1
    return served


async def test_workers_add_up_in_one_scrape(two_workers: Workers) -> None:
    """Each worker counts its own requests in its own files; any worker's scrape shows their sum."""
    auth = {"Authorization": f"Bearer {two_workers.token}"}

    async def health_count() -> float:
        async with httpx.AsyncClient(timeout=10) as http:
            scraped = await http.get(two_workers.base + "/v1/metrics", headers=auth)
        assert scraped.status_code == 200
        return value(parse(scraped.text), "cortex_http_requests_total", route="/health", status="200")

    # Counted from a first scrape: readiness probes that timed out in the accept queue may still be served.
    start = await health_count()
    sent = 0
    # New connections, many at once, until both workers have served. Bounded in time rather than rounds:
    # on a loaded machine the second worker can still be starting while the first answers everything.
    deadline = asyncio.get_running_loop().time() + 90
    while asyncio.get_running_loop().time() < deadline:
        async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0), timeout=10) as http:
            results = await asyncio.gather(*(http.get(two_workers.base + "/health") for _ in range(20)))
        assert all(r.status_code == 200 for r in results)
        sent += len(results)
        if _workers_that_served_health(two_workers.multiproc) >= 2:
            break
        await asyncio.sleep(0.5)
    assert _workers_that_served_health(two_workers.multiproc) == 2, "both workers should have served requests"
    assert await health_count() - start == sent
