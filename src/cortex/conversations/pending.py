"""No customer message stays `pending` for good.

A turn stores the customer's message as `pending` before the model is called and marks it `ok` with
the reply, or `failed` when the request fails. When the database itself is what failed, the mark
cannot be written then: `PendingMessages.remember` keeps it in the process and writes it as soon as
the database answers again (retried with a growing pause, at most `_MAX_PAUSE_SECONDS` apart).

A process that dies between the two writes (kill -9, a crash) remembers nothing: the sweep marks
failed, every `pending_sweep_seconds`, the customer messages still pending after
`pending_stale_seconds` (far longer than a turn can take: a model call's timeout times its fallbacks
and tool rounds). Any replica may sweep; the update is the same from each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import text

from cortex.conversations import store, turn_events
from cortex.events import outbox
from cortex.kit.runtime import Runtime

logger = logging.getLogger(__name__)

PENDING_MESSAGES = "pending_messages"  # the component's name in Runtime.components
_FIRST_PAUSE_SECONDS = 0.5
_MAX_PAUSE_SECONDS = 5.0
SWEPT_ERROR = "the request ended before a reply was stored (found pending by the sweep)"

_SWEEP = text("""
    UPDATE messages SET status = 'failed', error = :error
    WHERE id IN (SELECT id FROM messages
                 WHERE status = 'pending' AND role = 'customer'
                   AND created_at < now() - make_interval(secs => :stale)
                 ORDER BY created_at LIMIT :limit
                 FOR UPDATE SKIP LOCKED)
    RETURNING id, company_id, conversation_id
""")


@dataclass(frozen=True)
class _Mark:
    company_id: uuid.UUID
    message_id: uuid.UUID
    error: str


class PendingMessages:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._marks: dict[uuid.UUID, _Mark] = {}
        self._retrying: asyncio.Task[None] | None = None
        self._sweeping: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Marks not yet written (the database has not answered since they failed)."""
        return len(self._marks)

    def remember(self, company_id: uuid.UUID, message_id: uuid.UUID, error: str) -> None:
        """Mark the message failed once the database is back (it could not be done now)."""
        self._marks[message_id] = _Mark(company_id, message_id, error)
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry(), name="pending-messages-retry")

    async def _retry(self) -> None:
        pause = _FIRST_PAUSE_SECONDS
        while self._marks:
            await asyncio.sleep(pause)
            if await self.write_marks():
                pause = _FIRST_PAUSE_SECONDS
            else:
                pause = min(_MAX_PAUSE_SECONDS, pause * 2)

    async def write_marks(self) -> bool:
        """Write what is remembered; False when the database still refuses (the rest stay remembered)."""
        for mark in list(self._marks.values()):
            try:
                async with self.runtime.database.session() as session:
                    await store.mark_failed(session, company_id=mark.company_id, message_id=mark.message_id,
                                            error=mark.error)
            except Exception:
                logger.warning("still cannot mark message %s failed", mark.message_id)
                return False
            self._marks.pop(mark.message_id, None)
            logger.info("marked message %s failed after the database came back", mark.message_id)
        return True

    async def sweep(self, limit: int = 500) -> int:
        """Mark failed the customer messages pending for longer than any turn takes; how many."""
        settings = self.runtime.settings
        async with self.runtime.database.session() as session:
            rows = (await session.execute(_SWEEP, {"error": SWEPT_ERROR, "stale": settings.pending_stale_seconds,
                                                   "limit": limit})).all()
            for row in rows:
                await outbox.record_many(session, row.company_id, [
                    turn_events.message_failed(row.conversation_id, row.id, SWEPT_ERROR)])
        if rows:
            logger.warning("swept %d messages left pending", len(rows))
        return len(rows)

    def serve(self) -> None:
        """Sweep now and every `pending_sweep_seconds` (each `cortex serve` process)."""
        if self._sweeping is None:
            self._sweeping = asyncio.get_running_loop().create_task(self._sweep_forever(), name="pending-sweep")

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # the database is down: the next round tries again
                logger.warning("pending sweep failed", exc_info=True)
            await asyncio.sleep(self.runtime.settings.pending_sweep_seconds)

    async def aclose(self) -> None:
        for task in (self._sweeping, self._retrying):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._sweeping = self._retrying = None
        if self._marks:  # a last try; what is left, the next start's sweep will find
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.write_marks(), 5)


def pending_messages(runtime: Runtime) -> PendingMessages:
    component = runtime.components.get(PENDING_MESSAGES)
    if not isinstance(component, PendingMessages):
        component = PendingMessages(runtime)
        runtime.components[PENDING_MESSAGES] = component
    return component
