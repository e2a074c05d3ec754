"""Business rules for companies, portal users and API keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.auth import api_keys
from cortex.auth.passwords import hash_password, verify_password
from cortex.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic
from cortex.db.models import ApiKey, Company, User
from cortex.kit.errors import Conflict, NotFound
from cortex.kit.pagination import Page, PageParams, paginate


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
    session: AsyncSession, company_id: uuid.UUID, data: ApiKeyCreate, created_by: uuid.UUID | None = None
) -> ApiKeyCreated:
    raw = api_keys.generate_key()
    expires_at = datetime.now(UTC) + timedelta(days=data.expires_in_days) if data.expires_in_days else None
    key = ApiKey(
        company_id=company_id,
        name=data.name,
        key_prefix=api_keys.display_prefix(raw),
        key_hash=api_keys.hash_key(raw),
        scopes=list(data.scopes),
        expires_at=expires_at,
        rate_limit_per_minute=data.rate_limit_per_minute,
        created_by_user_id=created_by,
    )
    session.add(key)
    await session.flush()
    await session.refresh(key)
    return ApiKeyCreated(id=key.id, key=raw, key_prefix=key.key_prefix, name=key.name, scopes=key.scopes,
                         expires_at=key.expires_at, created_at=key.created_at,
                         rate_limit_per_minute=key.rate_limit_per_minute)


def key_public(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(id=key.id, key_prefix=key.key_prefix, name=key.name, scopes=key.scopes,
                        expires_at=key.expires_at, created_at=key.created_at, last_used_at=key.last_used_at,
                        revoked_at=key.revoked_at, rate_limit_per_minute=key.rate_limit_per_minute)


async def list_api_keys(session: AsyncSession, company_id: uuid.UUID, params: PageParams) -> Page[ApiKeyPublic]:
    statement = (select(ApiKey).where(ApiKey.company_id == company_id, ApiKey.revoked_at.is_(None))
                 .order_by(ApiKey.created_at.desc(), ApiKey.id))
    return await paginate(session, statement, params, key_public)


async def revoke_api_key(session: AsyncSession, company_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    key = await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.company_id == company_id, ApiKey.revoked_at.is_(None))
    )
    if key is None:
        raise NotFound("API key not found")
    key.revoked_at = func.now()
    await session.flush()
    return key


async def find_key_by_raw(session: AsyncSession, raw_key: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.key_hash == api_keys.hash_key(raw_key)))
