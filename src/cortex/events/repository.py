"""Reading a company's events in feed order, from a position, as the list and the live stream do."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.events.models import Event
from cortex.events.schemas import EventPublic
from cortex.kit.errors import NotFound
from cortex.kit.pagination import Listing, Page, PageParams, paginate

# Only events of transactions older than every transaction still running: a transaction still open may
# yet commit an event that sorts before a later one, and a reader must never have passed its place.
VISIBLE = Event.txid < text("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")


@dataclass(frozen=True)
class Position:
    """A place in a company's feed: after this event."""

    txid: int
    seq: int


def to_public(event: Event) -> EventPublic:
    return EventPublic(id=event.id, type=event.type, company_id=event.company_id, created_at=event.created_at,
                       updated_at=event.created_at, data=event.data)


async def position_of(session: AsyncSession, company_id: uuid.UUID, event_id: uuid.UUID) -> Position:
    row = (await session.execute(select(Event.txid, Event.seq)
                                 .where(Event.company_id == company_id, Event.id == event_id))).first()
    if row is None:
        raise NotFound("event not found")
    return Position(row.txid, row.seq)


def _feed(company_id: uuid.UUID, types: Sequence[str] | None, after: Position | None) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [Event.company_id == company_id, VISIBLE]
    if types:
        conditions.append(Event.type.in_(list(types)))
    if after is not None:
        conditions.append(tuple_(Event.txid, Event.seq) > tuple_(after.txid, after.seq))
    return select(Event).where(and_(*conditions)).order_by(Event.txid, Event.seq)


# The feed's own order, (txid, seq), is what `created_at` sorts by: ascending by default, like the feed.
# Events never change, so `updated_after` compares the creation time.
EVENT_LISTING = Listing(sort={"created_at": [Event.txid, Event.seq]}, created=Event.created_at, updated=None,
                        tiebreak=[], default_sort="created_at:asc")


async def list_events(session: AsyncSession, company_id: uuid.UUID, params: PageParams, *,
                      types: Sequence[str] | None, after: uuid.UUID | None) -> Page[EventPublic]:
    position = await position_of(session, company_id, after) if after else None
    return await paginate(session, _feed(company_id, types, position), params, to_public, listing=EVENT_LISTING)


async def read_after(session: AsyncSession, company_id: uuid.UUID, types: Sequence[str] | None,
                     after: Position | None, limit: int) -> list[Event]:
    return list((await session.scalars(_feed(company_id, types, after).limit(limit))).all())


async def latest_position(session: AsyncSession, company_id: uuid.UUID) -> Position | None:
    """Where a stream that asks for no history starts: after the last visible event."""
    row = (await session.execute(select(Event.txid, Event.seq)
                                 .where(Event.company_id == company_id, VISIBLE)
                                 .order_by(Event.txid.desc(), Event.seq.desc()).limit(1))).first()
    return Position(row.txid, row.seq) if row else None


async def prune(session: AsyncSession, retention_days: int) -> int:
    """Delete events older than the retention (their deliveries and attempts go with them)."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    result = await session.execute(delete(Event).where(Event.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


async def forget_customer(session: AsyncSession, company_id: uuid.UUID, customer_id: str) -> int:
    """Delete the events about one customer (every event naming a customer names it as `customer_id`)."""
    result = await session.execute(delete(Event).where(Event.company_id == company_id,
                                                       Event.data["customer_id"].astext == customer_id))
    return int(getattr(result, "rowcount", 0) or 0)
