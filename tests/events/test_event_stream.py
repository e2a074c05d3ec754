"""GET /v1/events/stream over a real loopback server: live events, resume without gaps, heartbeats, stream tokens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
import pytest
import uvicorn

from cortex.app import create_app
from cortex.events import outbox
from cortex.kit.runtime import Runtime
from tests.scripted_llm import _free_port
from tests.support import Tenant, make_key


@pytest.fixture
async def server(runtime: Runtime) -> AsyncIterator[str]:
    """The app on a loopback port, in this test's event loop (it shares the test runtime)."""
    port = _free_port()
    uvicorn_server = uvicorn.Server(uvicorn.Config(create_app(runtime=runtime), host="127.0.0.1", port=port,
                                                   log_level="warning", lifespan="off"))
    uvicorn_server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(uvicorn_server.serve())
    while not uvicorn_server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uvicorn_server.should_exit = True
        await asyncio.wait_for(task, 10)


class Stream:
    """Reads frames in a task of its own: a wait that times out must not cancel the read of the response."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self.comments: list[str] = []
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(lines))

    async def _read(self, lines: AsyncIterator[str]) -> None:
        frame: dict[str, str] = {}
        async for line in lines:
            if line.startswith(":"):
                self.comments.append(line)
            elif not line:
                if frame:
                    data: dict[str, Any] = json.loads(frame["data"])
                    assert frame["id"] == data["id"] and frame["event"] == data["type"]
                    self._events.put_nowait(data)
                frame = {}
            else:
                field, _, value = line.partition(": ")
                frame[field] = value

    async def next_event(self, within: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self._events.get(), within)

    async def nothing_for(self, seconds: float) -> None:
        with pytest.raises(TimeoutError):
            await self.next_event(within=seconds)

    async def ended(self, within: float) -> None:
        """The server closed the body (it ends it when the stream's access ends)."""
        await asyncio.wait_for(asyncio.shield(self._reader), within)

    async def close(self) -> None:
        self._reader.cancel()
        with suppress(asyncio.CancelledError):
            await self._reader


@asynccontextmanager
async def open_stream(base_url: str, *, headers: dict[str, str] | None = None,
                      params: dict[str, str] | None = None) -> AsyncIterator[Stream]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http, \
            http.stream("GET", "/v1/events/stream", headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response.aiter_lines())
        try:
            yield stream
        finally:
            await stream.close()


async def record(runtime: Runtime, tenant: Tenant, n: int, type: str = "cache.flushed") -> list[str]:
    ids = []
    for i in range(n):
        async with runtime.database.session() as session:
            ids.append(str(await outbox.record(session, tenant.company_id, type, {"entries_deleted": i})))
    return ids


async def test_live_events_arrive_in_order_and_a_resume_loses_nothing(
        server: str, runtime: Runtime, tenant: Tenant, other_tenant: Tenant) -> None:
    async with open_stream(server, headers=tenant.headers) as stream:
        first = await record(runtime, tenant, 3)
        await record(runtime, other_tenant, 2)  # never shown to this company
        assert [(await stream.next_event())["id"] for _ in range(3)] == first
        # Idle: only heartbeats.
        await stream.nothing_for(1.2)
        assert ": ping" in stream.comments
    missed = await record(runtime, tenant, 2)  # while disconnected
    async with open_stream(server, headers={**tenant.headers, "Last-Event-ID": first[-1]}) as stream:
        assert [(await stream.next_event())["id"] for _ in range(2)] == missed
        live = await record(runtime, tenant, 1)
        assert (await stream.next_event())["id"] == live[0]
    async with open_stream(server, headers=tenant.headers, params={"after": first[0]}) as stream:
        assert [(await stream.next_event())["id"] for _ in range(5)] == [*first[1:], *missed, *live]


async def test_an_event_committed_late_is_not_skipped(server: str, runtime: Runtime, tenant: Tenant) -> None:
    async with open_stream(server, headers=tenant.headers) as stream:
        async with runtime.database.session() as slow:
            early = await outbox.record(slow, tenant.company_id, "cache.flushed", {"entries_deleted": 1})
            later = await record(runtime, tenant, 1)  # committed first, though it came second
            # Shown only after the open transaction ends, so a reader's position never passes `early`.
            await stream.nothing_for(0.6)
        assert [(await stream.next_event())["id"] for _ in range(2)] == [str(early), later[0]]


async def test_the_type_filter(server: str, runtime: Runtime, tenant: Tenant) -> None:
    async with open_stream(server, headers=tenant.headers, params={"type": "api_key.revoked"}) as stream:
        await record(runtime, tenant, 2)
        wanted = await record(runtime, tenant, 1, type="api_key.revoked")
        assert (await stream.next_event())["id"] == wanted[0]


async def test_a_browser_streams_with_a_short_lived_token(server: str, runtime: Runtime, tenant: Tenant) -> None:
    async with httpx.AsyncClient(base_url=server) as http:
        issued = await http.post("/v1/events/stream-token", headers=tenant.headers)
        assert issued.status_code == 200, issued.text
        token = issued.json()["token"]
        assert (await http.get("/v1/events/stream", params={"token": "nope"})).status_code == 401
        assert (await http.get("/v1/events/stream")).status_code == 401
        key = await make_key(runtime, tenant.company_id, ["chat"])
        denied = await http.post("/v1/events/stream-token", headers={"Authorization": f"Bearer {key}"})
        assert denied.status_code == 403
    async with open_stream(server, params={"token": token}) as stream:
        ids = await record(runtime, tenant, 1)
        assert (await stream.next_event())["id"] == ids[0]


async def test_a_token_dies_with_its_key(server: str, runtime: Runtime, client: httpx.AsyncClient,
                                         tenant: Tenant) -> None:
    created = await client.post("/v1/keys", json={"name": "browser", "scopes": ["events"]}, headers=tenant.headers)
    key = created.json()
    async with httpx.AsyncClient(base_url=server) as http:
        token = (await http.post("/v1/events/stream-token",
                                 headers={"Authorization": f"Bearer {key['key']}"})).json()["token"]
        assert (await client.delete(f"/v1/keys/{key['id']}", headers=tenant.headers)).status_code == 200
        assert (await http.get("/v1/events/stream", params={"token": token})).status_code == 401


async def test_an_open_stream_ends_when_its_key_is_revoked(server: str, runtime: Runtime, client: httpx.AsyncClient,
                                                           tenant: Tenant) -> None:
    created = (await client.post("/v1/keys", json={"name": "browser", "scopes": ["events"]},
                                 headers=tenant.headers)).json()
    async with httpx.AsyncClient(base_url=server) as http:
        token = (await http.post("/v1/events/stream-token",
                                 headers={"Authorization": f"Bearer {created['key']}"})).json()["token"]
    async with open_stream(server, params={"token": token}) as by_token, \
            open_stream(server, headers={"Authorization": f"Bearer {created['key']}"}) as by_key:
        ids = await record(runtime, tenant, 1)
        assert (await by_token.next_event())["id"] == ids[0] == (await by_key.next_event())["id"]
        assert (await client.delete(f"/v1/keys/{created['id']}", headers=tenant.headers)).status_code == 200
        await record(runtime, tenant, 1)
        # Within a heartbeat (0.5 s here) both are closed; an event may still slip in before the check.
        await by_token.ended(within=3)
        await by_key.ended(within=3)
        assert by_token.comments[-1] == ": closed: the stream's access has ended"


async def test_a_stream_opened_with_a_token_ends_when_the_token_expires(
        server: str, runtime: Runtime, tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.settings, "events_stream_token_seconds", 2)
    async with httpx.AsyncClient(base_url=server) as http:
        issued = (await http.post("/v1/events/stream-token", headers=tenant.headers)).json()
    async with open_stream(server, params={"token": issued["token"]}) as stream:
        ids = await record(runtime, tenant, 1)
        assert (await stream.next_event())["id"] == ids[0]
        await stream.ended(within=4)
    # Resuming with a fresh token from the last id seen loses nothing that happened in between.
    missed = await record(runtime, tenant, 2)
    async with httpx.AsyncClient(base_url=server) as http:
        fresh = (await http.post("/v1/events/stream-token", headers=tenant.headers)).json()["token"]
    async with open_stream(server, params={"token": fresh, "after": ids[0]}) as stream:
        assert [(await stream.next_event())["id"] for _ in range(2)] == missed


async def next_message(socket: Any, *, pings: bool = False) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            message: dict[str, Any] = json.loads(await socket.recv())
            if pings or message != {"type": "ping"}:
                return message


async def test_the_websocket_carries_the_same_events(server: str, runtime: Runtime, tenant: Tenant,
                                                     other_tenant: Tenant) -> None:
    from websockets.asyncio.client import connect

    ws_url = server.replace("http://", "ws://") + "/v1/ws"
    async with connect(ws_url, additional_headers=tenant.headers) as socket:
        ids = await record(runtime, tenant, 2)
        await record(runtime, other_tenant, 1)
        received = [await next_message(socket) for _ in range(2)]
        assert [m["id"] for m in received] == ids and received[0]["type"] == "cache.flushed"
        assert await next_message(socket, pings=True) == {"type": "ping"}
    async with httpx.AsyncClient(base_url=server) as http:
        token = (await http.post("/v1/events/stream-token", headers=tenant.headers)).json()["token"]
    async with connect(f"{ws_url}?token={token}&after={ids[0]}") as socket:
        assert (await next_message(socket))["id"] == ids[1]
    for query, code in [("?token=nope", 4401), ("", 4401), (f"?after={ids[0]}&token={token}x", 4401)]:
        async with connect(ws_url + query) as socket:
            await asyncio.wait_for(socket.wait_closed(), 5)
            assert socket.close_code == code
    key = await make_key(runtime, tenant.company_id, ["chat"])
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"}) as socket:
        await asyncio.wait_for(socket.wait_closed(), 5)
        assert socket.close_code == 4403
    async with connect(f"{ws_url}?after={ids[0]}", additional_headers=other_tenant.headers) as socket:
        await asyncio.wait_for(socket.wait_closed(), 5)
        assert socket.close_code == 4404
