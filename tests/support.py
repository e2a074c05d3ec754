"""Helpers shared by the tests: a tenant (company + user + API key) and request shortcuts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import text

from cortex.auth import service as auth
from cortex.auth.schemas import ApiKeyCreate
from cortex.jobs.system import job_system
from cortex.kit.runtime import Runtime
from cortex.pipeline.post_actions import FOLLOW_UP_QUEUE


@dataclass
class Tenant:
    company_id: uuid.UUID
    user_email: str
    password: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def make_tenant(runtime: Runtime, scopes: list[str] | None = None, name: str | None = None) -> Tenant:
    suffix = uuid.uuid4().hex[:10]
    password = "pw-" + uuid.uuid4().hex
    async with runtime.database.session() as session:
        company = await auth.get_or_create_company(session, name or f"Company {suffix}")
        user = await auth.create_user(session, company, f"user-{suffix}@example.com", password)
        key = await auth.create_api_key(session, company.id, ApiKeyCreate(name="test", scopes=scopes or ["*"]))
    return Tenant(company.id, user.email, password, key.key)


async def make_key(runtime: Runtime, company_id: uuid.UUID, scopes: list[str], **extra: Any) -> str:
    async with runtime.database.session() as session:
        key = await auth.create_api_key(session, company_id, ApiKeyCreate(name="extra", scopes=scopes, **extra))
    return key.key


async def create_agent(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"name": "Agent " + uuid.uuid4().hex[:6], **fields}
    response = await client.post("/v1/agents", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def create_action(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"name": "action_" + uuid.uuid4().hex[:6], **fields}
    response = await client.post("/v1/actions", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def chat(client: httpx.AsyncClient, tenant: Tenant, agent_id: str, message: str, *,
               conversation_id: uuid.UUID | str | None = None, customer_id: str = "customer-1",
               **extra: Any) -> httpx.Response:
    body = {"company_id": str(tenant.company_id), "agent_id": agent_id,
            "conversation_id": str(conversation_id or uuid.uuid4()), "customer_id": customer_id,
            "message": message, **extra}
    return await client.post("/v1/chat", json=body, headers=tenant.headers)


async def run_jobs(runtime: Runtime, queues: tuple[str, ...] = (FOLLOW_UP_QUEUE,)) -> None:
    """Run the queued jobs of `queues` until none is left: what the worker of `cortex serve` does meanwhile."""
    app = await job_system(runtime).open()
    await app.run_worker_async(queues=list(queues), wait=False, install_signal_handlers=False, concurrency=1,
                               listen_notify=False, additional_context={"runtime": runtime})


async def queued_jobs(runtime: Runtime, queue: str = FOLLOW_UP_QUEUE) -> int:
    """Jobs of `queue` waiting or running."""
    async with runtime.database.session() as session:
        count = await session.scalar(text(
            "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = :queue AND status IN ('todo', 'doing')"),
            {"queue": queue})
    return int(count or 0)
