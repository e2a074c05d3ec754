"""What Cortex adds on top of a bare model call: the same requests (a) through `POST /v1/chat` and
(b) straight to the scripted LLM server through LiteLLM, in one run. Prints one JSON object.

Setup: a real `cortex serve` process on an embedded PostgreSQL (or DATABASE_URL), the scripted
OpenAI-compatible server in its own process, an agent with 50 FAQs, BANKING77 test questions as the
customer messages (each sent once per path, the two paths interleaved so drift hits both alike). The
semantic cache is turned off for the agent, or every repeat would be a hit and skip the model.

    python bench/pipeline_overhead.py [--requests 200] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import statistics
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
from cortex.auth import service as auth  # noqa: E402
from cortex.auth.schemas import ApiKeyCreate  # noqa: E402
from cortex.db.engine import Database  # noqa: E402
from cortex.settings import Settings  # noqa: E402

MODEL = "openai/scripted-model"
DATASET = ROOT.parent / "shared" / "datasets" / "banking77"




def questions(limit: int) -> list[str]:
    path = DATASET / "test.csv"
    if path.exists():
        with path.open() as handle:
            rows = [row["text"] for row in csv.DictReader(handle)]
        return rows[:limit] if len(rows) >= limit else (rows * (limit // len(rows) + 1))[:limit]
    return [f"Question number {i}: how do I reset my card PIN?" for i in range(limit)]


def faqs() -> list[dict[str, str]]:
    topics = ["card delivery", "PIN reset", "top-up limits", "exchange rates", "refunds", "disputed charges",
              "account verification", "closing an account", "virtual cards", "ATM fees"]
    return [{"question": f"How does {topics[i % 10]} work, case {i}?",
             "answer": f"For {topics[i % 10]} (case {i}), open the app, choose Help, and follow the steps; "
                       "our team answers within one business day."} for i in range(50)]


async def seed(database_url: str) -> tuple[str, str, str]:
    settings = Settings(database_url=database_url)
    database = Database(settings)
    database.resolve_url()
    database.connect()
    from cortex.agents import service as agents
    from cortex.agents.schemas import AgentCreate

    async with database.session() as session:
        company = await auth.get_or_create_company(session, f"Bench {uuid.uuid4().hex[:6]}")
        key = await auth.create_api_key(session, company.id, ApiKeyCreate(name="bench", scopes=["*"]))
        agent = await agents.create_agent(session, company.id, AgentCreate.model_validate({
            "name": "Bench agent", "system_prompt": "You are the support agent of {{ agent_name }}.",
            "faqs": faqs(), "settings": {"cache": {"enabled": False}},
        }))
        ids = (str(company.id), str(agent.id), key.key)
    await database.dispose()
    return ids





def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="cortex-bench-"))
    database_url, embedded = open_database(workdir)
    company_id, agent_id, api_key = asyncio.run(seed(database_url))

    llm_port, cortex_port = _free_port(), _free_port()
    api_base = f"http://127.0.0.1:{llm_port}/v1"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT), "DATABASE_URL": database_url,
           "CORTEX_DATA_DIR": str(workdir / "home"), "CORTEX_LLM_API_BASE": api_base, "CORTEX_LLM_API_KEY": "sk-x",
           "CORTEX_RATE_LIMIT_PER_MINUTE": "1000000", "HF_HUB_OFFLINE": "1",
           # Fact extraction is a second model call after each reply, off the response path; the baseline
           # makes no such call, so on two cores it would only add load to what is measured here.
           "CORTEX_MEMORY_EXTRACTION": "true" if args.with_extraction else "false"}
    for tier in ("SPEED", "NANO", "SONNET", "COMPLEX", "SEARCH"):
        env[f"CORTEX_MODEL_{tier}"] = MODEL
    processes = [
        subprocess.Popen([sys.executable, "-m", "tests.scripted_llm", "--port", str(llm_port)], cwd=ROOT, env=env),
        subprocess.Popen([sys.executable, "-m", "cortex.cli", "serve", "--port", str(cortex_port)], cwd=ROOT,
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_for(f"http://127.0.0.1:{llm_port}/v1/models")
        wait_for(f"http://127.0.0.1:{cortex_port}/health")
        return asyncio.run(measure(args, f"http://127.0.0.1:{cortex_port}", api_base, company_id, agent_id,
                                   api_key))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
        if embedded is not None:
            embedded.stop()


async def measure(args: argparse.Namespace, cortex: str, api_base: str, company_id: str, agent_id: str,
                  api_key: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"}
    messages = questions(args.requests + args.warmup)
    steps: list[dict[str, float]] = []

    async with httpx.AsyncClient(base_url=cortex, headers=headers, timeout=60) as http:
        async def via_cortex(message: str) -> float:
            started = time.perf_counter()
            response = await http.post("/v1/chat", json={
                "company_id": company_id, "agent_id": agent_id, "conversation_id": str(uuid.uuid4()),
                "customer_id": "bench-" + uuid.uuid4().hex[:8], "message": message})
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"/v1/chat answered {response.status_code}: {response.text}")
            steps.append(response.json()["step_timings"])
            return elapsed

        async def direct(message: str) -> float:
            started = time.perf_counter()
            await litellm.acompletion(model=MODEL, api_base=api_base, api_key="sk-x", max_retries=0,
                                      messages=[{"role": "user", "content": message}])
            return (time.perf_counter() - started) * 1000

        log(f"warming up with {args.warmup} requests per path")
        for message in messages[:args.warmup]:
            await via_cortex(message)
            await direct(message)
        steps.clear()
        log(f"sequential: {args.requests} requests per path, interleaved")
        cortex_ms: list[float] = []
        direct_ms: list[float] = []
        for message in messages[args.warmup:]:
            cortex_ms.append(await via_cortex(message))
            direct_ms.append(await direct(message))

        async def throughput(call: Any) -> float:
            queue = list(messages[args.warmup:])

            async def worker() -> None:
                while queue:
                    await call(queue.pop())

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            return round(args.requests / (time.perf_counter() - started), 1)

        log(f"throughput with {args.concurrency} concurrent clients")
        cortex_rps = await throughput(via_cortex)
        direct_rps = await throughput(direct)

    added = [c - d for c, d in zip(cortex_ms, direct_ms, strict=True)]
    step_p50 = {name: percentile([s[name] for s in steps], 50) for name in steps[0]} if steps else {}
    return {
        "benchmark": "pipeline_overhead",
        "baseline": "litellm.acompletion straight to the scripted LLM server (same messages, same run)",
        "requests": args.requests, "faqs": 50, "concurrency": args.concurrency,
        "memory_extraction": args.with_extraction,
        "cortex_chat_ms": {"p50": percentile(cortex_ms, 50), "p95": percentile(cortex_ms, 95)},
        "direct_litellm_ms": {"p50": percentile(direct_ms, 50), "p95": percentile(direct_ms, 95)},
        "added_ms": {"p50": percentile(added, 50), "p95": percentile(added, 95),
                     "mean": round(statistics.fmean(added), 3)},
        "requests_per_second": {"cortex_chat": cortex_rps, "direct_litellm": direct_rps},
        "cortex_step_timings_p50_ms": step_p50,
        "target": {"added_p50_ms_below": 15, "met": percentile(added, 50) < 15},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--with-extraction", action="store_true",
                        help="keep automatic memory extraction on (a second model call per chat, in the background)")
    result = run(parser.parse_args())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
