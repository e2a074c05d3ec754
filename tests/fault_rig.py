"""Real processes for the fault tests: `cortex serve` over a standalone PostgreSQL and a private Redis,
both of which a test may stop and start, and the scripted model provider (in this process, on loopback)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cortex.auth import service as auth
from cortex.auth.schemas import ApiKeyCreate
from cortex.db.engine import Database
from cortex.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SCRIPTED_MODEL = "openai/scripted-model"
FALLBACK_MODEL = "openai/fallback-model"
METRICS_TOKEN = "faults-" + uuid.uuid4().hex


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A private redis-server (not the shared one on 6379, which other tests use), restartable on its port."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", "--dir", str(self.workdir)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


class CortexServer:
    """`cortex serve` in a process of its own, its output in a log file shown when a test fails."""

    def __init__(self, workdir: Path, env: dict[str, str], name: str = "cortex") -> None:
        self.port = free_port()
        self.env = env
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_seconds: float = 120) -> CortexServer:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "cortex.cli", "serve", "--port", str(self.port)],
                                        cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cortex serve exited: {self.log_tail()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"cortex serve did not come up: {self.log_tail()}")

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_seconds: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout_seconds)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def cortex_env(workdir: Path, database_url: str, redis_url: str, api_base: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT), "DATABASE_URL": database_url,
           "REDIS_URL": redis_url, "CORTEX_DATA_DIR": str(workdir / "home"), "CORTEX_LLM_API_BASE": api_base,
           "CORTEX_LLM_API_KEY": "sk-faults", "CORTEX_SECRET_KEY": "faults-secret-" + "x" * 40,
           "CORTEX_RATE_LIMIT_PER_MINUTE": "1000000", "CORTEX_MEMORY_EXTRACTION": "false",
           "CORTEX_PRELOAD_EMBEDDINGS": "false", "CORTEX_METRICS_TOKEN": METRICS_TOKEN,
           "CORTEX_LOG_FORMAT": "text", "CORTEX_LOG_LEVEL": "WARNING",
           "HF_HUB_OFFLINE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", **extra}
    for tier in ("SPEED", "NANO", "SONNET", "COMPLEX", "SEARCH"):
        env[f"CORTEX_MODEL_{tier}"] = SCRIPTED_MODEL
    return env


@dataclass
class Seeded:
    company_id: str
    key: str
    agents: dict[str, str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def chat_body(self, agent: str, message: str, conversation_id: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"company_id": self.company_id, "agent_id": self.agents[agent],
                "conversation_id": conversation_id or str(uuid.uuid4()), "customer_id": "customer-1",
                "message": message, **extra}


# No semantic cache, no memory, no FAQs: every chat reaches the model and nothing loads the embedding
# model (its first load takes longer than a client waits on a busy machine). Offline answers are asked
# in Arabic script, which the offline responder matches by words alone: "I don't know" in English.
OFFLINE_QUESTION = "أين طردي؟"
_QUIET = {"cache": {"enabled": False}, "memory_enabled": False, "pinned_tier": "nano"}
AGENTS: dict[str, dict[str, Any]] = {
    "plain": {"settings": _QUIET},
    "fallback": {"settings": {**_QUIET, "fallback_models": {"nano": FALLBACK_MODEL}}},
    "offline": {"settings": {**_QUIET, "offline_fallback": True}},
}


def seed(database_url: str) -> Seeded:
    async def run() -> Seeded:
        from cortex.agents import service as agents
        from cortex.agents.schemas import AgentCreate

        database = Database(Settings(database_url=database_url))
        try:
            async with database.session() as session:
                company = await auth.get_or_create_company(session, f"Faults {uuid.uuid4().hex[:6]}")
                key = await auth.create_api_key(session, company.id, ApiKeyCreate(name="faults", scopes=["*"]))
                made = {name: await agents.create_agent(session, company.id, AgentCreate.model_validate(
                    {"name": f"Faults {name}", **fields})) for name, fields in AGENTS.items()}
            return Seeded(str(company.id), key.key, {name: str(agent.id) for name, agent in made.items()})
        finally:
            await database.dispose()

    return asyncio.run(run())
