"""Every query on `idempotency_keys`, always scoped to one company."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.db.models import IdempotencyKey

# Expired keys of a company removed per claim, so the table does not keep what no retry will ask for.
SWEEP_LIMIT = 100


async def drop_expired(session: AsyncSession, company_id: uuid.UUID, key: str, *, ttl: timedelta,
                       lease: timedelta) -> None:
    """Forget `key` if older than `ttl`, or still pending after `lease` (its worker died); and a few more
    of the company's expired keys."""
    now = func.now()
    await session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.company_id == company_id, IdempotencyKey.key == key,
        or_(IdempotencyKey.created_at < now - ttl,
            (IdempotencyKey.status == "pending") & (IdempotencyKey.created_at < now - lease))))
    expired = (select(IdempotencyKey.id).where(IdempotencyKey.company_id == company_id,
                                               IdempotencyKey.created_at < now - ttl)
               .limit(SWEEP_LIMIT).scalar_subquery())
    await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id.in_(expired)))


async def insert_claim(session: AsyncSession, company_id: uuid.UUID, key: str, request_hash: str) -> uuid.UUID | None:
    """The claim's id, or None when the key is already held (the unique (company_id, key) decides)."""
    claim_id = uuid.uuid4()
    inserted = await session.scalar(
        insert(IdempotencyKey).values(id=claim_id, company_id=company_id, key=key, request_hash=request_hash,
                                      status="pending")
        .on_conflict_do_nothing(index_elements=["company_id", "key"]).returning(IdempotencyKey.id))
    return inserted


async def find(session: AsyncSession, company_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    found: IdempotencyKey | None = await session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.company_id == company_id, IdempotencyKey.key == key))
    return found


async def complete(session: AsyncSession, company_id: uuid.UUID, claim_id: uuid.UUID,
                   response: dict[str, Any]) -> None:
    await session.execute(update(IdempotencyKey).where(
        IdempotencyKey.company_id == company_id, IdempotencyKey.id == claim_id)
        .values(status="done", response=response, completed_at=func.now()))


async def release(session: AsyncSession, company_id: uuid.UUID, claim_id: uuid.UUID) -> None:
    await session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.company_id == company_id, IdempotencyKey.id == claim_id, IdempotencyKey.status == "pending"))
