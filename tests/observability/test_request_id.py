"""One request id per request: accepted or made, returned in X-Request-ID, stored, and in every log line."""

from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest
from sqlalchemy import select

from cortex.db.models import Message
from cortex.kit.runtime import Runtime
from cortex.observability.logs import JsonFormatter, RequestIdFilter
from tests.observability.helpers import app_client
from tests.scripted_llm import ScriptedLLM
from tests.support import Tenant, chat, create_agent


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient, tenant: Tenant) -> None:
    responses = [await client.get("/health"), await client.get("/v1/agents"),  # 401
                 await client.get("/v1/agents", headers=tenant.headers), await client.get("/nowhere")]
    ids = [r.headers["X-Request-ID"] for r in responses]
    assert all(len(i) == 32 for i in ids) and len(set(ids)) == len(ids)


async def test_a_well_formed_id_is_accepted_and_a_bad_one_replaced(client: httpx.AsyncClient) -> None:
    given = await client.get("/health", headers={"X-Request-ID": "edge-7f3a.42"})
    assert given.headers["X-Request-ID"] == "edge-7f3a.42"
    for bad in ("x" * 65, "two words", "<script>"):
        replaced = await client.get("/health", headers={"X-Request-ID": bad})
        assert replaced.headers["X-Request-ID"] != bad and len(replaced.headers["X-Request-ID"]) == 32


async def test_the_request_id_is_stored_on_both_messages(client: httpx.AsyncClient, tenant: Tenant,
                                                         runtime: Runtime, llm: ScriptedLLM) -> None:
    agent = await create_agent(client, tenant)
    conversation = uuid.uuid4()
    body = {"company_id": str(tenant.company_id), "agent_id": agent["id"], "conversation_id": str(conversation),
            "customer_id": "c-1", "message": "hello"}
    response = await client.post("/v1/chat", json=body, headers={**tenant.headers, "X-Request-ID": "trace-abc-1"})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "trace-abc-1"
    async with runtime.database.session() as session:
        stored = list(await session.scalars(select(Message.request_id).where(Message.conversation_id == conversation)))
    assert stored == ["trace-abc-1", "trace-abc-1"]


async def test_a_500_has_the_same_id_in_header_and_body(tenant: Tenant, runtime: Runtime,
                                                        llm: ScriptedLLM, client: httpx.AsyncClient) -> None:
    agent = await create_agent(client, tenant)

    class Broken:
        available = True

        async def retrieve(self, **kwargs: object) -> list[object]:
            raise RuntimeError("boom")

    saved = runtime.components.get("knowledge")
    runtime.components["knowledge"] = Broken()
    try:
        async with app_client(runtime, raise_app_exceptions=False) as server:
            response = await chat(server, tenant, agent["id"], "hi")
    finally:
        if saved is None:
            runtime.components.pop("knowledge")
        else:
            runtime.components["knowledge"] = saved
    assert response.status_code == 500
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


async def test_log_lines_are_json_with_the_request_id_and_no_secrets(
        client: httpx.AsyncClient, tenant: Tenant, llm: ScriptedLLM, caplog: pytest.LogCaptureFixture) -> None:
    agent = await create_agent(client, tenant)
    secret_text = "my card number is 4111-1111-" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG, logger="cortex")
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())  # as configure_logging's handler does, at emit time
    response = await client.post(
        "/v1/chat", headers={**tenant.headers, "X-Request-ID": "log-check-1"},
        json={"company_id": str(tenant.company_id), "agent_id": agent["id"], "conversation_id": str(uuid.uuid4()),
              "customer_id": "c-1", "message": secret_text})
    assert response.status_code == 200
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    access = [json.loads(line) for line in lines if json.loads(line)["logger"] == "cortex.access"]
    chat_line = next(line for line in access if line["route"] == "/v1/chat")
    assert chat_line["request_id"] == "log-check-1" and chat_line["status"] == 200
    assert chat_line["method"] == "POST" and chat_line["duration_ms"] > 0
    info_and_above = [line for line, record in zip(lines, caplog.records, strict=True)
                      if record.levelno >= logging.INFO]
    assert info_and_above
    assert not any(secret_text in line or tenant.api_key in line for line in info_and_above)


def test_json_formatter_keeps_extras_and_exceptions() -> None:
    record = logging.LogRecord("cortex.x", logging.ERROR, __file__, 1, "failed %s", ("once",), None)
    record.request_id = "r-1"
    record.model = "m"
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed once" and entry["level"] == "error" and entry["request_id"] == "r-1"
    assert entry["model"] == "m" and "ValueError: bad" in entry["exception"]
