"""03 Context Engine: retrieval over the agent's knowledge for the customer's message."""

from __future__ import annotations

from cortex.kit.runtime import Runtime
from cortex.pipeline.context import RequestContext
from cortex.pipeline.ports import KNOWLEDGE, KnowledgePort, UnavailableKnowledge


def knowledge_port(runtime: Runtime) -> KnowledgePort:
    port: KnowledgePort = runtime.components.get(KNOWLEDGE) or UnavailableKnowledge()
    return port


async def retrieve(ctx: RequestContext, runtime: Runtime) -> None:
    agent = ctx.config
    port = knowledge_port(runtime)
    top_k = agent.settings.knowledge_top_k
    if top_k == 0:
        ctx.notes["knowledge"] = "disabled for this agent (knowledge_top_k 0)"
        return
    if not port.available:
        ctx.notes["knowledge"] = "unavailable: no knowledge component is installed"
        return
    warnings: list[str] = []
    with ctx.timed("context_engine"):
        ctx.chunks = await port.retrieve(company_id=ctx.company_id, agent=agent, query=ctx.request.message,
                                         top_k=top_k, warnings=warnings)
    if warnings:  # e.g. the query embedding failed: the reply used full-text results only
        ctx.notes["knowledge"] = "; ".join(warnings)
