"""create_app(): the lifespan wires database, cache and the long-lived components."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cortex import __version__
from cortex.agents.config_cache import AgentConfigCache
from cortex.agents.endpoints import actions_router, agents_router
from cortex.api_docs import contract as api_contract
from cortex.api_docs import pages as api_docs
from cortex.auth.endpoints import keys_router, portal_router
from cortex.cache.endpoints import cache_router
from cortex.cache.service import SemanticCache
from cortex.conversations.endpoints import conversations_router, messages_router
from cortex.conversations.pending import PENDING_MESSAGES, PendingMessages, pending_messages
from cortex.customers.endpoints import customers_router
from cortex.db.engine import Database
from cortex.db.migrate import upgrade_async
from cortex.embeddings.embedder import Embedder
from cortex.events import tasks as event_tasks
from cortex.events.delivery import SENDER, WebhookSender
from cortex.events.endpoints import events_router, webhooks_router, ws_router
from cortex.events.stream import HUB, EventHub
from cortex.health.endpoints import health_router
from cortex.jobs.system import JOBS, JobSystem, job_system
from cortex.kit.body_limit import BodyLimitMiddleware
from cortex.kit.cache_backend import create_cache_backend
from cortex.kit.crypto import SecretBox
from cortex.kit.errors import ErrorBoundaryMiddleware, register_error_handlers
from cortex.kit.runtime import Runtime
from cortex.kit.text_guard import TextGuardMiddleware
from cortex.knowledge.endpoints import documents_router, jobs_router, knowledge_router, sources_router
from cortex.knowledge.service import KnowledgeComponent, knowledge_component
from cortex.llm.gateway import LLMGateway, count_tokens
from cortex.memory.component import MemoryComponent
from cortex.memory.endpoints import customer_facts_router, memory_router
from cortex.observability.endpoints import metrics_router
from cortex.observability.logs import configure_logging
from cortex.observability.middleware import ObservabilityMiddleware, RateLimitMiddleware
from cortex.observability.rate_limit import RATE_LIMITER, RateLimiter
from cortex.observability.telemetry import Telemetry
from cortex.openai_api.endpoints import openai_router
from cortex.pipeline import post_actions
from cortex.pipeline.endpoints import chat_router
from cortex.pipeline.ports import KNOWLEDGE, MEMORY, PIPELINE, SEMANTIC_CACHE
from cortex.pipeline.runner import ChatPipeline
from cortex.portal import knowledge_pages
from cortex.portal.site import mount_portal
from cortex.settings import Settings

logger = logging.getLogger(__name__)

# Each domain's routers, in the order they appear in the OpenAPI document.
ROUTERS = [
    health_router,
    portal_router,
    keys_router,
    agents_router,
    actions_router,
    sources_router,
    knowledge_router,
    documents_router,
    jobs_router,
    customers_router,
    customer_facts_router,
    chat_router,
    openai_router,
    conversations_router,
    messages_router,
    metrics_router,
    memory_router,
    cache_router,
    events_router,
    webhooks_router,
    ws_router,
]

# Routes that take a multipart file: their bodies may be as large as CORTEX_INGEST_MAX_FILE_BYTES.
UPLOAD_PATHS = ("/v1/knowledge/sources/{source_id}/files", knowledge_pages.UPLOAD_PATH)


async def build_runtime(settings: Settings, *, migrate: bool = True) -> Runtime:
    # LiteLLM must never reach for the network to fetch its price list.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    database = Database(settings)
    url = database.resolve_url()
    if migrate:
        await upgrade_async(url)
    database.connect()
    cache = create_cache_backend(settings.redis_url)
    telemetry = Telemetry.from_settings(settings)
    runtime = Runtime(
        settings=settings, database=database, cache=cache, secrets=SecretBox(settings.signing_secret),
        config_cache=AgentConfigCache(cache, settings.config_cache_ttl_seconds),
        embedder=Embedder(bge_m3_path=settings.bge_m3_path, litellm_api_base=settings.llm_api_base,
                          litellm_api_key=settings.llm_api_key,
                          litellm_timeout_seconds=settings.llm_timeout_seconds),
        llm=LLMGateway(settings, telemetry), telemetry=telemetry,
    )
    wire_components(runtime)
    return runtime


async def close_runtime(runtime: Runtime) -> None:
    # Components finish their background work first (post actions, extraction), then the pools close.
    for component in reversed(list(runtime.components.values())):
        closer = getattr(component, "aclose", None)
        if closer is not None:
            await closer()
    runtime.embedder.close()
    await runtime.cache.close()
    await runtime.database.dispose()
    runtime.database.stop_embedded()
    runtime.telemetry.shutdown()


def wire_components(runtime: Runtime) -> None:
    """Register the pipeline's components (knowledge, memory, semantic cache, ...) by their port names.

    Each domain adds one line here when it lands; until then the pipeline uses its Unavailable port.
    The pipeline comes first (after the pending messages' marks) so that it is closed last.
    """
    # Closed after the pipeline's turns have ended, so that their last failure marks are written.
    runtime.components[PENDING_MESSAGES] = PendingMessages(runtime)
    runtime.components[PIPELINE] = ChatPipeline(runtime)
    runtime.components[RATE_LIMITER] = RateLimiter.from_settings(runtime.settings)
    runtime.components[MEMORY] = MemoryComponent(runtime)
    runtime.components[SEMANTIC_CACHE] = SemanticCache(runtime)
    runtime.components[KNOWLEDGE] = KnowledgeComponent(runtime)
    runtime.components[SENDER] = WebhookSender(runtime)
    runtime.components[HUB] = EventHub(runtime)
    # Last, so closed first: the worker finishes (or hands back) its jobs while everything they use is open.
    runtime.components[JOBS] = JobSystem(runtime, [event_tasks.register, post_actions.register])


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """`runtime` lets tests share one runtime across apps; normally the lifespan builds it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.runtime = runtime
            yield
            return
        chosen = settings or Settings()
        configure_logging(chosen.log_level, chosen.log_format)  # in each worker process
        built = await build_runtime(chosen)
        app.state.runtime = built
        if built.settings.preload_embeddings:
            await built.embedder.warm_up()
            count_tokens(None, text="warm up")  # loads the tokenizer now rather than on the first chat
        # A serving worker also resumes knowledge jobs whose worker died; a command-line runtime does not.
        knowledge_component(built).serve()
        pending_messages(built).serve()
        if built.settings.jobs_in_serve:
            job_system(built).serve()
        try:
            yield
        finally:
            await close_runtime(built)

    # The docs pages are Cortex's own, with local assets (cortex.api_docs.pages); the schema is the contract.
    app = FastAPI(title="Cortex", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    if runtime is not None:
        app.state.runtime = runtime
    register_error_handlers(app)
    # Added last is outermost: the request id and the request's span wrap the 413s and 429s too, and
    # the body limit counts every byte that the text guard or a route reads.
    app.add_middleware(TextGuardMiddleware)
    app.add_middleware(RateLimitMiddleware)
    app.add_middleware(BodyLimitMiddleware, upload_paths=UPLOAD_PATHS)
    # Inside the request id and access log, outside everything that may fail (the rate limiter's Redis).
    app.add_middleware(ErrorBoundaryMiddleware)
    app.add_middleware(ObservabilityMiddleware)
    for router in ROUTERS:
        app.include_router(router)
    api_docs.install(app)
    api_contract.install(app)
    mount_portal(app)
    return app
