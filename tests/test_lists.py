"""Lists that tools can page and sync: sort, created_after / updated_after, the page's total_pages and
has_more, and the company-wide lists (messages, a customer's facts, jobs), each scoped to its company."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from cortex.conversations import store
from cortex.kit.runtime import Runtime
from cortex.knowledge import jobs
from tests.scripted_llm import ScriptedLLM
from tests.support import Tenant, chat, create_agent


async def _list(client: httpx.AsyncClient, tenant: Tenant, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_sort_and_time_filters(client: httpx.AsyncClient, tenant: Tenant) -> None:
    made = [await create_agent(client, tenant, name=name) for name in ("bravo", "alpha", "charlie")]
    names = [a["name"] for a in (await _list(client, tenant, "/v1/agents", sort="name"))["items"]]
    assert names == ["alpha", "bravo", "charlie"]
    names = [a["name"] for a in (await _list(client, tenant, "/v1/agents", sort="name:desc"))["items"]]
    assert names == ["charlie", "bravo", "alpha"]
    newest = (await _list(client, tenant, "/v1/agents"))["items"]  # default created_at:desc
    assert [a["id"] for a in newest] == [a["id"] for a in reversed(made)]
    later = await _list(client, tenant, "/v1/agents", created_after=made[0]["created_at"], sort="created_at:asc")
    assert [a["name"] for a in later["items"]] == ["alpha", "charlie"] and later["total_count"] == 2

    await asyncio.sleep(0.01)
    patched = (await client.patch(f"/v1/agents/{made[1]['id']}", json={"system_prompt": "Be brief."},
                                  headers=tenant.headers)).json()
    assert patched["updated_at"] > made[1]["updated_at"]
    changed = await _list(client, tenant, "/v1/agents", updated_after=made[2]["updated_at"])
    assert [a["id"] for a in changed["items"]] == [made[1]["id"]]


async def test_bad_sort_and_naive_times_are_422_on_their_field(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for path, params, field in (("/v1/agents", {"sort": "system_prompt"}, "sort"),
                                ("/v1/customers", {"sort": "created_at:sideways"}, "sort"),
                                ("/v1/events", {"sort": "type"}, "sort"),
                                ("/v1/messages", {"updated_after": "yesterday"}, "updated_after"),
                                ("/v1/conversations", {"created_after": "2026-01-01T00:00:00"}, "created_after")):
        response = await client.get(path, params=params, headers=tenant.headers)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", field], (path, response.text)


async def test_page_counts_and_has_more(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for n in range(3):
        assert (await client.post("/v1/customers", json={"customer_id": f"c-{n}"},
                                  headers=tenant.headers)).status_code == 201
    first = await _list(client, tenant, "/v1/customers", page_size=2, sort="customer_id")
    assert (first["total_count"], first["total_pages"], first["has_more"]) == (3, 2, True)
    second = await _list(client, tenant, "/v1/customers", page_size=2, page=2, sort="customer_id")
    assert [c["customer_id"] for c in first["items"] + second["items"]] == ["c-0", "c-1", "c-2"]
    assert second["has_more"] is False
    past = await _list(client, tenant, "/v1/customers", page_size=2, page=5)
    assert past["items"] == [] and past["total_count"] == 3  # counted apart when the page is empty


async def test_company_messages_filter_sync_and_stay_in_the_company(
        client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, other_tenant: Tenant, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    first, second = uuid.uuid4(), uuid.uuid4()
    assert (await chat(client, tenant, agent["id"], "one", conversation_id=first, customer_id="ann")).status_code == 200
    assert (await chat(client, tenant, agent["id"], "two", conversation_id=second, customer_id="bob",
                       channel="web")).status_code == 200
    everything = await _list(client, tenant, "/v1/messages", sort="created_at:asc")
    assert [m["content"] for m in everything["items"]] == ["one", "echo: one", "two", "echo: two"]
    assert {m["conversation_id"] for m in everything["items"]} == {str(first), str(second)}
    ann = await _list(client, tenant, "/v1/messages", customer_id="ann")
    assert {m["content"] for m in ann["items"]} == {"one", "echo: one"}
    web = await _list(client, tenant, "/v1/messages", channel="web", role="assistant")
    assert [m["content"] for m in web["items"]] == ["echo: two"]
    one_thread = await _list(client, tenant, "/v1/messages", conversation_id=str(first), agent_id=agent["id"])
    assert one_thread["total_count"] == 2
    assert (await _list(client, other_tenant, "/v1/messages"))["total_count"] == 0
    assert (await _list(client, other_tenant, "/v1/messages", conversation_id=str(first)))["total_count"] == 0

    # A message that changes after it was written is what the next incremental sync fetches.
    mark = max(m["updated_at"] for m in everything["items"])
    question = everything["items"][0]
    async with runtime.database.session() as session:
        await store.mark_failed(session, company_id=tenant.company_id, message_id=uuid.UUID(question["id"]),
                                error="operator marked it")
    changed = await _list(client, tenant, "/v1/messages", updated_after=mark)
    assert [(m["id"], m["status"]) for m in changed["items"]] == [(question["id"], "failed")]
    assert changed["items"][0]["updated_at"] > changed["items"][0]["created_at"]
    failed = await _list(client, tenant, f"/v1/conversations/{first}/messages", status="failed")
    assert [m["id"] for m in failed["items"]] == [question["id"]]
    conversations = await _list(client, tenant, "/v1/conversations", channel="web")
    assert [c["id"] for c in conversations["items"]] == [str(second)]


async def test_customer_facts_list(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    async def save(customer: str, fact: str, **extra: Any) -> str:
        response = await client.post(f"/v1/memory/{customer}/save", headers=tenant.headers, json={
            "company_id": str(tenant.company_id), "fact": fact, **extra})
        assert response.status_code == 200, response.text
        return str(response.json()["fact_id"])

    await save("no-profile", "Prefers email.", confidence=0.4)
    await save("no-profile", "Lives in Haifa.", subject="home_city", value="Haifa", confidence=0.9)
    newer = await save("no-profile", "Lives in Eilat.", subject="home_city", value="Eilat", confidence=0.8)
    listed = await _list(client, tenant, "/v1/customers/no-profile/facts", sort="confidence:desc")
    assert [f["fact"] for f in listed["items"]] == ["Lives in Eilat.", "Prefers email."]
    assert listed["items"][0]["id"] == newer and listed["items"][0]["subject"] == "home_city"
    every = await _list(client, tenant, "/v1/customers/no-profile/facts", include_superseded="true")
    superseded = [f for f in every["items"] if f["superseded_by"]]
    assert [f["fact"] for f in superseded] == ["Lives in Haifa."] and superseded[0]["superseded_by"] == newer
    assert superseded[0]["updated_at"] > superseded[0]["created_at"]  # superseding is a change

    profile = (await client.post("/v1/customers", json={"customer_id": "with-profile"}, headers=tenant.headers)).json()
    await save("with-profile", "Has a dog.", category="context")
    by_id = await _list(client, tenant, f"/v1/customers/{profile['id']}/facts", category="context")
    assert [f["fact"] for f in by_id["items"]] == ["Has a dog."]
    assert (await _list(client, tenant, f"/v1/customers/{profile['id']}/facts", category="history"))["items"] == []
    for ref in ("nobody-at-all", profile["id"], "no-profile"):
        response = await client.get(f"/v1/customers/{ref}/facts", headers=other_tenant.headers)
        assert response.status_code == 404, ref
    assert (await client.get("/v1/customers/nobody-at-all/facts", headers=tenant.headers)).status_code == 404


async def test_jobs_list_filters(client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant,
                                 other_tenant: Tenant) -> None:
    source = (await client.post("/v1/knowledge/sources", json={"name": "jobs"}, headers=tenant.headers)).json()
    made = [await jobs.create_job(runtime, company_id=tenant.company_id, kind="url",
                                  source_id=uuid.UUID(source["id"])) for _ in range(2)]
    await jobs.create_job(runtime, company_id=tenant.company_id, kind="reembed")
    listed = await _list(client, tenant, "/v1/jobs", source_id=source["id"], sort="created_at:asc")
    assert [j["job_id"] for j in listed["items"]] == [str(job.id) for job in made]
    assert (await _list(client, tenant, "/v1/jobs", status="queued"))["total_count"] == 3
    assert (await _list(client, tenant, "/v1/jobs", status="completed"))["total_count"] == 0
    assert (await _list(client, other_tenant, "/v1/jobs"))["total_count"] == 0
    assert (await client.get("/v1/jobs", params={"status": "lost"}, headers=tenant.headers)).status_code == 422


async def test_events_sort_newest_first(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for name in ("e1", "e2"):
        created = await client.post("/v1/customers", json={"customer_id": name}, headers=tenant.headers)
        assert created.status_code == 201
    await create_agent(client, tenant)
    oldest_first = (await _list(client, tenant, "/v1/events", page_size=100))["items"]
    newest_first = (await _list(client, tenant, "/v1/events", page_size=100, sort="created_at:desc"))["items"]
    assert oldest_first and [e["id"] for e in newest_first] == [e["id"] for e in reversed(oldest_first)]
    assert all(e["updated_at"] == e["created_at"] for e in oldest_first)
