from __future__ import annotations

import httpx

from cortex.app import create_app
from cortex.kit.cache_backend import RedisCacheBackend
from cortex.kit.runtime import Runtime


async def test_health_is_cheap(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["version"]


async def test_health_detailed_reports_each_dependency(client: httpx.AsyncClient) -> None:
    body = (await client.get("/health/detailed")).json()
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"] == "not configured"
    assert body["checks"]["litellm"] == "not configured"
    assert body["status"] == "ok"


async def test_health_degraded_when_configured_dependency_fails(runtime: Runtime) -> None:
    broken = RedisCacheBackend("redis://127.0.0.1:1/0")
    settings = runtime.settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    degraded = Runtime(settings=settings, database=runtime.database, cache=broken, secrets=runtime.secrets,
                       config_cache=runtime.config_cache, embedder=runtime.embedder, llm=runtime.llm)
    transport = httpx.ASGITransport(app=create_app(runtime=degraded))
    async with httpx.AsyncClient(transport=transport, base_url="http://cortex.test") as http:
        response = await http.get("/health/detailed")
    await broken.close()
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["checks"]["redis"].startswith("error")


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/agents/{agent_id}/config" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200
