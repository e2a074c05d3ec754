from __future__ import annotations

import asyncio
import dataclasses
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cortex.app import create_app
from cortex.db.engine import Database
from cortex.health import checks
from cortex.kit.cache_backend import RedisCacheBackend
from cortex.kit.runtime import Runtime
from cortex.settings import Settings
from tests.scratch_db import run_sql
from tests.scripted_llm import ScriptedLLM, refused_api_base
from tests.support import Tenant, make_key

SCRAPER = "scrape-" + uuid.uuid4().hex


def with_token(runtime: Runtime, **changes: Any) -> Runtime:
    """A runtime of its own (own settings, own health checks) opened by the scraper token."""
    settings = runtime.settings.model_copy(update={"metrics_token": SCRAPER, **changes})
    components = {k: v for k, v in runtime.components.items() if k != checks.HEALTH_CHECKS}
    return dataclasses.replace(runtime, settings=settings, components=components)


async def detailed(runtime: Runtime) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://cortex.test") as http:
        return await http.get("/health/detailed", headers={"Authorization": f"Bearer {SCRAPER}"})


async def test_health_is_cheap(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["version"]


async def test_health_detailed_needs_the_scraper_token_or_the_metrics_scope(
        client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime) -> None:
    assert (await client.get("/health/detailed")).status_code == 401
    assert (await client.get("/health/detailed", headers={"Authorization": "Bearer wrong"})).status_code == 401
    chat_only = await make_key(runtime, tenant.company_id, ["chat"])
    forbidden = await client.get("/health/detailed", headers={"Authorization": f"Bearer {chat_only}"})
    assert forbidden.status_code == 403 and "metrics" in forbidden.json()["detail"]
    metrics_only = await make_key(runtime, tenant.company_id, ["metrics"])
    allowed = await client.get("/health/detailed", headers={"Authorization": f"Bearer {metrics_only}"})
    assert allowed.status_code == 200 and allowed.json()["checks"]["postgres"] == "ok"
    scraped = await detailed(with_token(runtime))
    assert scraped.status_code == 200 and scraped.json()["status"] == "ok"


async def test_health_detailed_reports_each_dependency(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = (await client.get("/health/detailed", headers=tenant.headers)).json()
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"] == "not configured"
    assert body["checks"]["litellm"] == "not configured"
    assert body["status"] == "ok"


async def test_health_degraded_when_configured_dependency_fails(runtime: Runtime) -> None:
    broken = RedisCacheBackend("redis://127.0.0.1:1/0")
    degraded = dataclasses.replace(with_token(runtime, redis_url="redis://127.0.0.1:1/0"), cache=broken)
    response = await detailed(degraded)
    await broken.close()
    assert response.status_code == 200
    body = response.json()
    # A fixed reason, never the exception's own text (addresses, library names).
    assert body["status"] == "degraded" and body["checks"]["redis"] == "error: unreachable"
    assert "127.0.0.1" not in response.text and "Error" not in response.text


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, redis_url=None)


@pytest.fixture
async def closable_database(pg_server_url: str) -> AsyncIterator[tuple[str, Database]]:
    """A database of its own on the test server, and a Database (pool) serving it."""
    name = f"cortex_health_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(run_sql, pg_server_url, f'CREATE DATABASE "{name}"', autocommit=True)
    database = Database(settings_for(make_url(pg_server_url).set(database=name).render_as_string(False)))
    try:
        yield name, database
    finally:
        await database.dispose()
        await asyncio.to_thread(run_sql, pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                                autocommit=True)


async def test_postgres_is_not_ok_while_it_refuses_new_connections(
        runtime: Runtime, pg_server_url: str, closable_database: tuple[str, Database]) -> None:
    """A smart shutdown (or a database closed to connections) keeps pooled connections working and refuses
    new ones: the check must see what the next requests will meet, not what the pool still holds."""
    name, database = closable_database
    served = dataclasses.replace(with_token(runtime), database=database)
    assert (await detailed(served)).json()["checks"]["postgres"] == "ok"
    async with database.session() as session:  # a pooled connection, kept open below
        await session.execute(text("SELECT 1"))
    await asyncio.to_thread(run_sql, pg_server_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
                            autocommit=True)
    async with database.session() as session:
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1  # the pool still answers
    response = await detailed(served)
    assert response.json()["status"] == "degraded" and response.json()["checks"]["postgres"] == "error: unreachable"
    assert name not in response.text


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield int(listener.getsockname()[1])
    listener.close()


async def test_postgres_check_gives_up_quickly(runtime: Runtime, silent_server: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "CHECK_TIMEOUT_SECONDS", 0.3)
    silent = Database(settings_for(f"postgresql://cortex@127.0.0.1:{silent_server}/nothing"))
    refused_port = refused_api_base().split(":")[2].split("/")[0]
    refused = Database(settings_for(f"postgresql://cortex@127.0.0.1:{refused_port}/nothing"))
    try:
        timed_out = await detailed(dataclasses.replace(with_token(runtime), database=silent))
        unreachable = await detailed(dataclasses.replace(with_token(runtime), database=refused))
    finally:
        await silent.dispose()
        await refused.dispose()
    assert timed_out.json()["checks"]["postgres"] == "error: timeout"
    assert unreachable.json()["checks"]["postgres"] == "error: unreachable"


async def test_provider_probe_is_cached_and_says_only_a_reason(runtime: Runtime, llm: ScriptedLLM,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    served = with_token(runtime)
    llm.models_status, before = 200, llm.models_requests
    try:
        answers = [(await detailed(served)).json()["checks"]["litellm"] for _ in range(3)]
        assert answers == ["ok"] * 3 and llm.models_requests == before + 1  # one probe per 30 s
        llm.models_status = 500
        assert (await detailed(served)).json()["checks"]["litellm"] == "ok"  # still the cached answer
        monkeypatch.setattr(checks, "PROVIDER_PROBE_TTL_SECONDS", 0.0)
        failing = await detailed(served)
        assert failing.json()["checks"]["litellm"] == "error: http 500" and failing.json()["status"] == "degraded"
        assert llm.models_requests == before + 2
    finally:
        llm.models_status = 200
    gone = await detailed(with_token(runtime, llm_api_base=refused_api_base()))
    assert gone.json()["checks"]["litellm"] == "error: unreachable" and "127.0.0.1" not in gone.text


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/agents/{agent_id}/config" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200
