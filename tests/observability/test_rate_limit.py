"""Per key and per company limits, their headers and 429s; shared through Redis across processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import cortex
from cortex.kit.runtime import Runtime
from cortex.observability.rate_limit import Check, RateLimiter
from cortex.settings import Settings
from tests.observability.helpers import app_client, variant
from tests.scripted_llm import _free_port
from tests.support import Tenant, make_key, make_tenant

HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


async def test_headers_count_down_then_429_with_retry_after(runtime: Runtime, tenant: Tenant) -> None:
    async with app_client(variant(runtime, rate_limit_per_minute=3)) as http:
        responses = [await http.get("/v1/agents", headers=tenant.headers) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "3" for r in responses)
    assert all(1 <= int(r.headers["X-RateLimit-Reset"]) <= 60 for r in responses)
    refused = responses[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    body = refused.json()
    assert body == {"detail": "rate limit exceeded", "scope": "key", "limit": 3,
                    "retry_after": int(refused.headers["Retry-After"])}
    assert refused.headers["X-Request-ID"]


async def test_every_v1_response_has_the_headers_and_other_paths_none(runtime: Runtime, tenant: Tenant) -> None:
    async with app_client(variant(runtime, rate_limit_per_minute=50)) as http:
        for response in (await http.get("/v1/agents"),  # 401: limited by client address
                         await http.get("/v1/agents", headers={"Authorization": "Bearer ctx_" + "x" * 40}),
                         await http.get("/v1/agents/not-a-uuid", headers=tenant.headers),  # 422
                         await http.get("/v1/agents/" + str(uuid.uuid4()), headers=tenant.headers),  # 404
                         await http.post("/v1/agents", json={}, headers=tenant.headers)):  # 422
            assert response.status_code in (401, 404, 422)
            assert all(name in response.headers for name in HEADERS), response.status_code
        health = await http.get("/health")
    assert health.status_code == 200 and "X-RateLimit-Limit" not in health.headers


async def test_per_key_override_and_the_company_limit_across_keys(runtime: Runtime) -> None:
    tenant = await make_tenant(runtime)
    slow_key = await make_key(runtime, tenant.company_id, ["*"], rate_limit_per_minute=2)
    other_key = await make_key(runtime, tenant.company_id, ["*"])
    other_company = await make_tenant(runtime)
    limited = variant(runtime, rate_limit_per_minute=100, company_rate_limit_per_minute=5)
    async with app_client(limited) as http:
        async def get(key: str) -> httpx.Response:
            return await http.get("/v1/agents", headers={"Authorization": f"Bearer {key}"})

        slow = [await get(slow_key) for _ in range(3)]
        assert [r.status_code for r in slow] == [200, 200, 429]
        assert slow[0].headers["X-RateLimit-Limit"] == "2" and slow[-1].json()["scope"] == "key"
        # 2 of the company's 5 are used; the third key gets the remaining 3.
        rest = [await get(other_key) for _ in range(4)]
        assert [r.status_code for r in rest] == [200, 200, 200, 429]
        assert rest[-1].json()["scope"] == "company" and rest[-1].json()["limit"] == 5
        assert rest[0].headers["X-RateLimit-Limit"] == "5" and rest[0].headers["X-RateLimit-Remaining"] == "2"
        # Another company is untouched.
        assert (await get(other_company.api_key)).status_code == 200


async def test_the_key_create_api_takes_and_returns_a_per_key_limit(client: httpx.AsyncClient,
                                                                     tenant: Tenant) -> None:
    created = await client.post("/v1/keys", json={"name": "limited", "scopes": ["chat"], "rate_limit_per_minute": 7},
                                headers=tenant.headers)
    assert created.status_code == 200, created.text
    assert created.json()["rate_limit_per_minute"] == 7
    bad = await client.post("/v1/keys", json={"name": "x", "rate_limit_per_minute": 0}, headers=tenant.headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "rate_limit_per_minute"]


@pytest.mark.redis
async def test_two_limiters_on_one_redis_share_the_count(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url, rate_limit_prefix=f"cortex-test:{uuid.uuid4().hex}")
    first, second = RateLimiter.from_settings(settings), RateLimiter.from_settings(settings)
    check = [Check("key", "k1", 5)]
    decisions = [await (first if i % 2 else second).hit(check) for i in range(8)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]


async def test_an_unreachable_redis_does_not_take_the_api_down(runtime: Runtime, tenant: Tenant) -> None:
    unreachable = RateLimiter.from_settings(Settings(redis_url="redis://127.0.0.1:1/0"))
    async with app_client(variant(runtime, limiter=unreachable)) as http:
        response = await http.get("/v1/agents", headers=tenant.headers)
    assert response.status_code == 200 and "X-RateLimit-Limit" not in response.headers


# --- two real server processes on one Redis ---------------------------------------------------------

def _serve(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "cortex.cli", "serve", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server on {port} exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"server on {port} did not start: {log.read_text()[-3000:]}")


def server_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    src = str(Path(cortex.__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CORTEX_", "PROMETHEUS_"))}
    env.update({"DATABASE_URL": database_url, "CORTEX_DATA_DIR": str(data_dir), "CORTEX_SECRET_KEY": "s" * 40,
                "CORTEX_PRELOAD_EMBEDDINGS": "false", "PYTHONPATH": os.pathsep.join([src, env.get("PYTHONPATH", "")]),
                "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1", **extra})
    env.pop("REDIS_URL", None)
    env.update({k: v for k, v in extra.items()})
    return env


@pytest.fixture
def two_servers(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[int, int]]:
    env = server_env(database_url, tmp_path, REDIS_URL=redis_url, CORTEX_RATE_LIMIT_PER_MINUTE="10",
                     CORTEX_RATE_LIMIT_PREFIX=f"cortex-test:{uuid.uuid4().hex}", CORTEX_LOG_LEVEL="WARNING")
    ports = (_free_port(), _free_port())
    procs = [_serve(port, env, tmp_path / f"server-{port}.log") for port in ports]
    try:
        for port, proc in zip(ports, procs, strict=True):
            _wait_ready(port, proc, tmp_path / f"server-{port}.log")
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.redis
async def test_two_server_processes_together_admit_no_more_than_the_limit(
        runtime: Runtime, two_servers: tuple[int, int]) -> None:
    tenant = await make_tenant(runtime)
    first, second = two_servers
    async with httpx.AsyncClient(timeout=30) as http:
        responses = await asyncio.gather(*(
            http.get(f"http://127.0.0.1:{(first, second)[i % 2]}/v1/agents", headers=tenant.headers)
            for i in range(30)
        ))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10 and statuses.count(429) == 20, statuses
    # Both processes answered, and both refused: neither had a private allowance of its own.
    by_port = {port: [r.status_code for r in responses if r.url.port == port] for port in two_servers}
    assert all(len(codes) == 15 and 429 in codes for codes in by_port.values()), by_port
    assert all(r.headers["X-RateLimit-Limit"] == "10" for r in responses)


async def test_cli_creates_a_key_with_its_own_limit(database_url: str, tenant: Tenant) -> None:
    from tests.test_cli import _run

    made = await asyncio.to_thread(_run, ["keys", "create", "--company-id", str(tenant.company_id), "--name", "slow",
                                          "--rate-limit-per-minute", "5"], {"DATABASE_URL": database_url})
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["rate_limit_per_minute"] == 5
