"""Action definitions: the webhooks an agent may call as tools. Credentials are stored encrypted."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.agents import service as agents
from cortex.agents.config_cache import AgentConfigCache
from cortex.agents.schemas import ActionCreate, ActionPublic, ActionUpdate, RateLimit, required_credentials
from cortex.db.models import ActionDefinition
from cortex.kit.crypto import SecretBox
from cortex.kit.errors import Conflict, InvalidInput, NotFound
from cortex.kit.pagination import Listing, Page, PageParams, paginate
from cortex.kit.url_guard import BlockedUrl, UnresolvableHost, check_url


def to_public(action: ActionDefinition) -> ActionPublic:
    return ActionPublic(
        id=action.id, company_id=action.company_id, name=action.name, description=action.description,
        source_type=action.source_type, webhook_url=action.webhook_url, method=action.method,
        headers=action.headers, auth_type=action.auth_type,
        has_credentials=action.auth_credentials_encrypted is not None,
        parameters_schema=action.parameters_schema, path_template=action.path_template,
        query_schema=action.query_schema,
        rate_limit=RateLimit.model_validate(action.rate_limit) if action.rate_limit else None,
        run_after_reply=action.run_after_reply, created_at=action.created_at, updated_at=action.updated_at,
    )


async def get_action(session: AsyncSession, company_id: uuid.UUID, action_id: uuid.UUID) -> ActionDefinition:
    action = await session.scalar(select(ActionDefinition).where(ActionDefinition.id == action_id,
                                                                 ActionDefinition.company_id == company_id))
    if action is None:
        raise NotFound("action not found")
    return action


async def _flush_unique(session: AsyncSession, name: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"an action named {name!r} already exists") from exc


async def _refuse_non_public(url: str | None, field: str, *, allow_private: bool) -> None:
    """422 on `field` when `url` reaches an address that is not public (unless private ones are allowed).
    A name that does not resolve now is accepted: every call resolves and vets it again."""
    if allow_private or not url:
        return
    try:
        await check_url(url, allow_private=False)
    except UnresolvableHost:
        return
    except BlockedUrl as exc:
        raise InvalidInput(field, str(exc)) from exc


async def _refuse_non_public_targets(webhook_url: str | None, credentials: dict[str, str] | None, *,
                                     allow_private: bool) -> None:
    await _refuse_non_public(webhook_url, "webhook_url", allow_private=allow_private)
    await _refuse_non_public((credentials or {}).get("token_url"), "auth_credentials.token_url",
                             allow_private=allow_private)


async def create_action(session: AsyncSession, box: SecretBox, company_id: uuid.UUID, data: ActionCreate, *,
                        allow_private: bool) -> ActionDefinition:
    await _refuse_non_public_targets(str(data.webhook_url), data.auth_credentials, allow_private=allow_private)
    action = ActionDefinition(
        company_id=company_id, name=data.name, description=data.description, source_type=data.source_type,
        webhook_url=str(data.webhook_url), method=data.method, headers=data.headers, auth_type=data.auth_type,
        auth_credentials_encrypted=box.encrypt_json(data.auth_credentials) if data.auth_credentials else None,
        parameters_schema=data.parameters_schema, path_template=data.path_template,
        query_schema=data.query_schema,
        rate_limit=data.rate_limit.model_dump() if data.rate_limit else None, run_after_reply=data.run_after_reply,
    )
    session.add(action)
    await _flush_unique(session, data.name)
    await session.refresh(action)
    return action


# Fields an update may clear with null; for the others null means "unchanged".
CLEARABLE_FIELDS = frozenset({"path_template", "rate_limit"})


async def update_action(session: AsyncSession, box: SecretBox, cache: AgentConfigCache, company_id: uuid.UUID,
                        action_id: uuid.UUID, data: ActionUpdate, *, allow_private: bool) -> ActionDefinition:
    action = await get_action(session, company_id, action_id)
    changes = data.model_dump(exclude_unset=True, mode="json")
    credentials = changes.pop("auth_credentials", None)
    await _refuse_non_public_targets(changes.get("webhook_url"), credentials, allow_private=allow_private)
    for field, value in changes.items():
        if value is None and field not in CLEARABLE_FIELDS:
            continue  # as for agents: null leaves a field that cannot be empty as it is
        setattr(action, field, value)
    if credentials is not None:
        action.auth_credentials_encrypted = box.encrypt_json(credentials) if credentials else None
    stored = box.decrypt_json(action.auth_credentials_encrypted) if action.auth_credentials_encrypted else {}
    missing = [k for k in required_credentials(action.auth_type) if not stored.get(k)]
    if missing:
        raise InvalidInput("auth_credentials", f"auth_type {action.auth_type} needs: {', '.join(missing)}")
    await _flush_unique(session, action.name)
    await session.refresh(action)
    linked = await agents.agents_linked_to(session, company_id, action_id=action.id)
    await agents.bump_versions(session, cache, company_id, linked, config=True)
    return action


async def delete_action(session: AsyncSession, cache: AgentConfigCache, company_id: uuid.UUID,
                        action_id: uuid.UUID) -> None:
    action = await get_action(session, company_id, action_id)
    linked = await agents.agents_linked_to(session, company_id, action_id=action.id)
    await session.delete(action)
    await session.flush()
    await agents.bump_versions(session, cache, company_id, linked, config=True)


ACTION_LISTING = Listing(sort={"created_at": [ActionDefinition.created_at], "updated_at": [ActionDefinition.updated_at],
                              "name": [ActionDefinition.name]},
                         created=ActionDefinition.created_at, updated=ActionDefinition.updated_at,
                         tiebreak=[ActionDefinition.id])


async def list_actions(session: AsyncSession, company_id: uuid.UUID, params: PageParams) -> Page[ActionPublic]:
    statement = select(ActionDefinition).where(ActionDefinition.company_id == company_id)
    return await paginate(session, statement, params, to_public, listing=ACTION_LISTING)
