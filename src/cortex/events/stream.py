"""Live events over Server-Sent Events, fanned out through PostgreSQL LISTEN/NOTIFY.

Each process keeps one listening connection (`EventHub`). Inserting an event notifies `cortex_events`
with its company id on commit, on every process of every replica; a notification only wakes that
company's streams, which then read the events after their own position from the table. So a stream sees
every event once and in feed order, across workers, after a resume (`Last-Event-ID`) and after a lost
notification (streams also read every CORTEX_EVENTS_STREAM_POLL_SECONDS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import jwt

from cortex.events import repository
from cortex.events.models import Event
from cortex.events.repository import Position
from cortex.jobs.system import psycopg_conninfo
from cortex.kit.runtime import Runtime

logger = logging.getLogger(__name__)

HUB = "event_hub"  # the component's name in Runtime.components
CHANNEL = "cortex_events"
BATCH = 200
# After a wake that found nothing visible yet (an older transaction still open), look again soon.
RECHECK_SECONDS = 0.1

TOKEN_AUDIENCE = "cortex-event-stream"
TOKEN_ALGORITHM = "HS256"


class EventHub:
    """The process's LISTEN connection and the streams waiting on it, by company."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._connection: asyncpg.Connection | None = None
        self._connecting = asyncio.Lock()

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            company_id = uuid.UUID(payload)
        except ValueError:
            return
        for waiter in self._waiters.get(company_id, ()):
            waiter.set()

    async def ensure_listening(self) -> None:
        """(Re)connect when needed; on failure the streams still poll, so this only logs."""
        if self._connection is not None and not self._connection.is_closed():
            return
        async with self._connecting:
            if self._connection is not None and not self._connection.is_closed():
                return
            try:
                connection = await asyncpg.connect(psycopg_conninfo(self.runtime.database.resolve_url()))
                await connection.add_listener(CHANNEL, self._notified)
            except (OSError, asyncpg.PostgresError):
                logger.warning("cannot listen for events; live streams poll until it can", exc_info=True)
                return
            self._connection = connection
            for waiters in self._waiters.values():  # anything may have happened while not listening
                for waiter in waiters:
                    waiter.set()

    @contextlib.asynccontextmanager
    async def subscribe(self, company_id: uuid.UUID) -> AsyncIterator[asyncio.Event]:
        waiter = asyncio.Event()
        self._waiters.setdefault(company_id, set()).add(waiter)
        try:
            await self.ensure_listening()
            yield waiter
        finally:
            waiters = self._waiters.get(company_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[company_id]

    async def aclose(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close(timeout=5)
            self._connection = None


def event_hub(runtime: Runtime) -> EventHub:
    hub = runtime.components.get(HUB)
    if not isinstance(hub, EventHub):
        hub = EventHub(runtime)
        runtime.components[HUB] = hub
    return hub


@dataclass(frozen=True)
class StreamAccess:
    """Who reads a stream: the company, when a stream token ends it, and the re-check of the key behind it."""

    company_id: uuid.UUID
    ends_at: datetime | None
    still_allowed: Callable[[], Awaitable[bool]]


def issue_stream_token(runtime: Runtime, company_id: uuid.UUID, key_id: uuid.UUID) -> tuple[str, datetime]:
    now = datetime.now(UTC)
    expires_at = now + timedelta(seconds=runtime.settings.events_stream_token_seconds)
    token = jwt.encode({"aud": TOKEN_AUDIENCE, "sub": str(key_id), "company_id": str(company_id), "iat": now,
                        "exp": expires_at}, runtime.settings.signing_secret, algorithm=TOKEN_ALGORITHM)
    return token, expires_at


def read_stream_token(runtime: Runtime, token: str) -> tuple[uuid.UUID, uuid.UUID, datetime] | None:
    """(company id, key id, expiry) of a valid, unexpired stream token; None otherwise."""
    try:
        claims = jwt.decode(token, runtime.settings.signing_secret, algorithms=[TOKEN_ALGORITHM],
                            audience=TOKEN_AUDIENCE, options={"require": ["exp", "iat", "sub", "aud"]})
        return (uuid.UUID(claims["company_id"]), uuid.UUID(claims["sub"]),
                datetime.fromtimestamp(int(claims["exp"]), UTC))
    except (jwt.PyJWTError, KeyError, ValueError, TypeError, AttributeError):
        return None


def _frame(event: Event) -> bytes:
    public = repository.to_public(event)
    return (f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(public.model_dump(mode='json'))}\n\n").encode()


def _seconds_left(access: StreamAccess) -> float:
    return (access.ends_at - datetime.now(UTC)).total_seconds() if access.ends_at is not None else float("inf")


async def follow(runtime: Runtime, access: StreamAccess, types: Sequence[str] | None,
                 start: Position | None) -> AsyncIterator[Event | None]:
    """The company's events after `start`, as they become visible; None when a heartbeat is due.

    Ends when the access does: at the stream token's expiry, or at the first heartbeat after the key
    behind it was revoked, expired or lost the `events` scope."""
    settings = runtime.settings
    loop = asyncio.get_running_loop()
    hub = event_hub(runtime)
    company_id = access.company_id
    position = start
    wanted = frozenset(types) if types else None
    async with hub.subscribe(company_id) as waiter:
        last_sent = last_checked = loop.time()
        woken = True
        while True:
            if _seconds_left(access) <= 0:
                return
            if loop.time() - last_checked >= settings.events_stream_heartbeat_seconds:
                if not await access.still_allowed():
                    return
                last_checked = loop.time()
            waiter.clear()  # before reading: a notification during the read wakes the next wait at once
            # Unfiltered, so that the position passes the events the filter drops: a rare type never
            # makes each read scan everything since the last one that matched.
            async with runtime.database.session() as session:
                batch = await repository.read_after(session, company_id, None, position, BATCH)
            for event in batch:
                position = Position(event.txid, event.seq)
                if wanted is None or event.type in wanted:
                    last_sent = loop.time()
                    yield event
            if len(batch) == BATCH:
                continue
            heartbeat_due = last_sent + settings.events_stream_heartbeat_seconds - loop.time()
            wait = min(settings.events_stream_poll_seconds, max(heartbeat_due, 0.0), max(_seconds_left(access), 0.0))
            if woken and not batch:
                wait = min(wait, RECHECK_SECONDS)
            try:
                await asyncio.wait_for(waiter.wait(), timeout=wait)
                woken = True
            except TimeoutError:
                woken = False
                await hub.ensure_listening()
            if loop.time() - last_sent >= settings.events_stream_heartbeat_seconds:
                yield None
                last_sent = loop.time()


async def sse(runtime: Runtime, access: StreamAccess, types: Sequence[str] | None,
              start: Position | None) -> AsyncIterator[bytes]:
    """The SSE body: an `id:`/`event:`/`data:` frame per event, `: ping` comments as heartbeats.

    When the access ends the body ends; the client reconnects with a new stream token and `Last-Event-ID`
    (or `?after=`) and loses nothing."""
    yield b": connected\n\n"
    async for event in follow(runtime, access, types, start):
        yield b": ping\n\n" if event is None else _frame(event)
    yield b": closed: the stream's access has ended\n\n"


async def websocket_messages(runtime: Runtime, access: StreamAccess, types: Sequence[str] | None,
                             start: Position | None) -> AsyncIterator[str]:
    """The WebSocket's text messages: each event as JSON, and `{"type": "ping"}` as heartbeats."""
    async for event in follow(runtime, access, types, start):
        if event is None:
            yield '{"type":"ping"}'
        else:
            yield json.dumps(repository.to_public(event).model_dump(mode="json"))
