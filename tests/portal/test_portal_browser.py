"""The portal in a real browser (Chromium via Playwright) against a real `cortex serve`-style server.

One browser for the module; each test opens its own context (its own cookies). Screenshots of each
screen go to CORTEX_PORTAL_SCREENSHOTS, or `portal-screenshots` under pytest's basetemp.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cortex.auth.tokens import PortalClaims, issue_token
from tests.knowledge.documents import docx_bytes
from tests.live_cortex import LiveCortex
from tests.portal.browser import PageWatch, chromium_or_skip, launch, screenshot_dir
from tests.support import Tenant, make_tenant

ARABIC = "مرحبا، أين طلبي رقم ٤٢؟"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from launch(chromium_or_skip())


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = screenshot_dir(tmp_path_factory.getbasetemp())
    print(f"\nportal screenshots: {folder}")
    return folder


@pytest.fixture
def open_page(browser: Any, live: LiveCortex) -> Iterator[Any]:
    contexts: list[Any] = []
    watches: list[PageWatch] = []

    def make() -> tuple[Any, PageWatch]:
        context = browser.new_context(base_url=live.base_url, accept_downloads=True)
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        watch = PageWatch(page)
        watches.append(watch)
        return page, watch

    yield make
    for context in contexts:
        context.close()
    for watch in watches:
        watch.assert_clean()


def log_in(page: Any, tenant: Tenant, password: str | None = None) -> None:
    page.goto("/portal/login")
    page.get_by_label("Email").fill(tenant.user_email)
    page.get_by_label("Password").fill(password or tenant.password)
    page.get_by_role("button", name="Log in").click()


def test_a_support_day_from_login_to_revoked_key(open_page: Any, live: LiveCortex, shots: Path) -> None:
    tenant = live.call(make_tenant(live.runtime))
    page, watch = open_page()
    watch.expect_status(401)  # the wrong password below

    # Not logged in: the portal sends the browser to the login page; a wrong password keeps it there.
    page.goto("/portal/conversations")
    assert page.url.endswith("/portal/login?next=/portal/conversations")
    log_in(page, tenant, password="not-the-password")
    assert page.locator("#login-error").inner_text() == "Wrong email or password."
    page.screenshot(path=shots / "01-login.png")
    log_in(page, tenant)
    page.wait_for_url("**/portal/")
    assert page.locator("h1").inner_text() == "Overview"
    assert page.locator("#chats-today").inner_text() == "0"

    # An API key, shown once.
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("browser key")
    page.get_by_role("button", name="Create key").click()
    raw_key = page.locator("#new-key").input_value()
    assert raw_key.startswith("ctx_")
    page.screenshot(path=shots / "02-key-created.png")
    page.goto("/portal/keys")
    assert page.locator("#new-key").count() == 0
    assert raw_key not in page.content()
    assert page.locator('tr[data-key="browser key"] .state').inner_text() == "active"
    assert httpx.get(f"{live.base_url}/v1/agents", headers={"Authorization": f"Bearer {raw_key}"}).status_code == 200

    # A knowledge source and a DOCX that becomes ready.
    page.get_by_role("link", name="Knowledge").click()
    page.get_by_label("Name").fill("Handbook")
    page.get_by_role("button", name="Create source").click()
    page.wait_for_url("**/portal/knowledge/sources/*")
    docx = docx_bytes([("Heading1", "Shipping"), (None, "Parcels to Dubai arrive within three working days.")])
    page.locator("#upload-input").set_input_files(
        {"name": "shipping.docx", "mimeType": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         "buffer": docx})
    row = page.locator('tr[data-document="shipping.docx"]')
    row.locator(".status-ready").wait_for(timeout=60_000)
    assert int(row.locator("td").nth(2).inner_text()) >= 1
    page.screenshot(path=shots / "03-knowledge.png")

    # An agent: the template is checked as it is typed.
    page.get_by_role("link", name="Agents").click()
    page.locator("#new-agent").click()
    page.locator("#a-name").fill("Browser agent")
    prompt = page.locator("#a-prompt")
    prompt.fill("Hello {{ nobody_knows_me }}")
    page.locator("#prompt-check .bad").wait_for()
    assert "unknown variable 'nobody_knows_me'" in page.locator("#prompt-check").inner_text()
    prompt.fill("You help {{ customer.customer_id }} of {{ company_name }}.")
    page.locator("#prompt-check .good").wait_for()
    page.get_by_label("Handbook").check()
    page.get_by_role("button", name="Create agent").click()
    page.locator("#saved").wait_for()
    agent_id = page.url.split("/portal/agents/")[1].split("?")[0]
    page.screenshot(path=shots / "04-agent.png")

    # The playground streams the reply (Arabic, right to left) and shows its trace.
    page.get_by_label("Message").fill(ARABIC)
    page.get_by_role("button", name="Send").click()
    reply = page.locator("#pg-thread .msg.assistant").first
    reply.locator(".trace .waterfall").wait_for()
    assert reply.locator(".bubble").inner_text() == f"echo: {ARABIC}"
    # dir="auto": the Arabic message reads right to left; the reply opens with Latin "echo:", so left to right.
    asked = page.locator("#pg-thread .msg.customer .bubble").first
    assert asked.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert reply.locator(".bubble").evaluate("e => getComputedStyle(e).direction") == "ltr"
    assert reply.locator(".step-agent_compiler th").inner_text() == "07 Agent Compiler"
    assert reply.locator(".model").inner_text() == "openai/scripted-model"
    page.screenshot(path=shots / "05-playground.png", full_page=True)

    # The conversation, found by filters, with its waterfall.
    page.get_by_role("link", name="Conversations").click()
    page.get_by_label("Agent").select_option(label="Browser agent")
    page.get_by_label("Text").fill("طلبي")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#conversations tbody tr")
    assert rows.count() == 1
    assert rows.first.locator("td").nth(1).inner_text() == "playground"
    page.screenshot(path=shots / "06-conversations.png")
    page.get_by_label("Text").fill("no such words anywhere")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("#conversations").count() == 0
    page.get_by_label("Text").fill("طلبي")
    page.get_by_role("button", name="Filter").click()

    with page.expect_download() as download_info:
        page.locator("#export-csv").click()
    csv_text = Path(download_info.value.path()).read_text(encoding="utf-8")
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("conversation_id,agent_id,agent_name")
    assert len(lines) == 2 and agent_id in lines[1]

    page.locator("#conversations tbody tr a").first.click()
    page.locator(".trace .waterfall").first.wait_for()
    customer_bubble = page.locator(".msg.customer .bubble").first
    assert customer_bubble.inner_text() == ARABIC
    assert customer_bubble.evaluate("e => getComputedStyle(e).direction") == "rtl"
    assert page.locator(".waterfall tbody tr").count() == 8
    conversation_url = page.url
    page.screenshot(path=shots / "07-conversation.png", full_page=True)

    # The customer's page, reached from the lookup form.
    page.get_by_role("link", name="Customers").click()
    page.get_by_label("Customer id").fill("playground")
    page.get_by_role("button", name="Open").click()
    assert page.locator("h1").inner_text() == "Customer playground"
    assert page.get_by_label("Type the customer id").is_visible()
    page.screenshot(path=shots / "10-customer.png", full_page=True)

    # The overview counts it, with the same numbers as /v1/metrics/dashboard.
    page.get_by_role("link", name="Overview").click()
    board = httpx.get(f"{live.base_url}/v1/metrics/dashboard?days=30",
                      headers={"Authorization": f"Bearer {tenant.api_key}"}).json()
    assert page.locator("#chats-today").inner_text() == "1"
    assert page.locator("#replies").inner_text() == str(board["cost"]["replies"]) == "1"
    page.locator("#chart-replies .uplot").wait_for()
    page.screenshot(path=shots / "08-overview.png", full_page=True)

    # Revoking the key: it stops working at once.
    page.get_by_role("link", name="API keys").click()
    page.locator('tr[data-key="browser key"]').get_by_role("button", name="Revoke").click()
    assert page.locator('tr[data-key="browser key"] .state').inner_text() == "revoked"
    assert httpx.get(f"{live.base_url}/v1/agents", headers={"Authorization": f"Bearer {raw_key}"}).status_code == 401

    # A second company's user sees none of it.
    other = live.call(make_tenant(live.runtime))
    other_page, other_watch = open_page()
    other_watch.expect_status(404)
    log_in(other_page, other)
    other_page.wait_for_url("**/portal/")
    assert other_page.locator("#chats-today").inner_text() == "0"
    other_page.goto("/portal/conversations")
    assert other_page.locator("#conversations").count() == 0
    response = other_page.goto(conversation_url)
    assert response is not None and response.status == 404
    response = other_page.goto(f"/portal/agents/{agent_id}")
    assert response is not None and response.status == 404
    other_page.goto("/portal/keys")
    assert "browser key" not in other_page.content()
    other_page.goto("/portal/agents")
    assert "Browser agent" not in other_page.content()


def test_expired_sessions_and_logout_land_on_the_login_page(open_page: Any, live: LiveCortex, shots: Path) -> None:
    tenant = live.call(make_tenant(live.runtime))
    page, _ = open_page()
    log_in(page, tenant)
    page.wait_for_url("**/portal/")
    cookie = next(c for c in page.context.cookies() if c["name"] == "cortex_portal")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/portal"
    assert page.evaluate("document.cookie").find("cortex_portal=") == -1  # no script can read it

    # A token past its expiry (signed with the real secret) is an ended session.
    past = datetime.now(UTC) - timedelta(hours=2)
    claims = PortalClaims(uuid.uuid4(), tenant.company_id, tenant.user_email, uuid.uuid4())
    expired = issue_token(live.runtime.settings.signing_secret, claims, past, past + timedelta(minutes=30))
    page.context.add_cookies([{**cookie, "value": expired}])
    page.goto("/portal/keys")
    assert "/portal/login" in page.url
    assert "Your session has ended" in page.locator(".notice").inner_text()
    page.screenshot(path=shots / "09-session-ended.png")

    log_in(page, tenant)
    page.wait_for_url("**/portal/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/portal/login**")
    page.goto("/portal/")
    assert "/portal/login" in page.url
