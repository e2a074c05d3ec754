"""The agent configuration cache (5 minutes) shared by the config endpoint and the chat pipeline."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cortex.agents.schemas import AgentConfig
from cortex.kit.cache_backend import CacheBackend


@dataclass(frozen=True)
class ConfigLookup:
    config: AgentConfig
    cache_hit: bool


class AgentConfigCache:
    def __init__(self, backend: CacheBackend, ttl_seconds: int) -> None:
        self.backend = backend
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def key(company_id: uuid.UUID, agent_id: uuid.UUID) -> str:
        return f"cortex:agent_config:{company_id}:{agent_id}"

    async def get(
        self, company_id: uuid.UUID, agent_id: uuid.UUID, load: Callable[[], Awaitable[AgentConfig]]
    ) -> ConfigLookup:
        key = self.key(company_id, agent_id)
        raw = await self.backend.get(key)
        if raw is not None:
            return ConfigLookup(AgentConfig.model_validate_json(raw), cache_hit=True)
        config = await load()
        await self.backend.set(key, config.model_dump_json(), self.ttl_seconds)
        return ConfigLookup(config, cache_hit=False)

    async def invalidate(self, company_id: uuid.UUID, *agent_ids: uuid.UUID) -> None:
        if agent_ids:
            await self.backend.delete(*(self.key(company_id, a) for a in agent_ids))
