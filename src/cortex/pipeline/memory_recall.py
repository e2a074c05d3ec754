"""02 Memory Recall: the customer's profile and the facts most relevant to this message."""

from __future__ import annotations

from sqlalchemy import select

from cortex.db.models import Customer
from cortex.kit.runtime import Runtime
from cortex.pipeline.context import CustomerProfile, RequestContext
from cortex.pipeline.ports import MEMORY, MemoryPort, UnavailableMemory

# Facts get at most this share of the context window; the token optimizer trims further if needed.
FACT_BUDGET_SHARE = 0.1
MAX_FACT_TOKENS = 1_500


def memory_port(runtime: Runtime) -> MemoryPort:
    port: MemoryPort = runtime.components.get(MEMORY) or UnavailableMemory()
    return port


async def recall(ctx: RequestContext, runtime: Runtime, window: int) -> None:
    with ctx.timed("memory_recall"):
        async with runtime.database.session() as session:
            customer = await session.scalar(select(Customer).where(
                Customer.company_id == ctx.company_id, Customer.customer_id == ctx.request.customer_id))
        ctx.profile = CustomerProfile(
            customer_id=ctx.request.customer_id,
            first_name=customer.first_name if customer else None,
            last_name=customer.last_name if customer else None,
            email=customer.email if customer else None,
            organization=customer.organization if customer else None,
            segments=list(customer.segments) if customer else [],
            metadata=dict(customer.metadata_) if customer else {},
        )
        agent = ctx.config
        port = memory_port(runtime)
        if not agent.settings.memory_enabled:
            ctx.notes["memory"] = "disabled for this agent"
            return
        if not port.available:
            ctx.notes["memory"] = "unavailable: no memory component is installed"
            return
        ctx.facts = await port.recall(
            company_id=ctx.company_id, agent_id=agent.id, customer_id=ctx.request.customer_id,
            query=ctx.request.message, token_budget=min(MAX_FACT_TOKENS, int(window * FACT_BUDGET_SHARE)),
        )
