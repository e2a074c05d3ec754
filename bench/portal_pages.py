"""Server time of each portal page for a company with 100,000 stored messages. Prints one JSON object.

Seeds one company (10,000 conversations of 10 messages over 30 days, 1 in 50 with a failed message,
1 in 5 replies a cache hit) plus a second company of the same size, so that every query must find its
company's rows among others'. Each page is requested in process through the ASGI app (no network), a
few times to warm up and then `--requests` times; p50/p95 in milliseconds. The same-run baselines are
`GET /health` (a route that touches nothing) and `GET /v1/metrics/dashboard?days=30` (the API's
aggregate over the same messages). The overview keeps its figures until the company's newest message
changes (or 30 s pass); `overview_*_uncached` measures it with that entry deleted before each request.

    python bench/portal_pages.py [--messages 100000] [--requests 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.common import log, open_database, percentile  # noqa: E402
from cortex.agents import service as agents  # noqa: E402
from cortex.agents.schemas import AgentCreate  # noqa: E402
from cortex.app import build_runtime, close_runtime, create_app  # noqa: E402
from cortex.auth import service as auth  # noqa: E402
from cortex.auth.schemas import ApiKeyCreate  # noqa: E402
from cortex.kit.runtime import Runtime  # noqa: E402
from cortex.portal import queries  # noqa: E402
from cortex.portal.overview_pages import overview_cache_key  # noqa: E402
from cortex.settings import Settings  # noqa: E402

PER_CONVERSATION = 10

SEED_CONVERSATIONS = """
INSERT INTO conversations (id, company_id, agent_id, customer_id, channel, metadata, created_at, updated_at)
SELECT gen_random_uuid(), :company, :agent, 'customer-' || (g % 3000), (ARRAY['whatsapp','web','email'])[1 + g % 3],
       '{}'::jsonb, now() - make_interval(secs => (g * 2592000.0 / :n)),
       now() - make_interval(secs => (g * 2592000.0 / :n))
FROM generate_series(1, :n) AS g
"""

SEED_MESSAGES = """
INSERT INTO messages (id, company_id, conversation_id, agent_id, customer_id, role, content, status, channel,
  request_id, model_used, tier, tier_reason, tokens_input, tokens_output, cost_usd, latency_ms, step_timings,
  context_tokens, actions_executed, tool_calls, tool_rounds, cached, cache_similarity, config_cache_hit,
  cache_checked, llm_latency_ms, metadata, created_at)
SELECT gen_random_uuid(), c.company_id, c.id, c.agent_id, c.customer_id,
  CASE WHEN k % 2 = 0 THEN 'customer' ELSE 'assistant' END,
  CASE WHEN k % 2 = 0 THEN 'Where is my order number ' || k || ' of ' || c.customer_id || '?'
       ELSE 'Your order ships within three days.' END,
  CASE WHEN k = 0 AND abs(hashtext(c.id::text)) % 50 = 0 THEN 'failed' ELSE 'ok' END, c.channel, 'req',
  CASE WHEN k % 2 = 1 THEN 'openai/gpt-4o-mini' END, CASE WHEN k % 2 = 1 THEN 'speed' END,
  CASE WHEN k % 2 = 1 THEN 'short question' END,
  CASE WHEN k % 2 = 1 THEN 150 ELSE 0 END, CASE WHEN k % 2 = 1 THEN 12 ELSE 0 END,
  CASE WHEN k % 2 = 1 THEN 0.0001 ELSE 0 END, CASE WHEN k % 2 = 1 THEN 300 + (k * 37 % 900) END,
  CASE WHEN k % 2 = 1 THEN '{"config_load": 1.2, "memory_recall": 3.1, "context_engine": 12.5, "token_optimizer": 2.0,
    "cache_check": 4.4, "model_router": 0.1, "agent_compiler": 280.0, "tool_execution": 0,
    "tool_call_rounds": 0}'::jsonb
    ELSE '{}'::jsonb END,
  '{}'::jsonb, '[]'::jsonb, '[]'::jsonb, 0, (k % 2 = 1 AND k % 5 = 1), NULL,
  CASE WHEN k % 2 = 1 THEN true END, CASE WHEN k % 2 = 1 THEN true END,
  CASE WHEN k % 2 = 1 THEN 280.0 END, '{}'::jsonb, c.created_at + make_interval(secs => k)
FROM conversations c CROSS JOIN generate_series(0, :per - 1) AS k
WHERE c.company_id = :company
"""


async def seed_company(runtime: Runtime, messages: int, name: str) -> tuple[uuid.UUID, str, str, str]:
    password = "bench-" + uuid.uuid4().hex
    async with runtime.database.session() as session:
        company = await auth.get_or_create_company(session, name)
        email = f"{name.lower().replace(' ', '-')}@bench.example"
        user = await auth.create_user(session, company, email, password)
        key = await auth.create_api_key(session, company.id, ApiKeyCreate(name="bench", scopes=["*"]))
        agent = await agents.create_agent(session, company.id, AgentCreate(name="Bench agent"))
        params = {"company": company.id, "agent": agent.id, "n": messages // PER_CONVERSATION,
                  "per": PER_CONVERSATION}
        await session.execute(text(SEED_CONVERSATIONS), params)
        await session.execute(text(SEED_MESSAGES), params)
    return company.id, user.email, password, key.key


async def timed(client: httpx.AsyncClient, url: str, requests: int, headers: dict[str, str] | None = None,
                before: Callable[[], Awaitable[None]] | None = None) -> dict[str, Any]:
    for _ in range(3):
        warm = await client.get(url, headers=headers)
        assert warm.status_code == 200, (url, warm.status_code, warm.text[:300])
    samples = []
    for _ in range(requests):
        if before is not None:
            await before()
        started = time.perf_counter()
        answer = await client.get(url, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200
    return {"p50_ms": percentile(samples, 50, 2), "p95_ms": percentile(samples, 95, 2), "requests": requests}


async def run(args: argparse.Namespace, database_url: str, home: Path) -> dict[str, Any]:
    settings = Settings(database_url=database_url, redis_url=None, data_dir=home, preload_embeddings=False,
                        rate_limit_per_minute=1_000_000, memory_extraction=False)
    runtime = await build_runtime(settings, migrate=False)
    try:
        log(f"seeding 2 x {args.messages} messages")
        started = time.perf_counter()
        name = f"Bench {uuid.uuid4().hex[:6]}"
        company_id, email, password, api_key = await seed_company(runtime, args.messages, name)
        await seed_company(runtime, args.messages, f"Other {uuid.uuid4().hex[:6]}")
        async with runtime.database.session() as session:
            await session.execute(text("ANALYZE"))
            conversation = await session.scalar(text(
                "SELECT id FROM conversations WHERE company_id = :c ORDER BY updated_at DESC LIMIT 1"),
                {"c": company_id})
        log(f"seeded in {time.perf_counter() - started:.1f} s")
        app = create_app(runtime=runtime)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            form = await client.get("/portal/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token is not None
            login = await client.post("/portal/login", data={"email": email, "password": password,
                                                             "csrf_token": token.group(1)})
            assert login.status_code == 303, login.text
            pages = {
                "overview_30d": "/portal/?days=30",
                "overview_1d": "/portal/?days=1",
                "conversations": "/portal/conversations",
                "conversations_page_50": "/portal/conversations?page=50",
                "conversations_failed": "/portal/conversations?status=failed",
                "conversations_customer": "/portal/conversations?customer=customer-42",
                "conversations_text": "/portal/conversations?q=number%207%20of%20customer-42%3F",
                "conversation": f"/portal/conversations/{conversation}",
                "agents": "/portal/agents",
                "keys": "/portal/keys",
            }
            results = {}
            for name, url in pages.items():
                log(f"timing {name}")
                results[name] = await timed(client, url, args.requests)

            async def forget_overview(days: int) -> None:
                async with runtime.database.session() as session:
                    newest = await queries.newest_message_at(session, company_id)
                await runtime.cache.delete(overview_cache_key(company_id, days, newest))

            # The overview's figures are kept until a new message arrives: these are its cost when they are not.
            for days in (30, 1):
                log(f"timing overview_{days}d_uncached")
                results[f"overview_{days}d_uncached"] = await timed(
                    client, f"/portal/?days={days}", args.requests, before=lambda d=days: forget_overview(d))
            bearer = {"Authorization": f"Bearer {api_key}"}
            baselines = {"health": await timed(client, "/health", args.requests),
                         "api_dashboard_30d": await timed(client, "/v1/metrics/dashboard?days=30", args.requests,
                                                          bearer)}
        return {"benchmark": "portal_pages", "messages_per_company": args.messages, "companies": 2,
                "target_p50_ms": 50, "pages": results, "baselines": baselines,
                "pages_over_target": sorted(n for n, r in results.items() if r["p50_ms"] >= 50)}
    finally:
        await close_runtime(runtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cortex-bench-portal-") as workdir:
        database_url, embedded = open_database(Path(workdir))
        try:
            print(json.dumps(asyncio.run(run(args, database_url, Path(workdir))), indent=2))
        finally:
            if embedded is not None:
                embedded.stop()


if __name__ == "__main__":
    main()
