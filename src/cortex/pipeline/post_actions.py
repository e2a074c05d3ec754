"""08 Post Actions: what follows the final text, off the response path.

Actions configured to run after the reply are executed in the background and their records join the
stored reply when they finish; the turn is handed to memory (fact extraction) and to the semantic
cache, whose own rules decide whether it may be cached.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from cortex.agents.schemas import ActionConfig
from cortex.conversations.store import append_tool_calls
from cortex.kit.runtime import Runtime
from cortex.llm import offline
from cortex.pipeline.background import BackgroundTasks
from cortex.pipeline.cache_check import cache_port
from cortex.pipeline.context import RequestContext
from cortex.pipeline.memory_recall import memory_port
from cortex.pipeline.ports import CompletedTurn
from cortex.tools.executor import ToolExecutor


def completed_turn(ctx: RequestContext, reply_message_id: uuid.UUID) -> CompletedTurn:
    assert ctx.customer_message_id is not None
    return CompletedTurn(
        company_id=ctx.company_id, agent=ctx.config, conversation_id=ctx.request.conversation_id,
        customer_id=ctx.request.customer_id, customer_message_id=ctx.customer_message_id,
        reply_message_id=reply_message_id, message=ctx.request.message, reply=ctx.reply,
        history=list(ctx.history),
        # Every attempted tool call counts: even a refused one means the reply depended on a tool.
        actions_executed=[outcome.name for outcome in ctx.tool_outcomes],
        memory_fact_ids=[fact.id for fact in ctx.kept_facts],
    )


async def run(ctx: RequestContext, runtime: Runtime, tools: ToolExecutor, background: BackgroundTasks,
              reply_message_id: uuid.UUID) -> None:
    agent = ctx.config
    turn = completed_turn(ctx, reply_message_id)
    after_reply = [action for action in agent.action_definitions if action.run_after_reply]
    if after_reply:
        background.spawn(_run_after_reply(runtime, tools, ctx, after_reply, reply_message_id),
                         name=f"after-reply-actions:{reply_message_id}")
    memory = memory_port(runtime)
    if memory.available and agent.settings.memory_enabled:
        await memory.after_turn(turn)  # schedules extraction itself and returns at once
    cache = cache_port(runtime)
    if cache.available and agent.settings.cache.enabled and ctx.model_used != offline.MODEL_NAME:
        background.spawn(cache.store(turn), name=f"cache-store:{reply_message_id}")


def _arguments(action: ActionConfig, payload: dict[str, Any]) -> str:
    properties = (action.parameters_schema or {}).get("properties") or {}
    chosen = {k: v for k, v in payload.items() if k in properties} if properties else payload
    return json.dumps(chosen)


async def _run_after_reply(runtime: Runtime, tools: ToolExecutor, ctx: RequestContext,
                           actions: list[ActionConfig], reply_message_id: uuid.UUID) -> None:
    payload = {
        "conversation_id": str(ctx.request.conversation_id), "customer_id": ctx.request.customer_id,
        "channel": ctx.request.channel, "message": ctx.request.message, "reply": ctx.reply,
        "metadata": ctx.request.metadata,
    }
    outcomes = [
        await tools.execute(company_id=ctx.company_id, actions=actions, name=action.name,
                            raw_arguments=_arguments(action, payload))
        for action in actions
    ]
    records = [{**outcome.record(), "after_reply": True} for outcome in outcomes]
    async with runtime.database.session() as session:
        await append_tool_calls(session, company_id=ctx.company_id, message_id=reply_message_id, calls=records,
                                names=[o.name for o in outcomes if o.reached_webhook])
