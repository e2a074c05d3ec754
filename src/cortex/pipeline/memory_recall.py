"""02 Memory Recall: the facts most relevant to this message (and the customer's profile)."""

from __future__ import annotations

from typing import Any

from cortex.kit.runtime import Runtime
from cortex.pipeline.context import CustomerProfile, RequestContext
from cortex.pipeline.ports import MEMORY, MemoryPort, UnavailableMemory

# Facts get at most this share of the context window; the token optimizer trims further if needed.
FACT_BUDGET_SHARE = 0.1
MAX_FACT_TOKENS = 1_500


def memory_port(runtime: Runtime) -> MemoryPort:
    port: MemoryPort = runtime.components.get(MEMORY) or UnavailableMemory()
    return port


def profile_of(customer_id: str, customer: dict[str, Any] | None) -> CustomerProfile:
    """The profile from the customer's columns as `store.read_turn` reads them beside the conversation."""
    if customer is None:
        return CustomerProfile(customer_id=customer_id)
    return CustomerProfile(
        customer_id=customer_id, first_name=customer.get("first_name"), last_name=customer.get("last_name"),
        email=customer.get("email"), organization=customer.get("organization"),
        segments=list(customer.get("segments") or []), metadata=dict(customer.get("metadata") or {}),
    )


async def recall(ctx: RequestContext, runtime: Runtime, window: int) -> None:
    with ctx.timed("memory_recall"):
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
