"""What request ids, metrics, the request span, the access log and the rate limit add to a request.

The same authenticated `GET /v1/agents` (a key lookup from the cache and one small query) is sent,
in-process through httpx's ASGI transport, to (a) the app with its middlewares removed — the
baseline —, (b) the full app with the in-process rate limiter and (c) the full app with the Redis
rate limiter (when Redis answers); the three are interleaved so drift hits them alike. Also times one
limiter decision (per key + per company) on each storage. Prints one JSON object.

    python bench/observability_overhead.py [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from limits.aio.storage import MemoryStorage  # noqa: E402
from tests.support import make_tenant  # noqa: E402

from bench.common import log  # noqa: E402
from cortex.app import build_runtime, close_runtime, create_app  # noqa: E402
from cortex.kit.runtime import Runtime  # noqa: E402
from cortex.observability.rate_limit import RATE_LIMITER, Check, RateLimiter  # noqa: E402
from cortex.settings import Settings  # noqa: E402

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")



def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"mean": round(statistics.mean(values), 3), "p50": round(ordered[len(ordered) // 2], 3),
            "p95": round(ordered[int(len(ordered) * 0.95) - 1], 3)}


async def redis_limiter() -> RateLimiter | None:
    limiter = RateLimiter.from_settings(Settings(redis_url=REDIS_URL,
                                                 rate_limit_prefix=f"cortex-bench:{uuid.uuid4().hex}"))
    try:
        await limiter.hit([Check("probe", "probe", 10)])
    except Exception as exc:
        log(f"no Redis at {REDIS_URL} ({type(exc).__name__}): the Redis variant is skipped")
        return None
    return limiter


async def time_limiter(limiter: RateLimiter, hits: int) -> float:
    """Admitted decisions at the default limit (600/min): a fresh key and company every 500 hits."""
    started = time.perf_counter()
    for i in range(hits):
        if i % 500 == 0:
            checks = [Check("key", uuid.uuid4().hex, 600), Check("company", uuid.uuid4().hex, 600)]
        assert (await limiter.hit(checks)).allowed
    return round((time.perf_counter() - started) / hits * 1e6, 1)


async def run(requests: int) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="cortex-bench-"))
    settings = Settings(data_dir=data_dir, preload_embeddings=False, rate_limit_per_minute=10**9,
                        secret_key="bench-" + "x" * 40)
    log("starting the database and the runtime ...")
    runtime = await build_runtime(settings)
    try:
        tenant = await make_tenant(runtime)
        bare = create_app(runtime=runtime)
        bare.user_middleware.clear()  # the stack is built on the first request, without them
        variants: dict[str, Any] = {"baseline_no_middleware": bare}
        memory_runtime = dataclasses.replace(
            runtime, components={**runtime.components, RATE_LIMITER: RateLimiter(MemoryStorage())})
        variants["observed_memory_limiter"] = create_app(runtime=memory_runtime)
        redis = await redis_limiter()
        if redis is not None:
            redis_runtime: Runtime = dataclasses.replace(
                runtime, components={**runtime.components, RATE_LIMITER: redis})
            variants["observed_redis_limiter"] = create_app(runtime=redis_runtime)
        clients = {name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
                   for name, app in variants.items()}
        timings: dict[str, list[float]] = {name: [] for name in clients}
        for round_number in range(requests + 20):
            for name, client in clients.items():
                started = time.perf_counter()
                response = await client.get("/v1/agents", headers=tenant.headers)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, response.text
                if round_number >= 20:  # the first rounds warm pools and caches
                    timings[name].append(elapsed)
        for client in clients.values():
            await client.aclose()
        result: dict[str, Any] = {"requests_per_variant": requests, "route": "GET /v1/agents",
                                  "latency_ms": {name: summary(values) for name, values in timings.items()}}
        base = result["latency_ms"]["baseline_no_middleware"]["mean"]
        result["overhead_ms_mean"] = {name: round(stats["mean"] - base, 3)
                                      for name, stats in result["latency_ms"].items()
                                      if name != "baseline_no_middleware"}
        limiter_us = {"memory": await time_limiter(RateLimiter(MemoryStorage()), 2000)}
        if redis is not None:
            limiter_us["redis"] = await time_limiter(redis, 2000)
        result["limiter_decision_us"] = limiter_us
        result["note"] = "in-process ASGI; timings taken on a shared 2-core machine"
        return result
    finally:
        await close_runtime(runtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.requests))))


if __name__ == "__main__":
    main()
