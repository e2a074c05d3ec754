"""`cortex serve` as a real child process on the tests' PostgreSQL server (a TCP port) and Redis, with its
job worker inside, for tests that kill it or run two of them on one database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cortex.settings import Settings
from tests.scripted_llm import _free_port

ROOT = Path(__file__).resolve().parents[1]
MODEL = "openai/scripted-model"

# Quick job timings: a dead worker's jobs are handed back within a couple of seconds.
FAST_JOBS = {
    "CORTEX_JOBS_POLL_SECONDS": "0.2", "CORTEX_JOBS_HEARTBEAT_SECONDS": "0.3",
    "CORTEX_JOBS_STALLED_AFTER_SECONDS": "1.5", "CORTEX_JOBS_SHUTDOWN_GRACE_SECONDS": "1",
    "CORTEX_WEBHOOK_RETRY_SCHEDULE_SECONDS": "[0.2, 0.2, 0.2]",
    "CORTEX_EVENTS_STREAM_POLL_SECONDS": "0.5", "CORTEX_EVENTS_STREAM_HEARTBEAT_SECONDS": "0.5",
}


class ServeProcess:
    def __init__(self, settings: Settings, *, llm_api_base: str, redis_url: str | None = None,
                 extra: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        assert settings.database_url is not None
        self.env = {
            **os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT),
            "DATABASE_URL": settings.database_url, "CORTEX_SECRET_KEY": settings.secret_key,
            "CORTEX_DATA_DIR": str(settings.data_dir), "CORTEX_ALLOW_PRIVATE_WEBHOOKS": "true",
            "CORTEX_PRELOAD_EMBEDDINGS": "false", "CORTEX_RATE_LIMIT_PER_MINUTE": "100000",
            "CORTEX_LLM_API_BASE": llm_api_base, "CORTEX_LLM_API_KEY": "sk-test", "HF_HUB_OFFLINE": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True", **FAST_JOBS, **(extra or {}),
        }
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        for tier in ("SPEED", "NANO", "SONNET", "COMPLEX", "SEARCH"):
            self.env[f"CORTEX_MODEL_{tier}"] = MODEL
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, within: float = 120) -> ServeProcess:
        self.process = subprocess.Popen([sys.executable, "-m", "cortex.cli", "serve", "--port", str(self.port)],
                                        cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cortex serve exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("cortex serve did not come up")

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
