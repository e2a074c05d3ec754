"""Faults survived, with real processes: `cortex serve` over a standalone PostgreSQL 18 (the embedded
wheel's, on a TCP port) and a private Redis, the scripted provider on loopback. Each test ends by
counting what was stored.

The tests share one server process and run in this file's order; the last one stops it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cortex.db.admin import create_database
from cortex.llm.offline import DONT_KNOW
from tests.fault_rig import (
    METRICS_TOKEN,
    OFFLINE_QUESTION,
    CortexServer,
    RedisServer,
    Seeded,
    cortex_env,
    seed,
)
from tests.scratch_db import run_sql
from tests.scripted_llm import Reply, ScriptedLLM, echo
from tests.standalone_pg import StandalonePostgres

CLIENT_TIMEOUT = 10.0


@dataclass
class Rig:
    pg: StandalonePostgres
    redis: RedisServer
    llm: ScriptedLLM
    database_url: str
    cortex: CortexServer
    seeded: Seeded


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp("faults")
    pg = StandalonePostgres(workdir).init()
    pg.start()
    redis = RedisServer(workdir)
    redis.start()
    llm = ScriptedLLM().start()
    cortex: CortexServer | None = None
    try:
        database_url = asyncio.run(create_database(pg.url, "cortex_faults"))
        env = cortex_env(workdir, database_url, redis.url, llm.api_base, CORTEX_LLM_TIMEOUT_SECONDS="1.5",
                         CORTEX_LLM_BREAKER_FAILURES="3", CORTEX_LLM_BREAKER_COOLDOWN_SECONDS="2",
                         CORTEX_SHUTDOWN_GRACE_SECONDS="10")
        cortex = CortexServer(workdir, env).start()  # migrates the fresh database
        yield Rig(pg, redis, llm, database_url, cortex, seed(database_url))
    finally:
        if cortex is not None:
            cortex.stop()
            print(cortex.log_tail())
        llm.stop()
        redis.stop()
        if pg.running():
            pg.stop()


@pytest.fixture
def server(rig: Rig) -> Rig:
    rig.llm.script = echo
    rig.llm.token_delay_seconds = 0.0
    rig.llm.requests.clear()
    if not rig.pg.running():
        rig.pg.start()
    return rig


def stored(rig: Rig, conversation_ids: list[str]) -> dict[str, list[tuple[str, str, str]]]:
    """(role, status, content) of each conversation's messages, in order."""
    rows = run_sql(rig.database_url, "SELECT conversation_id::text, role, status, content FROM messages "
                   "WHERE company_id = CAST(:company AS uuid) AND conversation_id::text = ANY(:ids) "
                   "ORDER BY created_at, role DESC", {"company": rig.seeded.company_id, "ids": conversation_ids})
    found: dict[str, list[tuple[str, str, str]]] = {cid: [] for cid in conversation_ids}
    for conversation_id, role, status, content in rows:
        found[conversation_id].append((role, status, content))
    return found


def pending_count(rig: Rig) -> int:
    return int(run_sql(rig.database_url, "SELECT count(*) FROM messages WHERE status = 'pending' "
                       "AND company_id = CAST(:company AS uuid)", {"company": rig.seeded.company_id})[0][0])


def post_chat(rig: Rig, agent: str, message: str, **extra: Any) -> httpx.Response:
    body = rig.seeded.chat_body(agent, message, **extra)
    return httpx.post(rig.cortex.base_url + "/v1/chat", json=body, headers=rig.seeded.headers,
                      timeout=CLIENT_TIMEOUT)


def health(rig: Rig) -> dict[str, Any]:
    response = httpx.get(rig.cortex.base_url + "/health/detailed", timeout=CLIENT_TIMEOUT,
                         headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    checks: dict[str, Any] = response.json()["checks"]
    return checks


# --- the provider -----------------------------------------------------------------------------------

def test_malformed_and_empty_provider_answers(server: Rig) -> None:
    server.llm.queue(Reply(raw={"id": "x", "object": "chat.completion", "choices": []}))
    malformed = post_chat(server, "plain", "Where is my parcel?")
    assert malformed.status_code == 502, malformed.text
    server.llm.queue(Reply(text=""), Reply(text="Your parcel is in Dubai."))
    fallback = post_chat(server, "fallback", "Where is my parcel?")
    assert fallback.status_code == 200, fallback.text
    assert (fallback.json()["reply"], fallback.json()["model_used"]) == ("Your parcel is in Dubai.",
                                                                         "openai/fallback-model")
    server.llm.queue(Reply(text=""), Reply(text=" "))
    offline = post_chat(server, "fallback", OFFLINE_QUESTION)
    assert offline.status_code == 200 and offline.json()["reply"] == DONT_KNOW["en"]
    ids = [json.loads(r.request.content)["conversation_id"] for r in (malformed, fallback, offline)]
    found = stored(server, ids)
    assert [(role, status) for role, status, _ in found[ids[0]]] == [("customer", "failed")]
    for conversation in ids[1:]:
        assert [(role, status) for role, status, _ in found[conversation]] == [("customer", "ok"),
                                                                               ("assistant", "ok")]
        assert all(content.strip() for _, _, content in found[conversation])


def test_a_hanging_provider_opens_the_breaker_and_a_probe_closes_it(server: Rig) -> None:
    hanging = {"scripted-model": True}

    def script(body: dict[str, Any]) -> Reply:
        reply = echo(body)
        reply.delay_seconds = 5.0 if hanging.get(body["model"]) else 0.0
        return reply

    server.llm.script = script
    timed = [post_chat(server, "plain", f"hello {n}") for n in range(3)]  # each waits out the 1.5 s timeout
    assert [r.status_code for r in timed] == [504, 504, 504]
    started = time.monotonic()
    fast = post_chat(server, "plain", "hello again")
    assert fast.status_code == 503 and int(fast.headers["Retry-After"]) >= 1
    assert time.monotonic() - started < 1.0  # failed fast: no call to the hanging model
    rescued = post_chat(server, "fallback", "Where is my parcel?")  # straight to the fallback model
    assert rescued.status_code == 200 and rescued.json()["model_used"] == "openai/fallback-model"
    offline = post_chat(server, "offline", OFFLINE_QUESTION)  # or the offline answer where enabled
    assert offline.status_code == 200 and offline.json()["model_used"] == "offline"
    hanging.clear()
    time.sleep(2.2)  # the cooldown: the next call is the probe
    healed = post_chat(server, "plain", "are you back?")
    assert healed.status_code == 200 and healed.json()["model_used"] == "openai/scripted-model"
    assert post_chat(server, "plain", "and still?").status_code == 200
    ids = [json.loads(r.request.content)["conversation_id"] for r in (*timed, fast, rescued, healed)]
    found = stored(server, ids)
    assert [found[i][0][1] for i in ids] == ["failed"] * 4 + ["ok"] * 2  # the customer's message, each
    assert pending_count(server) == 0


# --- Redis ------------------------------------------------------------------------------------------

def test_redis_stopped_and_started(server: Rig) -> None:
    statuses: Counter[int] = Counter()
    ids: list[str] = []

    def one(n: int) -> None:
        response = post_chat(server, "plain", f"redis {n}")
        statuses[response.status_code] += 1
        if response.status_code == 200:
            ids.append(json.loads(response.request.content)["conversation_id"])

    for n in range(5):
        one(n)
    server.redis.stop()
    for n in range(5, 15):
        one(n)
    assert health(server)["redis"].startswith("error")
    server.redis.start()  # empty: counters and cached keys are gone, and come back from PostgreSQL
    for n in range(15, 20):
        one(n)
    assert health(server)["redis"] == "ok"
    assert statuses == Counter({200: 20})
    found = stored(server, ids)
    assert all([(r, s) for r, s, _ in found[i]] == [("customer", "ok"), ("assistant", "ok")] for i in ids)


# --- PostgreSQL -------------------------------------------------------------------------------------

async def _chat_load(rig: Rig, seconds: float, clients: int, pause: float, log: list[dict[str, Any]]) -> None:
    """`clients` keep-alive connections, each sending a chat, then pausing, for `seconds`."""
    deadline = time.monotonic() + seconds

    async def client(number: int) -> None:
        async with httpx.AsyncClient(base_url=rig.cortex.base_url, timeout=CLIENT_TIMEOUT,
                                     headers=rig.seeded.headers) as http:
            n = 0
            while time.monotonic() < deadline:
                body = rig.seeded.chat_body("plain", f"outage {number}-{n}")
                started = time.monotonic()
                entry: dict[str, Any] = {"conversation_id": body["conversation_id"]}
                try:
                    response = await http.post("/v1/chat", json=body)
                    entry.update(status=response.status_code, retry_after=response.headers.get("Retry-After"),
                                 reply=response.json().get("reply") if response.status_code == 200 else None)
                except httpx.HTTPError as exc:
                    entry.update(status=None, error=type(exc).__name__)
                entry["seconds"] = time.monotonic() - started
                log.append(entry)
                n += 1
                await asyncio.sleep(pause)

    await asyncio.gather(*(client(i) for i in range(clients)))


def test_postgres_stopped_and_started_under_load(server: Rig) -> None:
    log: list[dict[str, Any]] = []

    async def scenario() -> dict[str, str]:
        load = asyncio.create_task(_chat_load(server, seconds=18, clients=4, pause=0.3, log=log))
        await asyncio.sleep(3)
        # A smart shutdown first: pooled sessions go on, new connections are refused.
        await asyncio.to_thread(server.pg.begin_smart_shutdown)
        await asyncio.sleep(0.5)
        during_smart = await asyncio.to_thread(health, server)
        await asyncio.to_thread(server.pg.stop, "fast")
        await asyncio.sleep(8)
        await asyncio.to_thread(server.pg.start)
        await load
        return during_smart

    during_smart = asyncio.run(scenario())
    assert during_smart["postgres"].startswith("error"), during_smart
    outcomes = Counter(entry["status"] for entry in log)
    assert set(outcomes) <= {200, 503}, outcomes  # never a 500, never a dropped connection (None)
    assert outcomes[503] > 0 and outcomes[200] > 0, outcomes
    assert all(entry["retry_after"] for entry in log if entry["status"] == 503)
    assert max(entry["seconds"] for entry in log) < CLIENT_TIMEOUT
    tail = log[-8:]  # the last requests came after the restart: the pool recovered without one
    assert all(entry["status"] == 200 for entry in tail), tail
    answered = [e["conversation_id"] for e in log if e["status"] == 200]
    # Marks that failed during the outage are written within seconds of the restart.
    deadline = time.monotonic() + 15
    while pending_count(server) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert pending_count(server) == 0
    found = stored(server, [e["conversation_id"] for e in log])
    for entry in log:
        rows = [(role, status) for role, status, _ in found[entry["conversation_id"]]]
        if entry["status"] == 200:  # every 200 has its question and its reply stored
            assert rows == [("customer", "ok"), ("assistant", "ok")], entry
        else:  # a 503 left nothing, or its question marked failed
            assert rows in ([], [("customer", "failed")]), entry
    assert len(answered) == len(set(answered))
    assert health(server)["postgres"] == "ok"


# --- SIGTERM (last: it stops the server) -----------------------------------------------------------

def test_sigterm_lets_requests_in_flight_finish(server: Rig) -> None:
    def script(body: dict[str, Any]) -> Reply:
        reply = echo(body)
        if not body.get("stream"):
            reply.delay_seconds = 1.2  # under the 1.5 s model timeout
        return reply

    server.llm.script = script
    server.llm.token_delay_seconds = 0.15
    base, headers = server.cortex.base_url, server.seeded.headers

    async def scenario() -> tuple[httpx.Response, list[str], float, int]:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=CLIENT_TIMEOUT) as http:
            slow = asyncio.create_task(http.post("/v1/chat", json=server.seeded.chat_body("plain", "slow one")))

            async def streamed() -> list[str]:
                body = server.seeded.chat_body("plain", "one two three four five six seven eight nine ten",
                                               stream=True)
                async with http.stream("POST", "/v1/chat", json=body) as response:
                    assert response.status_code == 200
                    return [line async for line in response.aiter_lines() if line.startswith("data: ")]

            stream = asyncio.create_task(streamed())
            await asyncio.sleep(0.7)
            signalled = time.monotonic()
            server.cortex.terminate()
            response, lines = await slow, await stream
            code = await asyncio.to_thread(server.cortex.wait, 30)
            return response, lines, time.monotonic() - signalled, code

    response, lines, exit_seconds, code = asyncio.run(scenario())
    assert response.status_code == 200 and response.json()["reply"] == "echo: slow one"
    events = [json.loads(line[6:]) for line in lines]
    assert events[-1]["event"] == "done", events[-3:]
    assert "".join(e.get("text", "") for e in events if e.get("event") == "delta").startswith("echo: one two")
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete: -15 is its clean exit (systemd
    # counts it as one too); the requests above are what shows that the shutdown was graceful.
    assert code in (0, -15) and exit_seconds < 20
    with pytest.raises(httpx.ConnectError):
        httpx.get(base + "/health", timeout=2)
    ids = [json.loads(response.request.content)["conversation_id"]]
    found = stored(server, ids)
    assert [(r, s) for r, s, _ in found[ids[0]]] == [("customer", "ok"), ("assistant", "ok")]
    assert pending_count(server) == 0
    # No job is left claimed by the stopped worker: each finished or went back to the queue.
    assert run_sql(server.database_url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'") == [(0,)]
