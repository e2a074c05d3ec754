"""The Python client (`clients/python`, package cortex-client) against a real Cortex on loopback.

The server is the live fixture the OpenAI SDK tests use (its own scripted model); the failure paths go
through a relay (tests/client/relay.py) that loses, refuses, holds or cuts real answers of that server.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cortex_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncCortex,
    AuthenticationError,
    Backoff,
    ConflictError,
    Cortex,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StreamError,
    UnprocessableEntityError,
)
from cortex_client import webhooks as cortex_webhooks

from cortex.events.outbox import WEBHOOK_QUEUE
from tests.client.relay import Relay, cut_after_first_event, hold, lose_answer, refuse
from tests.events.conftest import eventually
from tests.live_cortex import LiveCortex
from tests.scripted_llm import Reply, ScriptedLLM
from tests.support import Tenant, make_key, run_jobs
from tests.webhook_target import WebhookTarget

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "python"
FAST = Backoff(initial_seconds=0.01, max_seconds=0.05)
NO_CACHE = {"cache": {"enabled": False}}


def _client(live: LiveCortex | Relay, tenant: Tenant, **options: Any) -> Cortex:
    return Cortex(tenant.api_key, base_url=live.base_url, company_id=str(tenant.company_id),
                  **{"backoff": FAST, **options})


@pytest.fixture
def relay(live: LiveCortex) -> Any:
    server = Relay(live.base_url).start()
    yield server
    server.stop()


def _returns(check: Any) -> Any:
    async def wrapped() -> Any:
        return check()
    return wrapped


def _chats(relay: Relay) -> list[Any]:
    return [call for call in relay.calls if call.path == "/v1/chat"]


async def test_chat_and_chat_stream(tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    with _client(live, tenant) as cortex:
        agent = cortex.agents.create(name="Client agent", settings=NO_CACHE)
        conversation = str(uuid.uuid4())
        live_llm.queue(Reply(text="Our hours are 9 to 5."))
        reply = cortex.chat(agent_id=agent["id"], conversation_id=conversation, customer_id="c-1",
                            message="When are you open?")
        assert reply["reply"] == "Our hours are 9 to 5." and reply["cached"] is False
        assert reply["step_timings"]["agent_compiler"] > 0

        live_llm.queue(Reply(text="Yes, on Saturdays too."))
        events = list(cortex.chat_stream(agent_id=agent["id"], conversation_id=conversation, customer_id="c-1",
                                         message="And on Saturdays?"))
        names = [event.event for event in events]
        assert names[-1] == "done" and "delta" in names and "step" in names
        done = events[-1].response
        assert done is not None and done["reply"] == "Yes, on Saturdays too." and done["message_id"]
        assert "".join(event.text for event in events) == done["reply"]
        ids = [event.id for event in events]
        assert ids == sorted(ids) and None not in ids

        stored = cortex.conversations.messages(conversation).to_list()
        assert [(m["role"], m["content"]) for m in stored] == [
            ("customer", "When are you open?"), ("assistant", "Our hours are 9 to 5."),
            ("customer", "And on Saturdays?"), ("assistant", "Yes, on Saturdays too.")]
        assert [c["id"] for c in cortex.conversations.list(agent_id=agent["id"])] == [conversation]
        across = cortex.messages.list(agent_id=agent["id"], role="assistant", sort="created_at:asc").to_list()
        assert [m["content"] for m in across] == ["Our hours are 9 to 5.", "Yes, on Saturdays too."]
        assert {m["conversation_id"] for m in across} == {conversation}


async def test_async_client_pages_through_every_item_and_sees_only_its_company(
        tenant: Tenant, other_tenant: Tenant, live: LiveCortex) -> None:
    async with AsyncCortex(tenant.api_key, base_url=live.base_url, backoff=FAST) as cortex, \
            AsyncCortex(other_tenant.api_key, base_url=live.base_url) as other:
        made = [await cortex.customers.create(customer_id=f"cust-{i}", first_name=f"N{i}") for i in range(5)]
        await other.customers.create(customer_id="cust-0")  # the same customer id, in another company

        listed = await cortex.customers.list(page_size=2).to_list()
        assert sorted(c["id"] for c in listed) == sorted(c["id"] for c in made)
        pages = [page async for page in cortex.customers.list(page_size=2).pages()]
        assert [len(page["items"]) for page in pages] == [2, 2, 1]
        assert [page["has_more"] for page in pages] == [True, True, False]
        assert {c["company_id"] for c in listed} == {str(tenant.company_id)}
        assert len(await other.customers.list().to_list()) == 1

        updated = await cortex.customers.update("cust-1", email="n1@example.com")
        assert updated["email"] == "n1@example.com" and (await cortex.customers.get("cust-1"))["email"] == \
            "n1@example.com"
        with pytest.raises(ConflictError):
            await cortex.customers.create(customer_id="cust-2")
        await cortex.customers.delete("cust-3")
        with pytest.raises(NotFoundError) as missing:
            await cortex.customers.get("cust-3")
        assert missing.value.status_code == 404 and missing.value.request_id
        with pytest.raises(NotFoundError):  # another company's customer is not there at all
            await other.customers.get(made[1]["id"])


async def test_errors_are_typed_by_status(tenant: Tenant, runtime: Any, live: LiveCortex) -> None:
    with Cortex("ck_not-a-key", base_url=live.base_url) as stranger, pytest.raises(AuthenticationError) as denied:
        stranger.agents.list().to_list()
    assert denied.value.status_code == 401

    chat_only = await make_key(runtime, tenant.company_id, ["chat"])
    with Cortex(chat_only, base_url=live.base_url) as narrow, pytest.raises(PermissionDeniedError):
        narrow.agents.list().to_list()

    with _client(live, tenant) as cortex:
        with pytest.raises(NotFoundError):
            cortex.agents.get(str(uuid.uuid4()))
        agent = cortex.agents.create(name="Errors agent", settings=NO_CACHE)
        with pytest.raises(UnprocessableEntityError) as invalid:
            cortex.chat(agent_id=agent["id"], conversation_id="not-a-uuid", customer_id="c", message="hi")
        assert "conversation_id" in invalid.value.field_errors
        assert invalid.value.errors[0].loc[0] == "body"

    limited = await make_key(runtime, tenant.company_id, ["*"], rate_limit_per_minute=1)
    with Cortex(limited, base_url=live.base_url, max_retries=0) as slow:
        slow.agents.list().to_list()
        with pytest.raises(RateLimitError) as limited_error:
            slow.agents.list().to_list()
    assert limited_error.value.status_code == 429
    assert limited_error.value.retry_after is not None and limited_error.value.retry_after > 0


async def test_a_chat_whose_answer_was_lost_is_retried_with_one_idempotency_key_and_runs_once(
        tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM, relay: Relay) -> None:
    with _client(live, tenant) as direct:
        agent = direct.agents.create(name="Retry agent", settings=NO_CACHE)
    conversation = str(uuid.uuid4())
    live_llm.queue(Reply(text="Only once."))
    relay.then(lose_answer(relay))
    with _client(relay, tenant, max_retries=2) as cortex:
        reply = cortex.chat(agent_id=agent["id"], conversation_id=conversation, customer_id="c-r", message="Hi")
        assert reply["reply"] == "Only once."
        first, second = _chats(relay)
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
        # The retry got the stored reply: one turn, not two.
        assert len(cortex.conversations.messages(conversation).to_list()) == 2
        assert len(live_llm.requests) == 1

    # Streaming: the same key on the retry of a stream that never opened.
    live_llm.queue(Reply(text="Streamed once."))
    relay.calls.clear()
    relay.then(lose_answer(relay))
    with _client(relay, tenant, max_retries=1) as cortex:
        events = list(cortex.chat_stream(agent_id=agent["id"], conversation_id=conversation, customer_id="c-r",
                                         message="Again"))
        assert events[-1].response is not None and events[-1].response["reply"] == "Streamed once."
        first, second = _chats(relay)
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
        assert len(cortex.conversations.messages(conversation).to_list()) == 4


async def test_retries_honour_retry_after_and_spare_unsafe_requests(
        tenant: Tenant, live: LiveCortex, relay: Relay) -> None:
    with _client(relay, tenant, max_retries=2) as cortex:
        relay.then(refuse(503, retry_after="1"))
        started = time.monotonic()
        cortex.agents.list().to_list()
        assert time.monotonic() - started >= 1.0  # waited as the server asked, not the 10 ms backoff
        assert len(relay.calls) == 2

        # A POST without an Idempotency-Key is not sent again after a 503: the server may have acted on it.
        relay.calls.clear()
        relay.then(refuse(503))
        with pytest.raises(InternalServerError) as unavailable:
            cortex.agents.create(name="Not twice")
        assert unavailable.value.status_code == 503 and len(relay.calls) == 1
        # ... but it is after a 429, which is refused before anything runs.
        relay.calls.clear()
        relay.then(refuse(429, retry_after="0"))
        assert cortex.agents.create(name="After a 429")["name"] == "After a 429"
        assert len(relay.calls) == 2

        relay.calls.clear()
        relay.then(*[refuse(502)] * 3)
        with pytest.raises(InternalServerError):
            cortex.agents.list().to_list()
        assert len(relay.calls) == 3  # the first try and max_retries=2 more

        relay.calls.clear()
        relay.then(refuse(503, retry_after="120"))  # longer than the client will wait: the caller decides
        with pytest.raises(InternalServerError):
            cortex.agents.list().to_list()
        assert len(relay.calls) == 1


async def test_timeouts_per_client_and_per_call_and_connection_errors(
        tenant: Tenant, live: LiveCortex, relay: Relay) -> None:
    relay.then(hold(2))
    with _client(relay, tenant, timeout=0.3, max_retries=0) as impatient, pytest.raises(APITimeoutError):
        impatient.agents.list().to_list()
    relay.then(hold(2))
    with _client(relay, tenant, timeout=30, max_retries=0) as patient:
        with pytest.raises(APITimeoutError):
            patient.agents.list(timeout=0.3).to_list()
        assert patient.agents.list(timeout=5).to_list() is not None

    with socket_closed_port() as port, Cortex(tenant.api_key, base_url=f"http://127.0.0.1:{port}", max_retries=1,
                                              backoff=FAST) as nowhere:
        with pytest.raises(APIConnectionError) as refused:
            nowhere.agents.list().to_list()
        assert not isinstance(refused.value, APITimeoutError)


class socket_closed_port:
    """A loopback port that nothing listens on (bound and closed, so not reused meanwhile by us)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


async def test_event_stream_reconnects_with_last_event_id(tenant: Tenant, live: LiveCortex, relay: Relay) -> None:
    with _client(live, tenant) as direct:
        [before] = [event["id"] for event in direct.events.list()][-1:] or [None]
        made = [direct.keys.create(name=f"k{i}", scopes=["chat"]) for i in range(3)]
        expected = [event for event in direct.events.list(types=["api_key.created"])
                    if event["data"].get("key_id") in {key["id"] for key in made}
                    or event["data"].get("id") in {key["id"] for key in made}]
    assert len(expected) == 3, expected
    relay.then(cut_after_first_event(relay))
    with _client(relay, tenant) as cortex:
        received = []
        stream = cortex.events.stream(types=["api_key.created"], last_event_id=before)
        for event in stream:
            received.append(event)
            if len(received) == 3:
                break
    assert [event["id"] for event in received] == [event["id"] for event in expected]
    opened = [call for call in relay.calls if call.path == "/v1/events/stream"]
    assert len(opened) == 2
    assert opened[1].headers["last-event-id"] == received[0]["id"]


async def test_knowledge_upload_reports_progress_and_the_document_is_searchable(
        tenant: Tenant, live: LiveCortex) -> None:
    text = ("# Returns\n\nItems can be returned within 30 days of delivery with the receipt.\n\n" * 40).encode()
    seen: list[tuple[int, int]] = []
    with _client(live, tenant, timeout=120) as cortex:
        source = cortex.knowledge.sources.create(name="Policies")
        accepted = cortex.knowledge.upload(source["id"], text, filename="returns.md",
                                           on_progress=lambda sent, total: seen.append((sent, total)),
                                           run_async=True)
        assert seen and seen[-1] == (len(text), len(text))
        assert [sent for sent, _ in seen] == sorted(sent for sent, _ in seen)
        job = cortex.knowledge.jobs.wait(accepted["job_id"], poll_seconds=0.2, timeout_seconds=120)
        assert job["status"] == "completed", job
        [document] = cortex.knowledge.sources.documents(source["id"]).to_list()
        assert document["name"] == "returns.md" and document["status"] == "ready"
        agent = cortex.agents.create(name="KB agent", knowledge_source_ids=[source["id"]], settings=NO_CACHE)
        found = cortex.knowledge.search(agent_id=agent["id"], query="how many days to return an item",
                                        mode="dense")
        assert found["results"] and "30 days" in found["results"][0]["text"]
        cortex.knowledge.documents.delete(document["id"])
        with pytest.raises(NotFoundError):
            cortex.knowledge.documents.get(document["id"])


async def test_webhooks_verify_a_real_delivery(tenant: Tenant, live: LiveCortex, webhooks: WebhookTarget) -> None:
    with _client(live, tenant) as cortex:
        endpoint = cortex.webhooks.create(url=webhooks.base_url + "/hooks/cortex", event_types=["webhook.test"])
        secret = endpoint["secret"]
        assert secret.startswith("whsec_") and "secret" not in cortex.webhooks.get(endpoint["id"])
        cortex.webhooks.test(endpoint["id"])
        live.call(run_jobs(live.runtime, queues=(WEBHOOK_QUEUE,)))  # the live server runs no worker of its own
        await eventually(_returns(lambda: webhooks.calls), within=30)
        [call] = webhooks.calls
        event = cortex_webhooks.verify(call.body, call.headers, secret)
        assert event["type"] == "webhook.test"
        deliveries = cortex.webhooks.deliveries(endpoint["id"]).to_list()
        assert len(deliveries) == 1 and deliveries[0]["event_type"] == "webhook.test"

    verify = cortex_webhooks.verify
    with pytest.raises(cortex_webhooks.WebhookVerificationError):
        verify(call.body + b" ", call.headers, secret)  # the body changed
    with pytest.raises(cortex_webhooks.WebhookVerificationError):
        verify(call.body, call.headers, "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB")  # another secret
    with pytest.raises(cortex_webhooks.WebhookVerificationError):  # replayed an hour later
        verify(call.body, call.headers, secret, now=int(call.headers["webhook-timestamp"]) + 3600)
    with pytest.raises(cortex_webhooks.WebhookVerificationError):
        verify(call.body, {k: v for k, v in call.headers.items() if k != "webhook-signature"}, secret)


async def test_memory_cache_keys_and_metrics(tenant: Tenant, live: LiveCortex) -> None:
    async with AsyncCortex(tenant.api_key, base_url=live.base_url, company_id=str(tenant.company_id)) as cortex:
        await cortex.customers.create(customer_id="mem-1")
        saved = await cortex.memory.save("mem-1", fact="Prefers email over phone", category="preference")
        memory = await cortex.memory.get("mem-1")
        assert memory["fact_count"] == 1 and "email" in str(memory["facts"])
        facts = await cortex.customers.facts("mem-1").to_list()
        assert [(f["id"], f["fact"]) for f in facts] == [(saved["fact_id"], "Prefers email over phone")]
        assert (await cortex.memory.delete_fact(saved["fact_id"]))["deleted"] is True
        assert (await cortex.memory.get("mem-1"))["fact_count"] == 0

        stats = await cortex.cache.stats()
        assert "hit_rate" in stats
        agent = await cortex.agents.create(name="Cache agent")
        flushed = await cortex.cache.flush(agent_id=agent["id"])
        assert "entries_deleted" in flushed

        key = await cortex.keys.create(name="temp", scopes=["metrics"])
        assert key["key"] and key["id"] in [k["id"] async for k in cortex.keys.list()]
        async with AsyncCortex(key["key"], base_url=live.base_url) as metrics_only:
            text = await metrics_only.metrics.prometheus()
            assert "cortex_http_requests_total" in text
            dashboard = await metrics_only.metrics.dashboard(days=1)
            assert "cost" in dashboard
        assert (await cortex.keys.revoke(key["id"]))["revoked"] is True
        with pytest.raises(AuthenticationError):
            async with AsyncCortex(key["key"], base_url=live.base_url, max_retries=0) as revoked:
                await revoked.metrics.prometheus()


def test_the_sync_client_is_generated_from_the_async_one() -> None:
    check = subprocess.run([sys.executable, str(CLIENT_DIR / "scripts" / "unasync.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


async def test_a_turn_failing_before_or_after_the_stream_opened(
        tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM) -> None:
    with _client(live, tenant, max_retries=0) as cortex:
        agent = cortex.agents.create(name="Failing agent", settings={**NO_CACHE, "offline_fallback": True})
        live_llm.queue(Reply(text="one two three four five", fail_after_tokens=2))
        received: list[str] = []
        with pytest.raises(StreamError) as broke:
            for event in cortex.chat_stream(agent_id=agent["id"], conversation_id=str(uuid.uuid4()),
                                            customer_id="c-f", message="Tell me"):
                received.append(event.event)
        assert broke.value.status_code == 503 and broke.value.code == "service_unavailable"
        assert broke.value.request_id and "delta" in received

        plain = cortex.agents.create(name="Down agent", settings=NO_CACHE)
        live_llm.script = lambda body: Reply(status=503)
        with pytest.raises(InternalServerError) as down:
            list(cortex.chat_stream(agent_id=plain["id"], conversation_id=str(uuid.uuid4()), customer_id="c-f",
                                    message="Hi"))
        assert down.value.status_code == 503 and down.value.request_id
