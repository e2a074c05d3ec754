"""deploy/grafana/cortex-dashboard.json asks only for series that a running Cortex exports.

The names come from a real scrape of the live server's GET /v1/metrics (after a chat, so that the
pipeline's series have samples): every family it declares, with the sample names Prometheus gives
each type (`_total` for counters; `_bucket`, `_sum`, `_count` for histograms).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.live_cortex import LiveCortex
from tests.scripted_llm import Reply, ScriptedLLM
from tests.support import Tenant

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "cortex-dashboard.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",)}
METRIC = re.compile(r"\b(cortex_[a-z0-9_]+)\b")
# What the dashboard is for: each of these families is on it.
REQUIRED = {"cortex_http_requests", "cortex_step_duration_ms", "cortex_pipeline_duration_ms", "cortex_llm_cost_usd",
            "cortex_semantic_cache_hits", "cortex_semantic_cache_misses", "cortex_llm_calls",
            "cortex_memory_extraction_runs", "cortex_webhook_attempts"}


def _queries(node: Any) -> list[str]:
    """Every PromQL string of the dashboard: panel targets and template variable queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            elif key == "query" and isinstance(value, str) and "(" in value:
                found.append(value)
            else:
                found.extend(_queries(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_queries(item))
    return found


def _exported(text: str) -> tuple[set[str], set[str]]:
    families, samples = set(), set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        samples.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return families, samples


async def test_every_dashboard_query_names_an_exported_metric(
        tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    async with httpx.AsyncClient(base_url=live.base_url, headers=tenant.headers, timeout=60) as http:
        agent = (await http.post("/v1/agents", json={"name": "Dashboard agent",
                                                     "settings": {"cache": {"enabled": False}}})).json()
        live_llm.queue(Reply(text="Hello"))
        chat = await http.post("/v1/chat", json={
            "company_id": str(tenant.company_id), "agent_id": agent["id"], "conversation_id": str(uuid.uuid4()),
            "customer_id": "dash", "message": "Hi"})
        assert chat.status_code == 200, chat.text
        scrape = await http.get("/v1/metrics")
    assert scrape.status_code == 200
    families, samples = _exported(scrape.text)
    assert "cortex_step_duration_ms_bucket" in scrape.text  # the chat's series have samples

    dashboard = json.loads(DASHBOARD.read_text())
    queries = _queries(dashboard)
    assert len(queries) >= 25
    used: set[str] = set()
    for query in queries:
        names = set(METRIC.findall(query))
        assert names, f"a query that names no Cortex metric: {query}"
        unknown = names - samples
        assert not unknown, f"{query!r} asks for {sorted(unknown)}, which Cortex does not export"
        used.update(names)
    suffixes = SUFFIXES["counter"] + SUFFIXES["histogram"]
    used_families = {family for family in families for name in used
                     if name == family or (name.startswith(family) and name[len(family):] in suffixes)}
    assert REQUIRED <= used_families, sorted(REQUIRED - used_families)
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
