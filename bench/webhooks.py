"""Outgoing webhooks under load: deliveries per second, event-to-delivery latency, and what delivery running
beside the chat pipeline does to `POST /v1/chat`, against the same run without webhooks. Prints one JSON object.

Setup: a real `cortex serve` process (its job worker inside, as deployed by default) on an embedded
PostgreSQL (or DATABASE_URL), the scripted OpenAI-compatible server and a loopback webhook receiver in
processes of their own. A "load" company has 4 endpoints on the receiver, each subscribed to one event
type; the benchmark writes its events through the real outbox (`cortex.events.outbox.record`, which
queues the deliveries in the event's own transaction), round-robin over the 4 types, so N events are N
deliveries. Latency is the receiver's clock at arrival minus the event's `created_at` (one machine).

Phases, in this order:
1. chat alone (baseline A): sequential chats of a second company, no webhook anywhere.
2. paced: N events at --rate events/s (each one delivery) while the same sequential chats run, and the
   chat company has a "*" endpoint of its own, so every turn also queues its deliveries: latency
   p50/p95 under that load, and chat latency with delivery beside it.
3. chat alone again (baseline B): both baselines together are the "without webhooks" figure.
4. burst: N events written as fast as one client can, delivered as fast as the worker can: deliveries/s.

    python bench/webhooks.py [--events 10000] [--rate 300] [--chats 300]
"""

from __future__ import annotations

import argparse
import asyncio
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

from tests.scripted_llm import _free_port  # noqa: E402

from bench.common import log, open_database, percentile, wait_for  # noqa: E402
from cortex.auth import service as auth  # noqa: E402
from cortex.auth.schemas import ApiKeyCreate  # noqa: E402
from cortex.db.engine import Database  # noqa: E402
from cortex.settings import Settings  # noqa: E402

MODEL = "openai/scripted-model"
LOAD_TYPES = ("cache.flushed", "knowledge.document.ready", "memory.fact.created", "customer.forgotten")
ENDPOINTS = len(LOAD_TYPES)


# --- the receiver (its own process: `python bench/webhooks.py --receiver PORT`) -------------------------


def serve_receiver(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    received: list[tuple[str, str, float]] = []

    async def hook(request: Request) -> Response:
        await request.body()
        received.append((request.headers.get("webhook-id", ""), request.url.path, time.time()))
        return Response(status_code=204)

    async def count(request: Request) -> Response:
        return JSONResponse({"count": len(received)})

    async def calls(request: Request) -> Response:
        return JSONResponse(received)

    async def reset(request: Request) -> Response:
        received.clear()
        return JSONResponse({"count": 0})

    app = Starlette(routes=[Route("/hooks/{name}", hook, methods=["POST"]), Route("/count", count),
                            Route("/calls", calls), Route("/reset", reset, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False)


# --- setup --------------------------------------------------------------------------------------


async def seed(database_url: str) -> dict[str, str]:
    from cortex.agents import service as agents
    from cortex.agents.schemas import AgentCreate

    database = Database(Settings(database_url=database_url))
    database.resolve_url()
    database.connect()
    async with database.session() as session:
        load = await auth.get_or_create_company(session, f"Load {uuid.uuid4().hex[:6]}")
        load_key = await auth.create_api_key(session, load.id, ApiKeyCreate(name="bench", scopes=["*"]))
        chat = await auth.get_or_create_company(session, f"Chat {uuid.uuid4().hex[:6]}")
        chat_key = await auth.create_api_key(session, chat.id, ApiKeyCreate(name="bench", scopes=["*"]))
        agent = await agents.create_agent(session, chat.id, AgentCreate.model_validate({
            "name": "Bench agent", "system_prompt": "You are the support agent of {{ agent_name }}.",
            "settings": {"cache": {"enabled": False}}}))
        ids = {"load_company": str(load.id), "load_key": load_key.key, "chat_company": str(chat.id),
               "chat_key": chat_key.key, "agent": str(agent.id)}
    await database.dispose()
    return ids


async def create_endpoints(cortex: str, receiver: str, ids: dict[str, str]) -> str:
    """The load company's 4 endpoints (one type each) and the chat company's "*" one (disabled for now)."""
    async with httpx.AsyncClient(base_url=cortex, timeout=30) as http:
        for n, type in enumerate(LOAD_TYPES):
            response = await http.post("/v1/webhooks", headers={"Authorization": f"Bearer {ids['load_key']}"},
                                       json={"url": f"{receiver}/hooks/load-{n}", "event_types": [type]})
            response.raise_for_status()
        response = await http.post("/v1/webhooks", headers={"Authorization": f"Bearer {ids['chat_key']}"},
                                   json={"url": f"{receiver}/hooks/chat", "event_types": ["*"], "enabled": False})
        response.raise_for_status()
        chat_hook: str = response.json()["id"]
        return chat_hook


# --- measuring ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, args: argparse.Namespace, cortex: str, receiver: str, database_url: str,
                 ids: dict[str, str], chat_hook: str, server_pid: int) -> None:
        self.args, self.cortex, self.receiver, self.ids, self.chat_hook = args, cortex, receiver, ids, chat_hook
        self.server_pid = server_pid
        self.database = Database(Settings(database_url=database_url))
        self.database.resolve_url()
        self.database.connect()

    async def write_events(self, count: int, per_transaction: int) -> list[uuid.UUID]:
        from cortex.events import outbox

        company = uuid.UUID(self.ids["load_company"])
        ids: list[uuid.UUID] = []
        async with self.database.session() as session:
            for i in range(count):
                ids.append(await outbox.record(session, company, LOAD_TYPES[(len(ids)) % ENDPOINTS],
                                               {"n": i}))
                if (i + 1) % per_transaction == 0 and i + 1 < count:
                    await session.commit()
        return ids

    async def paced_events(self, count: int, rate: float) -> list[uuid.UUID]:
        """`count` events at `rate` per second, a few per transaction every 20 ms."""
        tick = 0.02
        written: list[uuid.UUID] = []
        started = time.perf_counter()
        while len(written) < count:
            due = min(count, int((time.perf_counter() - started) * rate) + 1)
            if due > len(written):
                written += await self.write_events(due - len(written), per_transaction=1_000)
            await asyncio.sleep(tick)
        return written

    async def received(self, http: httpx.AsyncClient) -> int:
        count: int = (await http.get(f"{self.receiver}/count")).json()["count"]
        return count

    async def wait_received(self, http: httpx.AsyncClient, expected: int, within: float = 600) -> None:
        deadline = time.monotonic() + within
        while await self.received(http) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {await self.received(http)} of {expected} deliveries arrived")
            await asyncio.sleep(0.05)

    async def chats(self, http: httpx.AsyncClient, count: int) -> list[float]:
        headers = {"Authorization": f"Bearer {self.ids['chat_key']}"}
        timings: list[float] = []
        for i in range(count):
            started = time.perf_counter()
            response = await http.post(f"{self.cortex}/v1/chat", headers=headers, json={
                "company_id": self.ids["chat_company"], "agent_id": self.ids["agent"],
                "conversation_id": str(uuid.uuid4()), "customer_id": f"bench-{i}",
                "message": f"How do I reset my card PIN, case {i}?"})
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"/v1/chat answered {response.status_code}: {response.text}")
        return timings

    async def set_chat_hook(self, http: httpx.AsyncClient, enabled: bool) -> None:
        response = await http.patch(f"{self.cortex}/v1/webhooks/{self.chat_hook}", json={"enabled": enabled},
                                    headers={"Authorization": f"Bearer {self.ids['chat_key']}"})
        response.raise_for_status()

    async def latencies(self, http: httpx.AsyncClient, event_ids: list[uuid.UUID]) -> dict[str, Any]:
        from sqlalchemy import select

        from cortex.events.models import Event

        calls = (await http.get(f"{self.receiver}/calls")).json()
        async with self.database.session() as session:
            created = dict((await session.execute(select(Event.id, Event.created_at)
                                                  .where(Event.id.in_(event_ids)))).all())
        arrivals: dict[str, list[float]] = {}
        for webhook_id, _path, at in calls:
            arrivals.setdefault(webhook_id, []).append(at)
        wanted = {str(i) for i in event_ids}
        ms = [(min(arrivals[str(i)]) - created[i].timestamp()) * 1000 for i in event_ids if str(i) in arrivals]
        return {"delivered": len(ms), "duplicates": sum(len(v) - 1 for k, v in arrivals.items() if k in wanted),
                "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "max_ms": round(max(ms), 3)}

    async def run(self) -> dict[str, Any]:
        args = self.args
        async with httpx.AsyncClient(timeout=60) as http:
            log("warming up")
            await self.chats(http, 30)
            await self.write_events(200, per_transaction=50)
            await self.wait_received(http, 200)
            await http.post(f"{self.receiver}/reset")

            log(f"baseline A: {args.chats} chats, no webhooks")
            baseline = await self.chats(http, args.chats)

            log(f"paced: {args.events} events at {args.rate}/s with {args.chats}+ chats beside")
            await self.set_chat_hook(http, True)
            events_task = asyncio.create_task(self.paced_events(args.events, args.rate))
            loaded: list[float] = []
            while not events_task.done() or len(loaded) < args.chats:
                loaded += await self.chats(http, 10)
            paced_ids = await events_task
            # Each chat turn queues 3 events (conversation.created, message.received, message.replied).
            await self.wait_received(http, args.events + 3 * len(loaded))
            await self.set_chat_hook(http, False)
            paced = await self.latencies(http, paced_ids)
            await http.post(f"{self.receiver}/reset")

            log(f"baseline B: {args.chats} chats, no webhooks")
            baseline += await self.chats(http, args.chats)

            log(f"burst: {args.events} events written at once")
            started, cpu_before = time.perf_counter(), cpu_seconds(self.server_pid)
            burst_ids = await self.write_events(args.events, per_transaction=500)
            written = time.perf_counter() - started
            await self.wait_received(http, args.events)
            elapsed = time.perf_counter() - started
            server_cpu = cpu_seconds(self.server_pid) - cpu_before
            burst = await self.latencies(http, burst_ids)
        await self.database.dispose()

        rate = round(args.events / elapsed, 1)
        chat_without = {"p50": percentile(baseline, 50), "p95": percentile(baseline, 95),
                        "mean": round(statistics.fmean(baseline), 3)}
        chat_with = {"p50": percentile(loaded, 50), "p95": percentile(loaded, 95),
                     "mean": round(statistics.fmean(loaded), 3)}
        return {
            "benchmark": "webhooks",
            "baseline": "the same sequential /v1/chat requests in the same run with no webhook and no delivery "
                        "running (before and after the paced phase)",
            "events": args.events, "endpoints": ENDPOINTS, "jobs_concurrency": args.concurrency,
            "deliveries_per_second": rate,
            "burst": {"events_written_seconds": round(written, 3), "all_delivered_seconds": round(elapsed, 3),
                      "server_cpu_ms_per_delivery": round(server_cpu * 1000 / args.events, 3), **burst},
            "load_average_1m_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
            "paced": {"events_per_second": args.rate, "event_to_delivery": paced,
                      "chat_turns_beside": len(loaded)},
            "chat_ms": {"without_webhooks": chat_without, "with_delivery_beside": chat_with,
                        "p50_change_ms": round(chat_with["p50"] - chat_without["p50"], 3)},
            "targets": {"deliveries_per_second_at_least": 300, "p95_event_to_delivery_ms_below": 1000,
                        "met": rate >= 300 and paced["p95_ms"] < 1000
                        and paced["duplicates"] == 0 and burst["duplicates"] == 0},
        }


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="cortex-bench-"))
    database_url, embedded = open_database(workdir)
    ids = asyncio.run(seed(database_url))
    llm_port, cortex_port, receiver_port = _free_port(), _free_port(), _free_port()
    api_base = f"http://127.0.0.1:{llm_port}/v1"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT), "DATABASE_URL": database_url,
           "CORTEX_DATA_DIR": str(workdir / "home"), "CORTEX_LLM_API_BASE": api_base, "CORTEX_LLM_API_KEY": "sk-x",
           "CORTEX_RATE_LIMIT_PER_MINUTE": "1000000", "HF_HUB_OFFLINE": "1", "CORTEX_MEMORY_EXTRACTION": "false",
           "CORTEX_ALLOW_PRIVATE_WEBHOOKS": "true", "CORTEX_JOBS_CONCURRENCY": str(args.concurrency)}
    for tier in ("SPEED", "NANO", "SONNET", "COMPLEX", "SEARCH"):
        env[f"CORTEX_MODEL_{tier}"] = MODEL
    processes = [
        subprocess.Popen([sys.executable, "-m", "tests.scripted_llm", "--port", str(llm_port)], cwd=ROOT, env=env),
        subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--receiver", str(receiver_port)],
                         cwd=ROOT, env=env),
        subprocess.Popen([sys.executable, "-m", "cortex.cli", "serve", "--port", str(cortex_port)], cwd=ROOT,
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    cortex, receiver = f"http://127.0.0.1:{cortex_port}", f"http://127.0.0.1:{receiver_port}"
    try:
        wait_for(f"http://127.0.0.1:{llm_port}/v1/models")
        wait_for(f"{receiver}/count")
        wait_for(f"{cortex}/health")

        async def measure() -> dict[str, Any]:
            chat_hook = await create_endpoints(cortex, receiver, ids)
            return await Bench(args, cortex, receiver, database_url, ids, chat_hook, processes[2].pid).run()

        return asyncio.run(measure())
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        if embedded is not None:
            embedded.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=300.0, help="events (= deliveries) per second when paced")
    parser.add_argument("--chats", type=int, default=300, help="chats per baseline block")
    parser.add_argument("--concurrency", type=int, default=10, help="CORTEX_JOBS_CONCURRENCY of the server")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        serve_receiver(args.receiver)
        return
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
