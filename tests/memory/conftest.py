"""Shared pieces of the memory tests: the component, extraction switched on, scripted fact outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cortex.kit.runtime import Runtime
from cortex.memory.component import MemoryComponent
from cortex.pipeline.ports import MEMORY
from tests.scripted_llm import Reply
from tests.support import Tenant


@pytest.fixture
def memory(runtime: Runtime) -> MemoryComponent:
    component = runtime.components[MEMORY]
    assert isinstance(component, MemoryComponent)
    return component


@pytest.fixture
def extraction(runtime: Runtime) -> Iterator[None]:
    """Automatic extraction on for one test (the shared test settings keep it off)."""
    runtime.settings.memory_extraction = True
    try:
        yield
    finally:
        runtime.settings.memory_extraction = False


def facts_reply(*facts: dict[str, Any]) -> Reply:
    return Reply(text=json.dumps({"facts": list(facts)}))


def fact(text: str, subject: str, value: str, category: str = "general", confidence: float = 0.9) -> dict[str, Any]:
    return {"fact": text, "category": category, "confidence": confidence, "subject": subject, "value": value}


async def save(client: httpx.AsyncClient, tenant: Tenant, customer_id: str, text: str, **extra: Any) -> dict[str, Any]:
    response = await client.post(f"/v1/memory/{customer_id}/save", headers=tenant.headers,
                                 json={"company_id": str(tenant.company_id), "fact": text, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def view(client: httpx.AsyncClient, tenant: Tenant, customer_id: str, query: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"company_id": str(tenant.company_id)}
    if query is not None:
        body["query"] = query
    response = await client.post(f"/v1/memory/{customer_id}", headers=tenant.headers, json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data
