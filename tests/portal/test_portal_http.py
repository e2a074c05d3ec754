"""The portal's session, CSRF and scoping rules, over HTTP against the app (no browser needed)."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from cortex.db.models import ApiKey
from cortex.kit.runtime import Runtime
from cortex.portal.site import CONTENT_SECURITY_POLICY
from tests.scripted_llm import ScriptedLLM
from tests.support import Tenant, chat, create_agent

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def log_in(client: httpx.AsyncClient, tenant: Tenant) -> str:
    """Logs in through the form; returns the session's CSRF token as the pages embed it."""
    form = await client.get("/portal/login")
    login_token = CSRF.search(form.text)
    assert login_token is not None
    answer = await client.post("/portal/login", data={"email": tenant.user_email, "password": tenant.password,
                                                      "csrf_token": login_token.group(1), "next": "/portal/keys"})
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/keys"
    page = await client.get("/portal/keys")
    assert page.status_code == 200
    token = CSRF.search(page.text)
    assert token is not None
    return token.group(1)


async def key_count(runtime: Runtime, tenant: Tenant) -> int:
    async with runtime.database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(ApiKey)
                                        .where(ApiKey.company_id == tenant.company_id)) or 0)


async def test_the_session_cookie_is_httponly_lax_and_secure_over_https(runtime: Runtime, tenant: Tenant) -> None:
    from cortex.app import create_app

    app = create_app(runtime=runtime)
    for scheme, secure in (("http", False), ("https", True)):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://cortex.test") as web:
            form = await web.get("/portal/login")
            token = CSRF.search(form.text)
            assert token is not None
            answer = await web.post("/portal/login", data={"email": tenant.user_email, "password": tenant.password,
                                                           "csrf_token": token.group(1)})
            assert answer.status_code == 303
            cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("cortex_portal="))
            assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/portal" in cookie
            assert ("Secure" in cookie) is secure


async def test_a_wrong_password_is_refused_on_the_login_page(client: httpx.AsyncClient, tenant: Tenant) -> None:
    form = await client.get("/portal/login")
    token = CSRF.search(form.text)
    assert token is not None
    answer = await client.post("/portal/login", data={"email": tenant.user_email, "password": "wrong",
                                                      "csrf_token": token.group(1)})
    assert answer.status_code == 401
    assert "Wrong email or password." in answer.text
    assert "cortex_portal=" not in " ".join(answer.headers.get_list("set-cookie"))
    assert (await client.get("/portal/")).status_code == 303


async def test_requests_without_the_csrf_token_are_refused(client: httpx.AsyncClient, runtime: Runtime,
                                                           tenant: Tenant) -> None:
    # The login form itself: its double-submit token must match the cookie.
    await client.get("/portal/login")
    forged = await client.post("/portal/login", data={"email": tenant.user_email, "password": tenant.password,
                                                      "csrf_token": "forged"})
    assert forged.status_code == 403

    token = await log_in(client, tenant)
    before = await key_count(runtime, tenant)
    for extra in ({}, {"csrf_token": "not-the-token"}):
        refused = await client.post("/portal/keys", data={"name": "forged", **extra})
        assert refused.status_code == 403
        assert "security token" in refused.text
    refused = await client.post("/portal/keys", data={"name": "forged"}, headers={"X-CSRF-Token": token[:-1] + "x"})
    assert refused.status_code == 403
    assert await key_count(runtime, tenant) == before

    created = await client.post("/portal/keys", data={"name": "real", "csrf_token": token})
    assert created.status_code == 201
    assert re.search(r'id="new-key" readonly value="ctx_[A-Za-z0-9_-]+"', created.text)
    by_header = await client.post("/portal/keys", data={"name": "by header"}, headers={"X-CSRF-Token": token})
    assert by_header.status_code == 201
    assert await key_count(runtime, tenant) == before + 2


async def test_logout_ends_the_session_for_every_copy_of_the_cookie(client: httpx.AsyncClient,
                                                                    tenant: Tenant) -> None:
    token = await log_in(client, tenant)
    cookie = client.cookies.get("cortex_portal", path="/portal")
    assert cookie
    out = await client.post("/portal/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["location"].startswith("/portal/login")
    # A copy of the old cookie (kept by an attacker, or another tab) no longer opens a page.
    client.cookies.set("cortex_portal", cookie, path="/portal")
    again = await client.get("/portal/keys")
    assert again.status_code == 303 and "Your%20session%20has%20ended" in again.headers["location"]
    # An htmx request is told where to go instead of being redirected in place.
    fragment = await client.get("/portal/keys", headers={"HX-Request": "true"})
    assert fragment.status_code == 204 and fragment.headers["HX-Redirect"].startswith("/portal/login")


async def test_pages_carry_a_strict_content_security_policy(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await log_in(client, tenant)
    page = await client.get("/portal/")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text  # no inline script: the policy would block it
    static = await client.get("/portal/static/vendor/htmx-2.0.11.min.js")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")


async def test_exports_and_pages_hold_only_the_company_s_conversations(
        client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, other_tenant: Tenant, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    conversation_id = uuid.uuid4()
    answered = await chat(client, tenant, agent["id"], "Where is order 77?", conversation_id=conversation_id,
                          customer_id="cust-77")
    assert answered.status_code == 200, answered.text
    await chat(client, tenant, agent["id"], "Something else", customer_id="cust-78")

    await log_in(client, tenant)
    exported = await client.get("/portal/conversations/export.json", params={"customer": "cust-77"})
    assert exported.status_code == 200
    rows = exported.json()
    assert [row["conversation_id"] for row in rows] == [str(conversation_id)]
    assert rows[0]["messages"] == 2 and rows[0]["agent_name"] == agent["name"]
    searched = await client.get("/portal/conversations/export.json", params={"q": "order 77"})
    assert [row["conversation_id"] for row in searched.json()] == [str(conversation_id)]
    csv_text = (await client.get("/portal/conversations/export.csv", params={"status": "failed"})).text
    assert csv_text.strip().splitlines() == [
        "conversation_id,agent_id,agent_name,customer_id,channel,created_at,updated_at,messages,failed_messages,"
        "cost_usd"]
    page = await client.get(f"/portal/conversations/{conversation_id}")
    assert page.status_code == 200 and "Where is order 77?" in page.text and "07 Agent Compiler" in page.text

    client.cookies.clear()
    await log_in(client, other_tenant)
    assert (await client.get("/portal/conversations/export.json")).json() == []
    assert (await client.get(f"/portal/conversations/{conversation_id}")).status_code == 404
    assert (await client.get(f"/portal/agents/{agent['id']}")).status_code == 404
    assert "cust-77" not in (await client.get("/portal/conversations")).text


@pytest.mark.parametrize(("query", "field"), [({"agent_id": "nope"}, "agent_id"), ({"date_from": "2026-13-01"},
                                                                                     "date_from"),
                                               ({"channel": "pigeon"}, "channel")])
async def test_a_bad_filter_is_a_clear_error_page(client: httpx.AsyncClient, tenant: Tenant, query: dict[str, str],
                                                  field: str) -> None:
    await log_in(client, tenant)
    answer = await client.get("/portal/conversations", params=query)
    assert answer.status_code == 422
    assert "text/html" in answer.headers["content-type"]


async def test_the_prompt_template_is_checked_as_it_is_typed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    token = await log_in(client, tenant)
    bad = await client.post("/portal/agents/validate-prompt", data={"system_prompt": "{% if %}"},
                            headers={"X-CSRF-Token": token})
    assert bad.status_code == 200 and "syntax error" in bad.text
    good = await client.post("/portal/agents/validate-prompt", data={"system_prompt": "Hi {{ agent_name }}"},
                             headers={"X-CSRF-Token": token})
    assert "The template is valid." in good.text
    # Saving a broken one is refused with the field named, and nothing is created.
    saved = await client.post("/portal/agents/new", data={"name": "Broken", "system_prompt": "{{ secret }}",
                                                          "csrf_token": token})
    assert saved.status_code == 422 and "unknown variable &#39;secret&#39;" in saved.text
    assert "Broken" not in (await client.get("/portal/agents")).text


async def test_a_customer_s_facts_show_with_history_and_forgetting_needs_the_typed_id(
        client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, other_tenant: Tenant, llm: ScriptedLLM) -> None:
    from cortex.db.models import Conversation, MemoryAuditRecord

    agent = await create_agent(client, tenant)
    customer = f"leaving-{uuid.uuid4().hex[:6]}"
    assert (await chat(client, tenant, agent["id"], "Hello there", customer_id=customer)).status_code == 200
    for city in ("Cairo", "Amman"):
        saved = await client.post(f"/v1/memory/{customer}/save", headers=tenant.headers, json={
            "company_id": str(tenant.company_id), "fact": f"Lives in {city}.", "subject": "home_city", "value": city})
        assert saved.status_code == 200, saved.text

    token = await log_in(client, tenant)
    profile = await client.get(f"/portal/customers/{customer}")
    assert profile.status_code == 200
    live, _, history = profile.text.partition('id="facts-history"')
    assert "Lives in Amman." in live and "Lives in Cairo." in history

    refused = await client.post(f"/portal/customers/{customer}/forget", data={"confirm": "yes", "csrf_token": token})
    assert refused.status_code == 422 and "type the customer id" in refused.text
    async with runtime.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation).where(
            Conversation.company_id == tenant.company_id, Conversation.customer_id == customer)) == 1

    # Another company's user cannot forget this company's customer (it forgets nothing of theirs).
    other = httpx.AsyncClient(transport=client._transport, base_url="http://cortex.test")
    async with other:
        other_token = await log_in(other, other_tenant)
        assert (await other.post(f"/portal/customers/{customer}/forget",
                                 data={"confirm": customer, "csrf_token": other_token})).status_code == 303
    assert "Lives in Amman." in (await client.get(f"/portal/customers/{customer}")).text

    forgotten = await client.post(f"/portal/customers/{customer}/forget",
                                  data={"confirm": customer, "csrf_token": token})
    assert forgotten.status_code == 303
    page = await client.get(f"/portal/customers/{customer}")
    assert "Lives in" not in page.text
    async with runtime.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation).where(
            Conversation.company_id == tenant.company_id, Conversation.customer_id == customer)) == 0
        actors = (await session.scalars(select(MemoryAuditRecord.actor_name).where(
            MemoryAuditRecord.company_id == tenant.company_id))).all()
    assert actors == [f"portal:{tenant.user_email}"]
