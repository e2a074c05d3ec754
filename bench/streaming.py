"""Time to first token: streamed replies through Cortex against LiteLLM streaming straight from the model.

In one run, against the scripted OpenAI-compatible server streaming its words with a fixed delay each
(`--token-delay-ms`): (a) `litellm.acompletion(stream=True)` straight to the scripted server, (b)
`POST /v1/chat` with `"stream": true` and (c) `POST /v1/chat/completions` with `"stream": true` on a real
`cortex serve` process, interleaved request by request (each path taking each place in the order in
turn) so drift hits every path alike; the time to the first piece of reply text on each, and what
Cortex adds. Then (d) a cache hit through both Cortex paths: the time to the first byte of the body.
Prints one JSON object.

Setup as bench/pipeline_overhead.py: an embedded PostgreSQL (or DATABASE_URL), the scripted server in
its own process, an agent with 50 FAQs and its semantic cache off (every message a miss), a second
agent whose cache is warmed with the question the hit runs ask.

    python bench/streaming.py [--requests 100] [--token-delay-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
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

import litellm  # noqa: E402
from tests.scripted_llm import _free_port  # noqa: E402

from bench.common import log, open_database, percentile, wait_for  # noqa: E402
from bench.pipeline_overhead import faqs, questions  # noqa: E402
from cortex.auth import service as auth  # noqa: E402
from cortex.auth.schemas import ApiKeyCreate  # noqa: E402
from cortex.db.engine import Database  # noqa: E402
from cortex.settings import Settings  # noqa: E402

MODEL = "openai/scripted-model"
HIT_QUESTION = "What are your opening hours?"
HIT_ANSWER = "We are open from nine to five, Sunday to Thursday."


async def seed(database_url: str) -> dict[str, str]:
    from cortex.agents import service as agents
    from cortex.agents.schemas import AgentCreate

    database = Database(Settings(database_url=database_url))
    database.resolve_url()
    database.connect()
    async with database.session() as session:
        company = await auth.get_or_create_company(session, f"Bench {uuid.uuid4().hex[:6]}")
        key = await auth.create_api_key(session, company.id, ApiKeyCreate(name="bench", scopes=["*"]))
        miss = await agents.create_agent(session, company.id, AgentCreate.model_validate({
            "name": "Bench agent", "slug": "bench-miss",
            "system_prompt": "You are the support agent of {{ agent_name }}.", "faqs": faqs(),
            "settings": {"cache": {"enabled": False}}}))
        hit = await agents.create_agent(session, company.id, AgentCreate.model_validate({
            "name": "Cached agent", "slug": "bench-hit", "faqs": faqs()}))
        ids = {"company_id": str(company.id), "miss_agent": str(miss.id), "hit_agent": str(hit.id), "key": key.key}
    await database.dispose()
    return ids


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="cortex-bench-"))
    database_url, embedded = open_database(workdir)
    ids = asyncio.run(seed(database_url))
    llm_port, cortex_port = _free_port(), _free_port()
    api_base = f"http://127.0.0.1:{llm_port}/v1"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT), "DATABASE_URL": database_url,
           "CORTEX_DATA_DIR": str(workdir / "home"), "CORTEX_LLM_API_BASE": api_base, "CORTEX_LLM_API_KEY": "sk-x",
           "CORTEX_RATE_LIMIT_PER_MINUTE": "1000000", "HF_HUB_OFFLINE": "1",
           # A second model call after each reply, off the response path; the baseline makes none.
           "CORTEX_MEMORY_EXTRACTION": "false"}
    for tier in ("SPEED", "NANO", "SONNET", "COMPLEX", "SEARCH"):
        env[f"CORTEX_MODEL_{tier}"] = MODEL
    processes = [
        subprocess.Popen([sys.executable, "-m", "tests.scripted_llm", "--port", str(llm_port),
                          "--token-delay-ms", str(args.token_delay_ms)], cwd=ROOT, env=env),
        subprocess.Popen([sys.executable, "-m", "cortex.cli", "serve", "--port", str(cortex_port)], cwd=ROOT,
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_for(f"http://127.0.0.1:{llm_port}/v1/models")
        wait_for(f"http://127.0.0.1:{cortex_port}/health")
        return asyncio.run(measure(args, f"http://127.0.0.1:{cortex_port}", api_base, ids))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
        if embedded is not None:
            embedded.stop()


STEPS: list[dict[str, float]] = []


async def _first_line(http: httpx.AsyncClient, path: str, body: dict[str, Any], marker: str) -> tuple[float, float]:
    """Milliseconds to the first line holding `marker` and to the first byte; the stream is read to its end.

    The step timings of each native `done` event are kept in STEPS.
    """
    started = time.perf_counter()
    first_byte = first_text = None
    async with http.stream("POST", path, json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {(await response.aread())[:500]!r}")
        async for line in response.aiter_lines():
            now = (time.perf_counter() - started) * 1000
            first_byte = first_byte if first_byte is not None else now
            if first_text is None and marker in line:
                first_text = now
            if line.startswith('data: {"event":"done"'):
                STEPS.append(json.loads(line[len("data: "):])["step_timings"])
    if first_text is None or first_byte is None:
        raise RuntimeError(f"{path}: no reply text in the stream")
    return first_text, first_byte


async def measure(args: argparse.Namespace, cortex: str, api_base: str, ids: dict[str, str]) -> dict[str, Any]:
    messages = questions(args.requests + args.warmup)

    async with httpx.AsyncClient(base_url=cortex, headers={"Authorization": f"Bearer {ids['key']}"},
                                 timeout=60) as http:
        def native_body(agent: str, message: str) -> dict[str, Any]:
            return {"company_id": ids["company_id"], "agent_id": agent, "conversation_id": str(uuid.uuid4()),
                    "customer_id": "bench-" + uuid.uuid4().hex[:8], "message": message, "stream": True}

        def openai_body(model: str, message: str) -> dict[str, Any]:
            return {"model": model, "stream": True, "user": "bench-" + uuid.uuid4().hex[:8],
                    "messages": [{"role": "user", "content": message}]}

        async def native(message: str, agent: str) -> tuple[float, float]:
            return await _first_line(http, "/v1/chat", native_body(agent, message), '"event":"delta"')

        async def compatible(message: str, model: str) -> tuple[float, float]:
            return await _first_line(http, "/v1/chat/completions", openai_body(model, message), '"content":"')

        async def direct(message: str) -> float:
            started = time.perf_counter()
            first = None
            stream = await litellm.acompletion(model=MODEL, api_base=api_base, api_key="sk-x", max_retries=0,
                                               stream=True, messages=[{"role": "user", "content": message}])
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = (time.perf_counter() - started) * 1000
            if first is None:
                raise RuntimeError("the direct stream had no text")
            return first

        log(f"warming up with {args.warmup} requests per path")
        for message in messages[:args.warmup]:
            await direct(message)
            await native(message, ids["miss_agent"])
            await compatible(message, "bench-miss")
        log(f"cache misses: {args.requests} requests per path, interleaved")
        STEPS.clear()
        direct_ms: list[float] = []
        native_ms: list[float] = []
        compatible_ms: list[float] = []
        async def one_direct(message: str) -> None:
            direct_ms.append(await direct(message))

        async def one_native(message: str) -> None:
            native_ms.append((await native(message, ids["miss_agent"]))[0])

        async def one_compatible(message: str) -> None:
            compatible_ms.append((await compatible(message, "bench-miss"))[0])

        paths = [one_direct, one_native, one_compatible]
        for number, message in enumerate(messages[args.warmup:]):
            # Each path takes each place in the order in turn: none always follows an idle Cortex.
            for path in paths[number % 3:] + paths[:number % 3]:
                await path(message)

        miss_steps = {name: percentile([s[name] for s in STEPS], 50) for name in STEPS[0]} if STEPS else {}
        warm = await http.post("/v1/cache/warm", json={"company_id": ids["company_id"], "agent_id": ids["hit_agent"],
                                                       "pairs": [{"question": HIT_QUESTION, "answer": HIT_ANSWER}]})
        if warm.status_code != 200:
            raise RuntimeError(f"/v1/cache/warm answered {warm.status_code}: {warm.text}")
        log(f"cache hits: {args.requests} requests per path")
        for _ in range(args.warmup):
            await native(HIT_QUESTION, ids["hit_agent"])
        hit_native: list[float] = []
        hit_compatible: list[float] = []
        for _ in range(args.requests):
            hit_native.append((await native(HIT_QUESTION, ids["hit_agent"]))[1])
            hit_compatible.append((await compatible(HIT_QUESTION, "bench-hit"))[1])
        check = await http.post("/v1/chat", json={**native_body(ids["hit_agent"], HIT_QUESTION), "stream": False})
        if not check.json().get("cached"):
            raise RuntimeError("the cache-hit runs did not hit the cache")

    def summary(values: list[float]) -> dict[str, float]:
        return {"p50": percentile(values, 50), "p95": percentile(values, 95)}

    added_native = [c - d for c, d in zip(native_ms, direct_ms, strict=True)]
    added_compatible = [c - d for c, d in zip(compatible_ms, direct_ms, strict=True)]
    return {
        "benchmark": "streaming",
        "baseline": "litellm.acompletion(stream=True) straight to the scripted LLM server (same messages, same run)",
        "requests": args.requests, "token_delay_ms": args.token_delay_ms, "faqs": 50,
        "first_token_ms": {"direct_litellm": summary(direct_ms), "cortex_chat_stream": summary(native_ms),
                           "cortex_chat_completions_stream": summary(compatible_ms)},
        "added_first_token_ms": {"cortex_chat_stream": summary(added_native),
                                 "cortex_chat_completions_stream": summary(added_compatible)},
        "cortex_step_timings_p50_ms": miss_steps,
        "cache_hit_first_byte_ms": {"cortex_chat_stream": summary(hit_native),
                                    "cortex_chat_completions_stream": summary(hit_compatible)},
        "target": {
            "added_first_token_p50_ms_at_most": 15, "cache_hit_first_byte_p50_ms_below": 15,
            "met": (percentile(added_native, 50) <= 15 and percentile(added_compatible, 50) <= 15
                    and percentile(hit_native, 50) < 15 and percentile(hit_compatible, 50) < 15),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--token-delay-ms", type=float, default=20.0)
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
