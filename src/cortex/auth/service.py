"""Business rules for companies, portal users and API keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.auth import api_keys
from cortex.auth.key_powers import KeyPowers, KeyTerms
from cortex.auth.passwords import hash_password, verify_password
from cortex.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from cortex.db.models import ApiKey, Company, User
from cortex.events import outbox
from cortex.kit.errors import Conflict, NotFound, Unauthorized
from cortex.kit.pagination import Listing, Page, PageParams, paginate

FOREIGN_KEY_VIOLATION = "23503"


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def get_or_create_company(session: AsyncSession, name: str) -> Company:
    company = await session.scalar(select(Company).where(Company.name == name))
    if company is None:
        company = Company(name=name)
        session.add(company)
        await session.flush()
    return company


async def create_user(session: AsyncSession, company: Company, email: str, password: str) -> User:
    email = normalise_email(email)
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with email {email} already exists")
    user = User(company_id=company.id, email=email, password_hash=hash_password(password))
    session.add(user)
    await session.flush()
    return user


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    user.password_hash = hash_password(password)
    await session.flush()


async def authenticate_user(session: AsyncSession, email: str, password: str) -> User | None:
    user = await session.scalar(select(User).where(User.email == normalise_email(email)))
    ok = verify_password(user.password_hash if user else None, password)
    return user if ok else None


async def create_api_key(
    session: AsyncSession, company_id: uuid.UUID, data: ApiKeyCreate, created_by: uuid.UUID | None = None,
    *, terms: KeyTerms | None = None,
) -> ApiKeyCreated:
    """`terms`: the limits once a creating key's own are applied (`KeyPowers.terms_for`); else as requested."""
    raw = api_keys.generate_key()
    terms = terms or KeyTerms.as_requested(data, datetime.now(UTC))
    key = ApiKey(
        company_id=company_id,
        name=data.name,
        key_prefix=api_keys.display_prefix(raw),
        key_hash=api_keys.hash_key(raw),
        scopes=list(data.scopes),
        expires_at=terms.expires_at,
        rate_limit_per_minute=terms.rate_limit_per_minute,
        created_by_user_id=created_by,
    )
    try:
        async with session.begin_nested():
            session.add(key)
            await session.flush()
    except IntegrityError as exc:
        # The credentials were checked a moment ago (or remembered briefly): the company or the
        # user behind them has been deleted since.
        if getattr(exc.orig, "sqlstate", None) == FOREIGN_KEY_VIOLATION:
            raise Unauthorized("the company or user behind these credentials no longer exists") from None
        raise
    await session.refresh(key)
    await outbox.record(session, company_id, "api_key.created", {
        "key_id": key.id, "name": key.name, "key_prefix": key.key_prefix, "scopes": key.scopes,
        "created_by_user_id": created_by})
    return ApiKeyCreated(id=key.id, key=raw, key_prefix=key.key_prefix, name=key.name, scopes=key.scopes,
                         expires_at=key.expires_at, created_at=key.created_at,
                         rate_limit_per_minute=key.rate_limit_per_minute)


def key_public(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(id=key.id, key_prefix=key.key_prefix, name=key.name, scopes=key.scopes,
                        expires_at=key.expires_at, created_at=key.created_at, updated_at=key.updated_at,
                        last_used_at=key.last_used_at,
                        revoked_at=key.revoked_at, rate_limit_per_minute=key.rate_limit_per_minute)


KEY_LISTING = Listing(sort={"created_at": [ApiKey.created_at], "updated_at": [ApiKey.updated_at], "name": [ApiKey.name],
                           "last_used_at": [ApiKey.last_used_at]},
                      created=ApiKey.created_at, updated=ApiKey.updated_at, tiebreak=[ApiKey.id])


async def list_api_keys(session: AsyncSession, company_id: uuid.UUID, params: PageParams) -> Page[ApiKeyPublic]:
    statement = select(ApiKey).where(ApiKey.company_id == company_id, ApiKey.revoked_at.is_(None))
    return await paginate(session, statement, params, key_public, listing=KEY_LISTING)


async def revoke_api_key(session: AsyncSession, company_id: uuid.UUID, key_id: uuid.UUID,
                         powers: KeyPowers | None = None) -> ApiKey:
    """`powers`: those of the key asking, which may revoke only keys within them; None for a portal user."""
    key = await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.company_id == company_id, ApiKey.revoked_at.is_(None))
    )
    if key is None:
        raise NotFound("API key not found")
    if powers is not None:
        powers.check_revoke(key)
    key.revoked_at = func.now()
    await session.flush()
    await outbox.record(session, company_id, "api_key.revoked",
                        {"key_id": key.id, "name": key.name, "key_prefix": key.key_prefix})
    return key


async def find_key_by_raw(session: AsyncSession, raw_key: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.key_hash == api_keys.hash_key(raw_key)))
