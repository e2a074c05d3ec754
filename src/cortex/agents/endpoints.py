"""Agents and actions: thin routers over the services."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response, status

from cortex.agents import actions as action_service
from cortex.agents import service
from cortex.agents.schemas import (
    ActionCreate,
    ActionPublic,
    ActionUpdate,
    AgentConfig,
    AgentCreate,
    AgentPublic,
    AgentUpdate,
)
from cortex.auth.deps import AgentsAuth
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.pagination import ListParams, Page, list_query

agents_router = APIRouter(prefix="/v1/agents", tags=["agents"])
actions_router = APIRouter(prefix="/v1/actions", tags=["actions"])


@agents_router.post("", response_model=AgentPublic, status_code=status.HTTP_201_CREATED)
async def create_agent(body: AgentCreate, principal: AgentsAuth, session: SessionDep) -> AgentPublic:
    agent = await service.create_agent(session, principal.company_id, body)
    return await service.to_public(session, agent)


@agents_router.get("", response_model=Page[AgentPublic])
async def list_agents(principal: AgentsAuth, session: SessionDep,
                      page: Annotated[ListParams, list_query(service.AGENT_LISTING)]) -> Page[AgentPublic]:
    return await service.list_agents(session, principal.company_id, page)


@agents_router.get("/{agent_id}", response_model=AgentPublic)
async def get_agent(agent_id: uuid.UUID, principal: AgentsAuth, session: SessionDep) -> AgentPublic:
    return await service.to_public(session, await service.get_agent(session, principal.company_id, agent_id))


@agents_router.get("/{agent_id}/config", response_model=AgentConfig)
async def get_agent_config(agent_id: uuid.UUID, principal: AgentsAuth, session: SessionDep,
                           runtime: RuntimeDep, response: Response) -> AgentConfig:
    lookup = await runtime.config_cache.get(
        principal.company_id, agent_id, lambda: service.build_config(session, principal.company_id, agent_id)
    )
    response.headers["X-Config-Cache"] = "hit" if lookup.cache_hit else "miss"
    return lookup.config


@agents_router.patch("/{agent_id}", response_model=AgentPublic)
async def update_agent(agent_id: uuid.UUID, body: AgentUpdate, principal: AgentsAuth, session: SessionDep,
                       runtime: RuntimeDep) -> AgentPublic:
    agent = await service.update_agent(session, runtime.config_cache, principal.company_id, agent_id, body)
    return await service.to_public(session, agent)


@agents_router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(agent_id: uuid.UUID, principal: AgentsAuth, session: SessionDep,
                       runtime: RuntimeDep) -> Response:
    await service.delete_agent(session, runtime.config_cache, principal.company_id, agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@actions_router.post("", response_model=ActionPublic, status_code=status.HTTP_201_CREATED)
async def create_action(body: ActionCreate, principal: AgentsAuth, session: SessionDep,
                        runtime: RuntimeDep) -> ActionPublic:
    action = await action_service.create_action(session, runtime.secrets, principal.company_id, body,
                                                allow_private=runtime.settings.allow_private_webhooks)
    return action_service.to_public(action)


@actions_router.get("", response_model=Page[ActionPublic])
async def list_actions(principal: AgentsAuth, session: SessionDep,
                       page: Annotated[ListParams, list_query(action_service.ACTION_LISTING)]) -> Page[ActionPublic]:
    return await action_service.list_actions(session, principal.company_id, page)


@actions_router.get("/{action_id}", response_model=ActionPublic)
async def get_action(action_id: uuid.UUID, principal: AgentsAuth, session: SessionDep) -> ActionPublic:
    return action_service.to_public(await action_service.get_action(session, principal.company_id, action_id))


@actions_router.patch("/{action_id}", response_model=ActionPublic)
async def update_action(action_id: uuid.UUID, body: ActionUpdate, principal: AgentsAuth, session: SessionDep,
                        runtime: RuntimeDep) -> ActionPublic:
    action = await action_service.update_action(session, runtime.secrets, runtime.config_cache,
                                                principal.company_id, action_id, body,
                                                allow_private=runtime.settings.allow_private_webhooks)
    return action_service.to_public(action)


@actions_router.delete("/{action_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_action(action_id: uuid.UUID, principal: AgentsAuth, session: SessionDep,
                        runtime: RuntimeDep) -> Response:
    await action_service.delete_action(session, runtime.config_cache, principal.company_id, action_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
