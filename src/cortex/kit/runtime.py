"""The long-lived objects of one running service, built once in the app lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cortex.agents.config_cache import AgentConfigCache
from cortex.db.engine import Database
from cortex.embeddings.embedder import Embedder
from cortex.kit.cache_backend import CacheBackend
from cortex.kit.crypto import SecretBox
from cortex.llm.gateway import LLMGateway
from cortex.observability.telemetry import Telemetry
from cortex.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    database: Database
    cache: CacheBackend
    secrets: SecretBox
    config_cache: AgentConfigCache
    embedder: Embedder
    llm: LLMGateway
    # Components added by later parts of the service (pipeline, embedder, ...), by name.
    components: dict[str, Any] = field(default_factory=dict)
    # Metrics and tracing; the gateway gets the same object (build_runtime).
    telemetry: Telemetry = field(default_factory=Telemetry)
