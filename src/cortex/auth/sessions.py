"""Portal sessions: opened at login, checked on every portal request, revoked at logout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.auth.tokens import PortalClaims
from cortex.db.models import PortalSession, User

# A checked session is remembered this long, so a burst of portal requests costs one query. Logout
# deletes the entry after its commit (at once where the cache is shared, i.e. Redis); a deleted
# user or company is noticed within this many seconds.
SESSION_CHECK_TTL_SECONDS = 5


def session_cache_key(session_id: uuid.UUID) -> str:
    return f"cortex:portal-session:{session_id}"


async def open_session(session: AsyncSession, user: User, lifetime: timedelta) -> PortalSession:
    now = datetime.now(UTC)
    # Each login adds a row; the user's expired ones go at the same time, so the table stays small.
    await session.execute(delete(PortalSession).where(PortalSession.user_id == user.id,
                                                      PortalSession.expires_at <= now))
    portal_session = PortalSession(id=uuid.uuid4(), user_id=user.id, company_id=user.company_id,
                                   created_at=now, expires_at=now + lifetime)
    session.add(portal_session)
    await session.flush()
    return portal_session


async def session_is_active(session: AsyncSession, claims: PortalClaims) -> bool:
    """The session is live and its user still exists in the token's company (the users row cannot
    outlive its company: the foreign key cascades)."""
    found = await session.scalar(
        select(PortalSession.id)
        .join(User, User.id == PortalSession.user_id)
        .where(PortalSession.id == claims.session_id, PortalSession.user_id == claims.user_id,
               PortalSession.company_id == claims.company_id, User.company_id == claims.company_id,
               PortalSession.revoked_at.is_(None), PortalSession.expires_at > func.now())
    )
    return found is not None


async def revoke_session(session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.execute(update(PortalSession)
                          .where(PortalSession.id == session_id, PortalSession.revoked_at.is_(None))
                          .values(revoked_at=func.now()))
