"""Tests run against a real PostgreSQL: the embedded one (default) or CORTEX_TEST_DATABASE_URL's server.

Each pytest session creates its own database on that server and migrates it with Alembic, so runs
never see each other's rows; inside a run, every test makes its own companies.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from cortex.app import build_runtime, close_runtime, create_app
from cortex.db.embedded import EmbeddedPostgres
from cortex.db.migrate import upgrade
from cortex.jobs.system import psycopg_conninfo
from cortex.kit.runtime import Runtime
from cortex.pipeline.post_actions import FOLLOW_UP_QUEUE
from cortex.settings import Settings
from tests.live_cortex import LiveCortex
from tests.scratch_db import run_sql
from tests.scripted_llm import ScriptedLLM, echo
from tests.support import Tenant, make_tenant
from tests.webhook_target import WebhookTarget

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("CORTEX_TEST_DATABASE_URL")
    if given:
        yield given
        return
    embedded = EmbeddedPostgres(tmp_path_factory.mktemp("cortex-data"))
    yield embedded.start()
    embedded.stop()


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> Iterator[str]:
    name = f"cortex_test_{uuid.uuid4().hex[:12]}"
    run_sql(pg_server_url, f'CREATE DATABASE "{name}"', autocommit=True)
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    run_sql(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', autocommit=True)


@pytest.fixture(scope="session")
def test_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("cortex-home")
    return Settings(
        database_url=database_url, redis_url=None, data_dir=data_dir, upload_dir=data_dir / "uploads",
        secret_key="test-secret-" + "x" * 40, allow_private_webhooks=True, preload_embeddings=False,
        rate_limit_per_minute=100_000,
        # Background fact extraction would take scripted replies meant for other tests' chats; the
        # memory tests turn it on for themselves.
        memory_extraction=False,
    )


@pytest.fixture(scope="session")
async def runtime(test_settings: Settings) -> AsyncIterator[Runtime]:
    built = await build_runtime(test_settings, migrate=False)
    yield built
    await close_runtime(built)


@pytest.fixture(scope="session")
def _jobs_connection(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(psycopg_conninfo(database_url), autocommit=True) as connection:
        yield connection


@pytest.fixture(autouse=True)
def _no_stale_follow_up_jobs(request: pytest.FixtureRequest) -> None:
    """A turn's follow-up jobs wait until a test runs them (`tests.support.run_jobs`); those an earlier
    test left would take scripted replies or webhook calls meant for this one.

    Synchronous, on a connection of its own: an async fixture would need an event loop, and the browser
    tests run Playwright's synchronous API, which holds one.
    """
    if "runtime" not in request.fixturenames:
        return
    connection: psycopg.Connection[Any] = request.getfixturevalue("_jobs_connection")
    connection.execute("DELETE FROM procrastinate_jobs WHERE queue_name = %s AND status = 'todo'", (FOLLOW_UP_QUEUE,))


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cortex.test") as http:
        yield http


@pytest.fixture
async def tenant(runtime: Runtime) -> Tenant:
    return await make_tenant(runtime)


@pytest.fixture
async def other_tenant(runtime: Runtime) -> Tenant:
    return await make_tenant(runtime)


# --- the scripted LLM server ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


# Every tier resolves to this model name when a test turns the scripted LLM on.
SCRIPTED_MODEL = "openai/scripted-model"


@pytest.fixture
def llm(runtime: Runtime, llm_server: ScriptedLLM) -> Iterator[ScriptedLLM]:
    """Points the runtime's gateway at the scripted server for one test, then restores the settings."""
    settings = runtime.settings
    saved = settings.model_dump()
    settings.llm_api_base = llm_server.api_base
    settings.llm_api_key = "sk-test"
    settings.llm_timeout_seconds = 5.0
    for tier in ("speed", "nano", "sonnet", "complex", "search"):
        setattr(settings, f"model_{tier}", SCRIPTED_MODEL)
    llm_server.script = echo
    llm_server.requests.clear()
    runtime.llm.breaker.reset()  # circuits opened by an earlier test's failures are not this test's
    try:
        yield llm_server
    finally:
        for name in ("llm_api_base", "llm_api_key", "llm_timeout_seconds", "model_speed", "model_nano",
                     "model_sonnet", "model_complex", "model_search"):
            setattr(settings, name, saved[name])


@pytest.fixture
def webhooks() -> Iterator[WebhookTarget]:
    target = WebhookTarget().start()
    yield target
    target.stop()


# --- Redis -------------------------------------------------------------------------------------------

def _redis_answers(url: str) -> bool:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except Exception:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL or 127.0.0.1:6379; else a redis-server we start; else skip (fail under CI=true)."""
    for candidate in (os.environ.get("REDIS_URL"), "redis://127.0.0.1:6379/0"):
        if candidate and _redis_answers(candidate):
            yield candidate
            return
    binary = shutil.which("redis-server")
    if binary:
        port = _free_port()
        workdir = tempfile.mkdtemp(prefix="cortex-redis-")
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", workdir],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _redis_answers(url):
            time.sleep(0.1)
        try:
            yield url
        finally:
            proc.terminate()
            proc.wait(5)
            shutil.rmtree(workdir, ignore_errors=True)
        return
    if os.environ.get("CI") == "true":
        pytest.fail("Redis is required under CI=true: set REDIS_URL or install redis-server")
    print("\n" + "!" * 70 + "\n!! NO REDIS AVAILABLE: Redis tests are SKIPPED\n" + "!" * 70)
    pytest.skip("no Redis server available (set REDIS_URL or install redis-server)")


# --- a real Cortex server for real HTTP clients (openai, litellm, httpx-sse) -------------------------

@pytest.fixture(scope="session")
def live_llm() -> Iterator[ScriptedLLM]:
    """The live server's own scripted model (the `llm` fixture's server belongs to the in-process runtime)."""
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_cortex(test_settings: Settings, live_llm: ScriptedLLM) -> Iterator[LiveCortex]:
    models = {f"model_{tier}": SCRIPTED_MODEL for tier in ("speed", "nano", "sonnet", "complex", "search")}
    # No worker of its own: it would take the in-process runtime's jobs too (one database); `settle` runs them.
    settings = test_settings.model_copy(update={
        "jobs_in_serve": False, "llm_api_base": live_llm.api_base, "llm_api_key": "sk-test",
        "llm_timeout_seconds": 5.0, **models})
    server = LiveCortex(settings).start()
    yield server
    server.stop()


@pytest.fixture
def live(live_cortex: LiveCortex, live_llm: ScriptedLLM) -> LiveCortex:
    """The live server with its scripted model reset to echo, without delays."""
    live_llm.script = echo
    live_llm.token_delay_seconds = 0.0
    live_llm.requests.clear()
    live_cortex.runtime.llm.breaker.reset()
    return live_cortex
