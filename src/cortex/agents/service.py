"""Agents: CRUD, links to actions and knowledge sources, and the configuration the pipeline runs on."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.agents.config_cache import AgentConfigCache
from cortex.agents.schemas import (
    ActionConfig,
    AgentConfig,
    AgentCreate,
    AgentPublic,
    AgentSettings,
    AgentUpdate,
    Dialect,
    Faq,
    Personality,
    Scenario,
)
from cortex.db.engine import Database, after_commit
from cortex.db.models import ActionDefinition, Agent, AgentAction, AgentKnowledgeSource, Company, KnowledgeSource
from cortex.kit.errors import Conflict, InvalidInput, NotFound
from cortex.kit.pagination import Listing, Page, PageParams, paginate

# Changes to these fields change what the agent says, so cached answers must not outlive them.
_CONFIG_FIELDS = {"name", "system_prompt", "personality", "dialect", "faqs", "scenarios", "workflow_faqs",
                  "settings", "action_ids"}


async def get_agent(session: AsyncSession, company_id: uuid.UUID, agent_id: uuid.UUID) -> Agent:
    agent = await session.scalar(select(Agent).where(Agent.id == agent_id, Agent.company_id == company_id))
    if agent is None:
        raise NotFound("agent not found")
    return agent


class SlugTaken(Conflict):
    code = "slug_taken"

    def __init__(self, slug: str) -> None:
        super().__init__(f"another agent of this company already has the slug '{slug}'")


async def get_agent_by_model(session: AsyncSession, company_id: uuid.UUID, model: str) -> Agent | None:
    """The agent an OpenAI-style `model` names: its id, or its slug (case-insensitive)."""
    try:
        agent_id = uuid.UUID(model)
    except ValueError:
        found: Agent | None = await session.scalar(
            select(Agent).where(Agent.company_id == company_id, Agent.slug == model.strip().lower()))
        return found
    return await session.scalar(select(Agent).where(Agent.id == agent_id, Agent.company_id == company_id))


async def agent_id_for_model(database: Database, company_id: uuid.UUID, model: str) -> uuid.UUID | None:
    """`get_agent_by_model`'s answer as an id alone, read outside any transaction: every OpenAI-style chat
    asks it, and one round trip is its whole cost (asyncpg keeps the statement prepared)."""
    try:
        agent_id: uuid.UUID | None = uuid.UUID(model)
    except ValueError:
        agent_id = None
    async with database.driver() as driver:
        if agent_id is not None:
            found = await driver.fetchval("SELECT id FROM agents WHERE id = $1 AND company_id = $2",
                                          agent_id, company_id)
        else:
            found = await driver.fetchval("SELECT id FROM agents WHERE company_id = $1 AND slug = $2",
                                          company_id, model.strip().lower())
    return found if isinstance(found, uuid.UUID) else None


async def _claim_slug(session: AsyncSession, company_id: uuid.UUID, agent: Agent, slug: str | None) -> None:
    if slug is not None:
        taken = await session.scalar(select(Agent.id).where(Agent.company_id == company_id, Agent.slug == slug,
                                                            Agent.id != agent.id))
        if taken is not None:
            raise SlugTaken(slug)
    agent.slug = slug


async def _flush_slug(session: AsyncSession, slug: str | None) -> None:
    """Flush, turning a slug a concurrent request took first (the unique index) into a 409."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        if "uq_agents_company_slug" in str(exc.orig) and slug is not None:
            raise SlugTaken(slug) from exc
        raise


async def _linked_ids(session: AsyncSession, agent_id: uuid.UUID) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    actions = (await session.scalars(select(AgentAction.action_id).where(AgentAction.agent_id == agent_id)
                                     .order_by(AgentAction.position))).all()
    sources = (await session.scalars(
        select(AgentKnowledgeSource.source_id).where(AgentKnowledgeSource.agent_id == agent_id)
        .order_by(AgentKnowledgeSource.position))).all()
    return list(actions), list(sources)


async def _check_owned(session: AsyncSession, company_id: uuid.UUID, model: Any, ids: Sequence[uuid.UUID],
                       field: str) -> None:
    if not ids:
        return
    found = set((await session.scalars(select(model.id).where(model.id.in_(ids),
                                                              model.company_id == company_id))).all())
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise InvalidInput(field, f"unknown ids: {', '.join(missing)}")


async def _set_links(session: AsyncSession, company_id: uuid.UUID, agent: Agent,
                     action_ids: list[uuid.UUID] | None, source_ids: list[uuid.UUID] | None) -> None:
    if action_ids is not None:
        action_ids = list(dict.fromkeys(action_ids))
        await _check_owned(session, company_id, ActionDefinition, action_ids, "action_ids")
        await session.execute(delete(AgentAction).where(AgentAction.agent_id == agent.id))
        session.add_all(AgentAction(agent_id=agent.id, action_id=a, position=i) for i, a in enumerate(action_ids))
    if source_ids is not None:
        source_ids = list(dict.fromkeys(source_ids))
        await _check_owned(session, company_id, KnowledgeSource, source_ids, "knowledge_source_ids")
        await session.execute(delete(AgentKnowledgeSource).where(AgentKnowledgeSource.agent_id == agent.id))
        session.add_all(AgentKnowledgeSource(agent_id=agent.id, source_id=s, position=i)
                        for i, s in enumerate(source_ids))
    await session.flush()


def _personality(data: Personality) -> dict[str, Any]:
    dumped = data.model_dump(mode="json")
    dumped["id"] = dumped.get("id") or str(uuid.uuid4())
    return dumped


async def to_public(session: AsyncSession, agent: Agent) -> AgentPublic:
    action_ids, source_ids = await _linked_ids(session, agent.id)
    return AgentPublic(
        id=agent.id, company_id=agent.company_id, name=agent.name, slug=agent.slug,
        system_prompt=agent.system_prompt, personality=Personality.model_validate(agent.personality),
        dialect=Dialect.model_validate(agent.dialect),
        faqs=[Faq.model_validate(f) for f in agent.faqs],
        scenarios=[Scenario.model_validate(s) for s in agent.scenarios],
        workflow_faqs=[Faq.model_validate(f) for f in agent.workflow_faqs],
        settings=AgentSettings.model_validate(agent.settings), action_ids=action_ids,
        knowledge_source_ids=source_ids, config_version=agent.config_version,
        knowledge_version=agent.knowledge_version, created_at=agent.created_at, updated_at=agent.updated_at,
    )


async def create_agent(session: AsyncSession, company_id: uuid.UUID, data: AgentCreate) -> Agent:
    agent = Agent(
        company_id=company_id, name=data.name, system_prompt=data.system_prompt,
        personality=_personality(data.personality), dialect=data.dialect.model_dump(mode="json"),
        faqs=[f.model_dump() for f in data.faqs], scenarios=[s.model_dump() for s in data.scenarios],
        workflow_faqs=[f.model_dump() for f in data.workflow_faqs],
        settings=data.settings.model_dump(mode="json"),
    )
    await _claim_slug(session, company_id, agent, data.slug)
    session.add(agent)
    await _flush_slug(session, data.slug)
    await _set_links(session, company_id, agent, data.action_ids, data.knowledge_source_ids)
    await session.refresh(agent)
    return agent


async def update_agent(session: AsyncSession, cache: AgentConfigCache, company_id: uuid.UUID,
                       agent_id: uuid.UUID, data: AgentUpdate) -> Agent:
    agent = await get_agent(session, company_id, agent_id)
    changes = data.model_dump(exclude_unset=True)
    for field in ("personality", "dialect", "settings", "faqs", "scenarios", "workflow_faqs", "name",
                  "system_prompt"):
        value = getattr(data, field)
        if field not in changes or value is None:
            continue
        if field == "personality":
            setattr(agent, field, _personality(value))
        elif isinstance(value, list):
            setattr(agent, field, [item.model_dump(mode="json") for item in value])
        elif hasattr(value, "model_dump"):
            setattr(agent, field, value.model_dump(mode="json"))
        else:
            setattr(agent, field, value)
    if "slug" in changes:
        await _claim_slug(session, company_id, agent, data.slug)
        await _flush_slug(session, data.slug)
    await _set_links(session, company_id, agent, data.action_ids, data.knowledge_source_ids)
    if changes.keys() & _CONFIG_FIELDS:
        agent.config_version = Agent.config_version + 1
    if "knowledge_source_ids" in changes:
        agent.knowledge_version = Agent.knowledge_version + 1
    agent.updated_at = func.now()
    await session.flush()
    await session.refresh(agent)
    after_commit(session, lambda: cache.invalidate(company_id, agent_id))
    return agent


async def delete_agent(session: AsyncSession, cache: AgentConfigCache, company_id: uuid.UUID,
                       agent_id: uuid.UUID) -> None:
    agent = await get_agent(session, company_id, agent_id)
    await session.delete(agent)
    await session.flush()
    after_commit(session, lambda: cache.invalidate(company_id, agent_id))


AGENT_LISTING = Listing(sort={"created_at": [Agent.created_at], "updated_at": [Agent.updated_at], "name": [Agent.name]},
                        created=Agent.created_at, updated=Agent.updated_at, tiebreak=[Agent.id])


async def list_agents(session: AsyncSession, company_id: uuid.UUID, params: PageParams) -> Page[AgentPublic]:
    statement = select(Agent).where(Agent.company_id == company_id)
    page = await paginate(session, statement, params, lambda a: a, listing=AGENT_LISTING)
    items = [await to_public(session, agent) for agent in page.items]
    return Page[AgentPublic](items=items, total_count=page.total_count, page=page.page,
                             page_size=page.page_size)


def action_config(action: ActionDefinition) -> ActionConfig:
    return ActionConfig(
        id=action.id, name=action.name, description=action.description, source_type=action.source_type,
        webhook_url=action.webhook_url, method=action.method, headers=action.headers,
        auth_type=action.auth_type, parameters_schema=action.parameters_schema,
        path_template=action.path_template, query_schema=action.query_schema, rate_limit=action.rate_limit,
        run_after_reply=action.run_after_reply,
    )


async def build_config(session: AsyncSession, company_id: uuid.UUID, agent_id: uuid.UUID) -> AgentConfig:
    agent = await get_agent(session, company_id, agent_id)
    actions = (await session.scalars(
        select(ActionDefinition).join(AgentAction, AgentAction.action_id == ActionDefinition.id)
        .where(AgentAction.agent_id == agent.id, ActionDefinition.company_id == company_id)
        .order_by(AgentAction.position))).all()
    _, source_ids = await _linked_ids(session, agent.id)
    company_name = await session.scalar(select(Company.name).where(Company.id == company_id))
    return AgentConfig(
        id=agent.id, company_id=agent.company_id, name=agent.name,
        personality=Personality.model_validate(agent.personality), dialect=Dialect.model_validate(agent.dialect),
        system_prompt=agent.system_prompt, faqs=[Faq.model_validate(f) for f in agent.faqs],
        scenarios=[Scenario.model_validate(s) for s in agent.scenarios], knowledge_source_ids=source_ids,
        action_definitions=[action_config(a) for a in actions],
        workflow_faqs=[Faq.model_validate(f) for f in agent.workflow_faqs],
        settings=AgentSettings.model_validate(agent.settings), config_version=agent.config_version,
        knowledge_version=agent.knowledge_version, company_name=company_name or "",
    )


async def agents_linked_to(session: AsyncSession, company_id: uuid.UUID, *, action_id: uuid.UUID | None = None,
                           source_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    if action_id is not None:
        statement = (select(AgentAction.agent_id).join(Agent, Agent.id == AgentAction.agent_id)
                     .where(AgentAction.action_id == action_id))
    else:
        statement = (select(AgentKnowledgeSource.agent_id).join(Agent, Agent.id == AgentKnowledgeSource.agent_id)
                     .where(AgentKnowledgeSource.source_id == source_id))
    ids = (await session.scalars(statement.where(Agent.company_id == company_id))).all()
    return list(ids)


async def bump_versions(session: AsyncSession, cache: AgentConfigCache, company_id: uuid.UUID,
                        agent_ids: list[uuid.UUID], *, config: bool = False, knowledge: bool = False) -> None:
    """A linked action or source changed: the agents using it see a new configuration."""
    if not agent_ids:
        return
    values: dict[str, Any] = {}
    if config:
        values["config_version"] = Agent.config_version + 1
    if knowledge:
        values["knowledge_version"] = Agent.knowledge_version + 1
    if values:
        await session.execute(update(Agent).where(Agent.id.in_(agent_ids), Agent.company_id == company_id)
                              .values(**values))
    after_commit(session, lambda: cache.invalidate(company_id, *agent_ids))
