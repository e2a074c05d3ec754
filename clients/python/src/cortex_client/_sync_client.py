"""Cortex: the synchronous client.

GENERATED from `_async_client.py` by `scripts/unasync.py`: edit that file and run the script.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import httpx
from httpx_sse import EventSource

from cortex_client import _version
from cortex_client._errors import (
    APIConnectionError,
    APITimeoutError,
    CortexError,
    StreamError,
    error_for,
)
from cortex_client._retry import MAX_RETRY_AFTER_SECONDS, RETRY_STATUSES, Backoff, parse_retry_after
from cortex_client._upload import FileInput, ProgressCallback, open_upload
from cortex_client.types import (
    Action,
    Agent,
    ApiKey,
    CacheStats,
    ChatEvent,
    ChatResponse,
    Conversation,
    Customer,
    CustomerMemory,
    Delivery,
    Event,
    Fact,
    IngestResult,
    Job,
    KnowledgeDocument,
    KnowledgeSource,
    Message,
    Page,
    SearchResults,
    Webhook,
)

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_PAGE_SIZE = 100
# Methods that mean the same thing when sent twice: retried on any transient failure. A POST is
# retried only when it carries an Idempotency-Key, or when the server cannot have acted on it.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})

Timeout = float | httpx.Timeout | None


def _clean(params: Mapping[str, Any]) -> dict[str, Any]:
    """Query parameters without the unset ones; datetimes as ISO 8601, sequences comma-joined."""
    cleaned: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        cleaned[key] = value
    return cleaned


def _more(body: Mapping[str, Any], page: int, count: int) -> bool:
    """Whether a page after `page` may hold items: the server's `has_more`/`total_pages` when it sends
    them, else the count; an empty page always ends the walk."""
    if count == 0:
        return False
    if "has_more" in body:
        return bool(body["has_more"])
    if "total_pages" in body:
        return page < int(body["total_pages"])
    if "total_count" in body and "page_size" in body:
        return page * int(body["page_size"]) < int(body["total_count"])
    return True


def _sse_json(data: str) -> dict[str, Any]:
    value = json.loads(data)
    return value if isinstance(value, dict) else {"data": value}


class Paginator(Generic[T]):
    """Every item of a list endpoint, fetched a page at a time as the iteration reaches it.

    `for item in paginator` walks the items; `paginator.pages()` the page objects themselves.
    """

    def __init__(self, client: Cortex, path: str, params: Mapping[str, Any], *,
                 page_size: int = DEFAULT_PAGE_SIZE, first_page: int = 1, timeout: Timeout = None) -> None:
        self._client = client
        self._path = path
        self._params = _clean(params)
        self._page_size = page_size
        self._first_page = first_page
        self._timeout = timeout

    def pages(self) -> Iterator[Page[T]]:
        page = self._first_page
        while True:
            body = self._client.get(self._path, params={**self._params, "page": page,
                                                              "page_size": self._page_size}, timeout=self._timeout)
            yield cast(Page[T], body)
            if not _more(body, page, len(body.get("items") or [])):
                return
            page += 1

    def __iter__(self) -> Iterator[T]:
        return self._items()

    def _items(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.get("items") or []

    def to_list(self) -> list[T]:
        return [item for item in self]


class Cortex:
    """A Cortex API client.

    `api_key` and `base_url` default to CORTEX_API_KEY and CORTEX_API_URL; `company_id` (CORTEX_COMPANY_ID)
    fills the calls whose body names the company (chat, memory, cache). `timeout` (seconds, or an
    httpx.Timeout) and `max_retries` apply to every call unless the call gives its own.
    """

    def __init__(self, api_key: str | None = None, *, base_url: str | None = None, company_id: str | None = None,
                 timeout: float | httpx.Timeout = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
                 backoff: Backoff | None = None, http_client: httpx.Client | None = None,
                 default_headers: Mapping[str, str] | None = None) -> None:
        key = api_key or os.environ.get("CORTEX_API_KEY")
        if not key:
            raise CortexError("no API key: pass api_key or set CORTEX_API_KEY")
        self.base_url = (base_url or os.environ.get("CORTEX_API_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.company_id = company_id or os.environ.get("CORTEX_COMPANY_ID") or None
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self._headers = {"Authorization": f"Bearer {key}", "User-Agent": f"cortex-client-python/{_version.VERSION}",
                         **(default_headers or {})}
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self.agents = Agents(self)
        self.actions = Actions(self)
        self.knowledge = Knowledge(self)
        self.memory = Memory(self)
        self.customers = Customers(self)
        self.conversations = Conversations(self)
        self.messages = Messages(self)
        self.cache = Cache(self)
        self.keys = Keys(self)
        self.webhooks = Webhooks(self)
        self.events = Events(self)
        self.metrics = Metrics(self)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Cortex:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the transport ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                      data: Mapping[str, Any] | None = None, files: Mapping[str, Any] | None = None,
                      headers: Mapping[str, str] | None = None, timeout: Timeout = None,
                      max_retries: int | None = None, idempotent: bool | None = None,
                      stream: bool = False) -> httpx.Response:
        """Send a request, retrying transient failures; an error status raises its typed error.

        With `stream`, the answer's body is left unread (the caller reads and closes it).
        """
        retries = self.max_retries if max_retries is None else max_retries
        send_headers = {**self._headers, **(headers or {})}
        safe = (method.upper() in _IDEMPOTENT or "Idempotency-Key" in send_headers) if idempotent is None \
            else idempotent
        attempt = 0
        while True:
            attempt += 1
            request = self._http.build_request(
                method, self.base_url + path, params=_clean(params or {}), json=json, data=data, files=files,
                headers=send_headers, timeout=self.timeout if timeout is None else timeout)
            retry_after: float | None = None
            error: CortexError
            try:
                response = self._http.send(request, stream=True)
            except httpx.TimeoutException as exc:
                error = APITimeoutError(f"{method} {path} timed out", request=request)
                # Nothing was sent when the connection or the pool timed out.
                retryable = safe or isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
                cause: BaseException = exc
            except httpx.TransportError as exc:
                error = APIConnectionError(f"{method} {path}: {exc}", request=request)
                retryable = safe or isinstance(exc, httpx.ConnectError)
                cause = exc
            else:
                if response.status_code < 400:
                    if not stream:
                        response.read()
                    return response
                response.read()
                error = cause = error_for(response)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                # A 429 is refused before the server acts on the request: safe to send again.
                retryable = response.status_code in RETRY_STATUSES and (safe or response.status_code == 429)
            if not retryable or attempt > retries or (retry_after or 0) > MAX_RETRY_AFTER_SECONDS:
                raise error from (None if cause is error else cause)
            time.sleep(self.backoff.delay(attempt, retry_after))

    def _json(self, method: str, path: str, **options: Any) -> Any:
        response = self.request(method, path, **options)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **options: Any) -> Any:
        return self._json("GET", path, **options)

    def post(self, path: str, **options: Any) -> Any:
        return self._json("POST", path, **options)

    def patch(self, path: str, **options: Any) -> Any:
        return self._json("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Any:
        return self._json("DELETE", path, **options)

    def _company(self, company_id: str | None) -> str:
        chosen = company_id or self.company_id
        if not chosen:
            raise CortexError("this call needs a company_id: pass it, or give the client company_id "
                              "(or set CORTEX_COMPANY_ID)")
        return str(chosen)

    # --- chat ----------------------------------------------------------------------------------------------

    def _chat_body(self, agent_id: str, conversation_id: str, customer_id: str, message: str,
                   channel: str | None, metadata: Mapping[str, Any] | None, company_id: str | None,
                   stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"company_id": self._company(company_id), "agent_id": str(agent_id),
                                "conversation_id": str(conversation_id), "customer_id": customer_id,
                                "message": message, "stream": stream}
        if channel is not None:
            body["channel"] = channel
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return body

    def chat(self, *, agent_id: str, conversation_id: str, customer_id: str, message: str,
                   channel: str | None = None, metadata: Mapping[str, Any] | None = None,
                   company_id: str | None = None, idempotency_key: str | None = None, timeout: Timeout = None,
                   max_retries: int | None = None) -> ChatResponse:
        """One customer message, one reply. Every attempt carries the same Idempotency-Key (one is made
        when none is given), so a retry after a lost answer gets the stored reply, not a second turn."""
        body = self._chat_body(agent_id, conversation_id, customer_id, message, channel, metadata, company_id,
                               stream=False)
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        return cast(ChatResponse, self.post("/v1/chat", json=body, headers=headers, timeout=timeout,
                                                  max_retries=max_retries))

    def chat_stream(self, *, agent_id: str, conversation_id: str, customer_id: str, message: str,
                          channel: str | None = None, metadata: Mapping[str, Any] | None = None,
                          company_id: str | None = None, idempotency_key: str | None = None,
                          timeout: Timeout = None, max_retries: int | None = None) -> Iterator[ChatEvent]:
        """The reply as it is written: `step`, `delta` and `tool` events, ending with `done`.

        A turn that fails before the stream starts raises its typed error; one that fails after raises
        StreamError. Retries (before the stream starts) reuse one Idempotency-Key.
        """
        body = self._chat_body(agent_id, conversation_id, customer_id, message, channel, metadata, company_id,
                               stream=True)
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4()), "Accept": "text/event-stream"}
        response = self.request("POST", "/v1/chat", json=body, headers=headers, timeout=timeout,
                                      max_retries=max_retries, stream=True)
        try:
            for sse in EventSource(response).iter_sse():
                if not sse.data:
                    continue
                payload = _sse_json(sse.data)
                name = str(payload.pop("event", None) or sse.event)
                if name == "error":
                    raise StreamError(str(payload.get("message", "the turn failed")),
                                      status_code=int(payload.get("status") or 500), code=payload.get("code"),
                                      request_id=payload.get("request_id"))
                yield ChatEvent(name, payload, int(sse.id) if sse.id and sse.id.isdigit() else None)
                if name == "done":
                    return
        except httpx.TimeoutException as exc:
            raise APITimeoutError("the chat stream timed out") from exc
        except httpx.TransportError as exc:
            raise APIConnectionError(f"the chat stream broke: {exc}") from exc
        finally:
            response.close()


class _Resource:
    def __init__(self, client: Cortex) -> None:
        self._client = client

    def _list(self, path: str, params: Mapping[str, Any], page_size: int, timeout: Timeout) -> Paginator[Any]:
        return Paginator(self._client, path, params, page_size=page_size, timeout=timeout)


class Agents(_Resource):
    def create(self, *, name: str, **fields: Any) -> Agent:
        return cast(Agent, self._client.post("/v1/agents", json={"name": name, **fields}))

    def list(self, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None,
             **filters: Any) -> Paginator[Agent]:
        return self._list("/v1/agents", filters, page_size, timeout)

    def get(self, agent_id: str) -> Agent:
        return cast(Agent, self._client.get(f"/v1/agents/{agent_id}"))

    def config(self, agent_id: str) -> dict[str, Any]:
        """The compiled configuration the pipeline runs with."""
        return cast(dict[str, Any], self._client.get(f"/v1/agents/{agent_id}/config"))

    def update(self, agent_id: str, **fields: Any) -> Agent:
        return cast(Agent, self._client.patch(f"/v1/agents/{agent_id}", json=fields))

    def delete(self, agent_id: str) -> None:
        self._client.delete(f"/v1/agents/{agent_id}")


class Actions(_Resource):
    def create(self, *, name: str, webhook_url: str, **fields: Any) -> Action:
        return cast(Action, self._client.post("/v1/actions", json={"name": name, "webhook_url": webhook_url,
                                                                         **fields}))

    def list(self, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None,
             **filters: Any) -> Paginator[Action]:
        return self._list("/v1/actions", filters, page_size, timeout)

    def get(self, action_id: str) -> Action:
        return cast(Action, self._client.get(f"/v1/actions/{action_id}"))

    def update(self, action_id: str, **fields: Any) -> Action:
        return cast(Action, self._client.patch(f"/v1/actions/{action_id}", json=fields))

    def delete(self, action_id: str) -> None:
        self._client.delete(f"/v1/actions/{action_id}")


class KnowledgeSources(_Resource):
    def create(self, *, name: str, **fields: Any) -> KnowledgeSource:
        return cast(KnowledgeSource, self._client.post("/v1/knowledge/sources", json={"name": name, **fields}))

    def list(self, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None,
             **filters: Any) -> Paginator[KnowledgeSource]:
        return self._list("/v1/knowledge/sources", filters, page_size, timeout)

    def get(self, source_id: str) -> KnowledgeSource:
        return cast(KnowledgeSource, self._client.get(f"/v1/knowledge/sources/{source_id}"))

    def update(self, source_id: str, **fields: Any) -> KnowledgeSource:
        return cast(KnowledgeSource, self._client.patch(f"/v1/knowledge/sources/{source_id}", json=fields))

    def delete(self, source_id: str) -> None:
        self._client.delete(f"/v1/knowledge/sources/{source_id}")

    def documents(self, source_id: str, *, status: str | None = None, page_size: int = DEFAULT_PAGE_SIZE,
                  timeout: Timeout = None, **filters: Any) -> Paginator[KnowledgeDocument]:
        return self._list(f"/v1/knowledge/sources/{source_id}/documents", {"status": status, **filters}, page_size,
                          timeout)


class KnowledgeDocuments(_Resource):
    def get(self, document_id: str) -> KnowledgeDocument:
        return cast(KnowledgeDocument, self._client.get(f"/v1/knowledge/documents/{document_id}"))

    def delete(self, document_id: str) -> None:
        self._client.delete(f"/v1/knowledge/documents/{document_id}")

    def retry(self, document_id: str, *, run_async: bool | None = None) -> IngestResult:
        body = None if run_async is None else {"async": run_async}
        return cast(IngestResult, self._client.post(f"/v1/knowledge/documents/{document_id}/retry", json=body))


class Jobs(_Resource):
    def get(self, job_id: str) -> Job:
        return cast(Job, self._client.get(f"/v1/jobs/{job_id}"))

    def wait(self, job_id: str, *, poll_seconds: float = 0.5, timeout_seconds: float = 600.0) -> Job:
        """Poll the job until it is completed or failed (raises APITimeoutError after `timeout_seconds`)."""
        waited = 0.0
        while True:
            job = self.get(job_id)
            if job.get("status") in ("completed", "failed"):
                return job
            if waited >= timeout_seconds:
                raise APITimeoutError(f"job {job_id} still {job.get('status')} after {timeout_seconds}s")
            time.sleep(poll_seconds)
            waited += poll_seconds


class Knowledge(_Resource):
    def __init__(self, client: Cortex) -> None:
        super().__init__(client)
        self.sources = KnowledgeSources(client)
        self.documents = KnowledgeDocuments(client)
        self.jobs = Jobs(client)

    def upload(self, source_id: str, file: FileInput, *, filename: str | None = None,
                     on_progress: ProgressCallback | None = None, user_id: str | None = None,
                     embedding_model: str | None = None, run_async: bool | None = None,
                     timeout: Timeout = None) -> IngestResult:
        """Upload a document (a path, bytes or a binary file) into a source; `on_progress(sent, total)` is
        called as the body is sent. With `run_async=True` the answer is the accepted job (`job_id`)."""
        name, reader, content_type, close = open_upload(file, filename, on_progress)
        form = _clean({"user_id": user_id, "embedding_model": embedding_model, "async": run_async})
        try:
            return cast(IngestResult, self._client.post(
                f"/v1/knowledge/sources/{source_id}/files", files={"file": (name, reader, content_type)}, data=form,
                timeout=timeout))
        finally:
            close()

    def ingest_url(self, source_id: str, url: str, *, user_id: str, embedding_model: str | None = None,
                         run_async: bool | None = None) -> IngestResult:
        body = _clean({"source_id": source_id, "url": url, "user_id": user_id, "embedding_model": embedding_model})
        if run_async is not None:
            body["async"] = run_async
        return cast(IngestResult, self._client.post("/v1/knowledge/ingest/url", json=body))

    def ingest_documents(self, agent_id: str, *, user_id: str, company_id: str | None = None,
                               embedding_model: str | None = None, run_async: bool | None = None) -> dict[str, Any]:
        """Ingest the agent's own documents (its FAQs, scenarios, ...) into its knowledge."""
        body: dict[str, Any] = _clean({"agent_id": agent_id, "company_id": self._client._company(company_id),
                                       "user_id": user_id, "embedding_model": embedding_model})
        if run_async is not None:
            body["async"] = run_async
        return cast(dict[str, Any], self._client.post("/v1/knowledge/ingest/documents", json=body))

    def reembed(self, source_id: str, *, embedding_model: str | None = None,
                      run_async: bool | None = None) -> dict[str, Any]:
        body: dict[str, Any] = _clean({"source_id": source_id, "embedding_model": embedding_model})
        if run_async is not None:
            body["async"] = run_async
        return cast(dict[str, Any], self._client.post("/v1/knowledge/reembed", json=body))

    def search(self, *, agent_id: str, query: str, top_k: int | None = None,
                     mode: str | None = None) -> SearchResults:
        body = _clean({"agent_id": agent_id, "query": query, "top_k": top_k, "mode": mode})
        return cast(SearchResults, self._client.post("/v1/knowledge/search", json=body))


class Memory(_Resource):
    def get(self, customer_id: str, *, query: str | None = None, company_id: str | None = None) -> CustomerMemory:
        """What Cortex remembers about a customer (with `query`: what it would recall for that message)."""
        body = _clean({"company_id": self._client._company(company_id), "query": query})
        return cast(CustomerMemory, self._client.post(f"/v1/memory/{customer_id}", json=body, idempotent=True))

    def save(self, customer_id: str, *, fact: str, company_id: str | None = None,
                   **fields: Any) -> dict[str, Any]:
        body = {"company_id": self._client._company(company_id), "fact": fact, **fields}
        return cast(dict[str, Any], self._client.post(f"/v1/memory/{customer_id}/save", json=body))

    def delete_fact(self, fact_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._client.delete(f"/v1/memory/fact/{fact_id}"))

    def forget(self, customer_id: str, *, company_id: str | None = None) -> dict[str, Any]:
        """Erase the customer: facts, messages, conversations and cached answers (the answer counts them)."""
        return cast(dict[str, Any], self._client.delete(
            f"/v1/memory/{customer_id}", params={"company_id": self._client._company(company_id)}))


class Customers(_Resource):
    def create(self, *, customer_id: str, **fields: Any) -> Customer:
        return cast(Customer, self._client.post("/v1/customers", json={"customer_id": customer_id, **fields}))

    def list(self, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None,
             **filters: Any) -> Paginator[Customer]:
        return self._list("/v1/customers", filters, page_size, timeout)

    def get(self, ref: str) -> Customer:
        """`ref` is Cortex's id or the company's own customer id."""
        return cast(Customer, self._client.get(f"/v1/customers/{ref}"))

    def update(self, ref: str, **fields: Any) -> Customer:
        return cast(Customer, self._client.patch(f"/v1/customers/{ref}", json=fields))

    def delete(self, ref: str) -> None:
        self._client.delete(f"/v1/customers/{ref}")

    def facts(self, ref: str, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None,
              **filters: Any) -> Paginator[Fact]:
        """The customer's memory facts (GET /v1/customers/{ref}/facts)."""
        return self._list(f"/v1/customers/{ref}/facts", filters, page_size, timeout)


class Conversations(_Resource):
    def list(self, *, customer_id: str | None = None, agent_id: str | None = None,
             page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None,
             **filters: Any) -> Paginator[Conversation]:
        return self._list("/v1/conversations", {"customer_id": customer_id, "agent_id": agent_id, **filters},
                          page_size, timeout)

    def messages(self, conversation_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None,
                 **filters: Any) -> Paginator[Message]:
        return self._list(f"/v1/conversations/{conversation_id}/messages", filters, page_size, timeout)


class Messages(_Resource):
    def list(self, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None,
             **filters: Any) -> Paginator[Message]:
        """Messages across the company's conversations (GET /v1/messages); filters such as
        `conversation_id`, `agent_id`, `customer_id`, `channel`, `created_after` and `sort`."""
        return self._list("/v1/messages", filters, page_size, timeout)


class Cache(_Resource):
    def warm(self, *, agent_id: str, pairs: Sequence[Mapping[str, Any]],
                   company_id: str | None = None) -> dict[str, Any]:
        body = {"company_id": self._client._company(company_id), "agent_id": agent_id,
                "pairs": [dict(pair) for pair in pairs]}
        return cast(dict[str, Any], self._client.post("/v1/cache/warm", json=body))

    def flush(self, *, agent_id: str | None = None, company_id: str | None = None) -> dict[str, Any]:
        params = {"company_id": self._client._company(company_id), "agent_id": agent_id}
        return cast(dict[str, Any], self._client.delete("/v1/cache/flush", params=params))

    def stats(self) -> CacheStats:
        return cast(CacheStats, self._client.get("/v1/cache/stats"))


class Keys(_Resource):
    def create(self, *, name: str, scopes: Sequence[str] | None = None, expires_in_days: int | None = None,
                     rate_limit_per_minute: int | None = None) -> ApiKey:
        """A new API key of this company; its raw `key` is in this answer only."""
        body = _clean({"name": name, "expires_in_days": expires_in_days,
                       "rate_limit_per_minute": rate_limit_per_minute})
        if scopes is not None:
            body["scopes"] = list(scopes)
        return cast(ApiKey, self._client.post("/v1/keys", json=body))

    def list(self, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None,
             **filters: Any) -> Paginator[ApiKey]:
        return self._list("/v1/keys", filters, page_size, timeout)

    def revoke(self, key_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._client.delete(f"/v1/keys/{key_id}"))


class Webhooks(_Resource):
    def create(self, *, url: str, event_types: Sequence[str] | None = None, description: str | None = None,
                     enabled: bool | None = None) -> Webhook:
        """A webhook endpoint; its signing `secret` is in this answer only."""
        body: dict[str, Any] = _clean({"url": url, "description": description})
        if event_types is not None:
            body["event_types"] = list(event_types)
        if enabled is not None:
            body["enabled"] = enabled
        return cast(Webhook, self._client.post("/v1/webhooks", json=body))

    def list(self, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None,
             **filters: Any) -> Paginator[Webhook]:
        return self._list("/v1/webhooks", filters, page_size, timeout)

    def get(self, webhook_id: str) -> Webhook:
        return cast(Webhook, self._client.get(f"/v1/webhooks/{webhook_id}"))

    def update(self, webhook_id: str, **fields: Any) -> Webhook:
        return cast(Webhook, self._client.patch(f"/v1/webhooks/{webhook_id}", json=fields))

    def delete(self, webhook_id: str) -> None:
        self._client.delete(f"/v1/webhooks/{webhook_id}")

    def rotate_secret(self, webhook_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._client.post(f"/v1/webhooks/{webhook_id}/rotate-secret"))

    def test(self, webhook_id: str) -> Delivery:
        """Queue a `webhook.test` delivery to the endpoint."""
        return cast(Delivery, self._client.post(f"/v1/webhooks/{webhook_id}/test"))

    def deliveries(self, webhook_id: str, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None,
                   **filters: Any) -> Paginator[Delivery]:
        return self._list(f"/v1/webhooks/{webhook_id}/deliveries", filters, page_size, timeout)

    def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery:
        return cast(Delivery, self._client.post(
            f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"))


class Events(_Resource):
    def list(self, *, types: Sequence[str] | None = None, after: str | None = None,
             page_size: int = DEFAULT_PAGE_SIZE, timeout: Timeout = None, **filters: Any) -> Paginator[Event]:
        return self._list("/v1/events", {"type": types, "after": after, **filters}, page_size, timeout)

    def stream_token(self) -> dict[str, Any]:
        """A short-lived token for clients that cannot send headers (EventSource, browser WebSockets)."""
        return cast(dict[str, Any], self._client.post("/v1/events/stream-token"))

    def stream(self, *, types: Sequence[str] | None = None, after: str | None = None,
                     last_event_id: str | None = None, reconnect: bool = True,
                     timeout: Timeout = None) -> Iterator[Event]:
        """The company's events as they happen, for ever (break out of the loop to stop).

        Starts after `last_event_id` (or `after`), else at the newest event. When the connection drops
        it reconnects with `Last-Event-ID` set to the last event seen, so nothing is missed or repeated;
        it gives up (APIConnectionError) after `max_retries` failed reconnections in a row.
        """
        last = last_event_id
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last:
                headers["Last-Event-ID"] = last
            params = {"type": types, "after": None if last else after}
            try:
                response = self._client.request("GET", "/v1/events/stream", params=params, headers=headers,
                                                      timeout=timeout, stream=True)
                try:
                    for sse in EventSource(response).iter_sse():
                        if not sse.data:
                            continue
                        event = cast(Event, _sse_json(sse.data))
                        last = sse.id or str(event.get("id") or "") or last
                        failures = 0
                        yield event
                finally:
                    response.close()
            except (httpx.TransportError, APIConnectionError) as exc:
                failures += 1
                if not reconnect or failures > self._client.max_retries:
                    if isinstance(exc, APIConnectionError):
                        raise
                    raise APIConnectionError(f"the event stream broke: {exc}") from exc
            if not reconnect:
                return
            time.sleep(self._client.backoff.delay(max(failures, 1)))


class Metrics(_Resource):
    def prometheus(self) -> str:
        """GET /v1/metrics: the Prometheus text exposition."""
        response = self._client.request("GET", "/v1/metrics")
        return response.text

    def dashboard(self, *, days: int | None = None, agent_id: str | None = None) -> dict[str, Any]:
        return cast(dict[str, Any], self._client.get("/v1/metrics/dashboard",
                                                           params={"days": days, "agent_id": agent_id}))
