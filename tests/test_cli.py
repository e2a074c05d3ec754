"""The `cortex` command, run as a real process against real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cortex.kit.runtime import Runtime
from cortex.knowledge.uploads import company_folder
from tests.support import Tenant, create_agent

CORTEX = [sys.executable, "-m", "cortex.cli"]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CORTEX + args, env={**os.environ, **env}, capture_output=True, text=True, timeout=180)


def test_demo_json_on_embedded_postgres_is_idempotent(tmp_path: Path) -> None:
    env = {"CORTEX_DATA_DIR": str(tmp_path / "home"), "DATABASE_URL": ""}
    first = _run(["demo", "--json"], env)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)  # exactly one JSON object on stdout
    assert set(data) == {"company_id", "agent_id", "email", "password", "api_key"}
    assert data["api_key"].startswith("ctx_")
    assert (tmp_path / "home" / "postgres" / "PG_VERSION").exists()
    second = json.loads(_run(["demo", "--json"], env).stdout)
    assert (second["company_id"], second["agent_id"]) == (data["company_id"], data["agent_id"])
    assert second["api_key"] != data["api_key"]


async def test_demo_user_can_log_in(client: httpx.AsyncClient, database_url: str) -> None:
    result = _run(["demo", "--json"], {"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    login = await client.post("/portal/api/login", json={"email": data["email"], "password": data["password"]})
    assert login.status_code == 200
    headers = {"Authorization": f"Bearer {data['api_key']}"}
    config = await client.get(f"/v1/agents/{data['agent_id']}/config", headers=headers)
    assert config.status_code == 200 and len(config.json()["faqs"]) >= 3


async def test_users_and_keys_commands(client: httpx.AsyncClient, database_url: str, tenant: Tenant) -> None:
    env = {"DATABASE_URL": database_url}
    created = _run(["users", "create", "--company", "CLI Co", "--email", "cli@example.com",
                    "--password", "long-enough-pw"], env)
    assert created.returncode == 0, created.stderr
    user = json.loads(created.stdout)
    duplicate = _run(["users", "create", "--company", "CLI Co", "--email", "cli@example.com",
                      "--password", "long-enough-pw"], env)
    assert duplicate.returncode == 1
    key = _run(["keys", "create", "--company-id", user["company_id"], "--name", "ops", "--scopes", "agents",
                "--expires-in-days", "7"], env)
    assert key.returncode == 0, key.stderr
    raw = json.loads(key.stdout)["key"]
    listed = await client.get("/v1/agents", headers={"Authorization": f"Bearer {raw}"})
    assert listed.status_code == 200 and listed.json()["total_count"] == 0
    assert (await client.get("/v1/customers", headers={"Authorization": f"Bearer {raw}"})).status_code == 403
    bad = _run(["keys", "create", "--company-id", user["company_id"], "--name", "x", "--scopes", "root"], env)
    assert bad.returncode == 2


def test_serve_refuses_several_workers_without_redis(tmp_path: Path) -> None:
    started = time.monotonic()
    env = {**os.environ, "REDIS_URL": "", "CORTEX_REDIS_URL": "", "CORTEX_DATA_DIR": str(tmp_path)}
    result = subprocess.run([*CORTEX, "serve", "--workers", "2", "--port", "1"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "REDIS_URL" in result.stderr and "--workers 2" in result.stderr
    assert time.monotonic() - started < 30
    assert not (tmp_path / "prometheus").exists()  # refused before anything was prepared


def test_serve_starts_several_workers_with_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from cortex import cli
    from cortex.observability import logs

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append({"app": app, **options}))
    monkeypatch.setattr(logs, "configure_logging", lambda *args: None)
    result = CliRunner().invoke(cli.app, ["serve", "--workers", "2"], env={
        "REDIS_URL": "redis://127.0.0.1:6379/0", "DATABASE_URL": "", "CORTEX_DATA_DIR": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")})
    assert result.exit_code == 0, result.output
    assert [(call["app"], call["workers"]) for call in calls] == [("cortex.app:create_app", 2)]
    one = CliRunner().invoke(cli.app, ["serve"], env={"REDIS_URL": "", "CORTEX_REDIS_URL": "",
                                                      "CORTEX_DATA_DIR": str(tmp_path)})
    assert one.exit_code == 0, one.output
    assert calls[-1]["workers"] == 1


async def test_ingest_copies_the_file_into_the_companys_folder(client: httpx.AsyncClient, database_url: str,
                                                               runtime: Runtime, tenant: Tenant,
                                                               tmp_path: Path) -> None:
    """The command line reads any file its user can; it ingests a copy kept in the company's folder,
    where the API's file_path and a resumed job find it too."""
    source = (await client.post("/v1/knowledge/sources", json={"name": "Ops"}, headers=tenant.headers)).json()
    local = tmp_path / "runbook.md"
    local.write_text("# Runbook\n\nRestart the Nebula gateway with a long press of the blue button.\n")
    env = {"DATABASE_URL": database_url, "CORTEX_DATA_DIR": str(tmp_path / "home"),
           "CORTEX_UPLOAD_DIR": str(runtime.settings.resolved_upload_dir), "CORTEX_PRELOAD_EMBEDDINGS": "false"}
    result = _run(["ingest", str(local), "--source-id", source["id"]], env)
    assert result.returncode == 0, result.stderr
    [document] = json.loads(result.stdout)
    assert document["status"] == "ready" and document["name"] == "runbook.md"
    folder = company_folder(runtime.settings, tenant.company_id)
    copies = [p for p in folder.iterdir() if p.name.endswith("-runbook.md")]
    assert len(copies) == 1 and copies[0].read_text() == local.read_text()
    agent = await create_agent(client, tenant, knowledge_source_ids=[source["id"]])
    hits = (await client.post("/v1/knowledge/search", headers=tenant.headers,
                              json={"agent_id": agent["id"], "query": "Nebula gateway", "mode": "lexical"})).json()
    assert "blue button" in hits["results"][0]["text"]
    assert local.exists()  # the operator's own file is left as it was
