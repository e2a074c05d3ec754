"""08 Post Actions: what follows the final text, as durable jobs off the response path.

The reply's own transaction queues (in one statement) a job for each piece of follow-up work that applies:
the actions configured to run after the reply, fact extraction, and the semantic-cache store. So the
work exists exactly when the reply does, survives a restart or `kill -9`, is retried with backoff, and
the response never waits for it. The jobs carry ids and small fields only: each reads the turn back
from the stored messages, so a customer forgotten meanwhile leaves nothing for it to do. Each job is
safe to run twice: actions already recorded on the reply are not run again, extraction skips a message
it already took facts from, and the cache store is an upsert.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import procrastinate
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.agents.schemas import ActionConfig, AgentConfig
from cortex.agents.service import build_config
from cortex.conversations.store import append_tool_calls, recent_history
from cortex.db.models import Message
from cortex.jobs.defer import defer_many_in
from cortex.jobs.system import retry_on_crash, runtime_of
from cortex.kit.errors import NotFound
from cortex.kit.runtime import Runtime
from cortex.llm import offline
from cortex.pipeline.cache_check import cache_port
from cortex.pipeline.context import RequestContext
from cortex.pipeline.memory_recall import memory_port
from cortex.pipeline.ports import PIPELINE, CompletedTurn, HistoryTurn
from cortex.tools.executor import ToolExecutor

logger = logging.getLogger(__name__)

FOLLOW_UP_QUEUE = "turns"
ACTIONS_TASK = "pipeline.after_reply_actions"
EXTRACT_TASK = "memory.extract_facts"
CACHE_STORE_TASK = "cache.store_reply"


def turn_args(ctx: RequestContext, reply_message_id: uuid.UUID) -> dict[str, Any]:
    """What a follow-up job needs beyond the stored messages (ids and small fields)."""
    assert ctx.customer_message_id is not None
    args: dict[str, Any] = {
        "company_id": str(ctx.company_id), "agent_id": str(ctx.config.id),
        "config_version": ctx.config.config_version, "knowledge_version": ctx.config.knowledge_version,
        "conversation_id": str(ctx.request.conversation_id), "customer_id": ctx.request.customer_id,
        "customer_message_id": str(ctx.customer_message_id), "reply_message_id": str(reply_message_id),
        # Every attempted tool call counts: even a refused one means the reply depended on a tool.
        "actions_executed": [outcome.name for outcome in ctx.tool_outcomes],
        "memory_fact_ids": [str(fact.id) for fact in ctx.kept_facts],
    }
    if ctx.options.history is not None:  # a stateless client's own history is stored nowhere else
        args["history"] = [{"role": t.role, "content": t.content} for t in ctx.history]
    return args


async def schedule(session: AsyncSession, ctx: RequestContext, runtime: Runtime, reply_message_id: uuid.UUID) -> None:
    """Queue the turn's follow-up jobs in `session`, the transaction that stores the reply."""
    agent = ctx.config
    args = turn_args(ctx, reply_message_id)
    lock = f"turn:{reply_message_id}"  # one follow-up of a turn at a time: they read and write its rows
    jobs: list[tuple[str, dict[str, Any], str, str | None]] = []
    if any(action.run_after_reply for action in agent.action_definitions):
        jobs.append((ACTIONS_TASK, args, FOLLOW_UP_QUEUE, lock))
    memory = memory_port(runtime)
    if memory.available and agent.settings.memory_enabled and memory.extracts_for(agent):
        jobs.append((EXTRACT_TASK, args, FOLLOW_UP_QUEUE, f"extract:{reply_message_id}"))
    cache = cache_port(runtime)
    if cache.available and agent.settings.cache.enabled and ctx.model_used != offline.MODEL_NAME:
        jobs.append((CACHE_STORE_TASK, args, FOLLOW_UP_QUEUE, f"cache:{reply_message_id}"))
    await defer_many_in(session, jobs)


# --- the jobs ---------------------------------------------------------------------------------------


async def _agent(runtime: Runtime, company_id: uuid.UUID, agent_id: uuid.UUID) -> AgentConfig | None:
    async def from_database() -> AgentConfig:
        async with runtime.database.session() as session:
            return await build_config(session, company_id, agent_id)

    try:
        return (await runtime.config_cache.get(company_id, agent_id, from_database)).config
    except NotFound:
        return None  # deleted since the reply


async def load_turn(runtime: Runtime, args: dict[str, Any]) -> tuple[CompletedTurn, Message] | None:
    """The stored turn a job follows up (and its customer message), or None when it is gone."""
    company_id = uuid.UUID(args["company_id"])
    question_id, reply_id = uuid.UUID(args["customer_message_id"]), uuid.UUID(args["reply_message_id"])
    agent = await _agent(runtime, company_id, uuid.UUID(args["agent_id"]))
    if agent is None:
        return None
    async with runtime.database.session() as session:
        rows = {m.id: m for m in await session.scalars(select(Message).where(
            Message.company_id == company_id, Message.id.in_((question_id, reply_id))))}
        question, reply = rows.get(question_id), rows.get(reply_id)
        if question is None or reply is None:
            return None  # the customer was forgotten (or the conversation deleted) meanwhile
        if "history" in args:
            history = [HistoryTurn(role=t["role"], content=t["content"]) for t in args["history"]]
        else:
            history = await recent_history(session, company_id, question.conversation_id, args["customer_id"],
                                           agent.settings.history_turns, before=question.created_at)
    turn = CompletedTurn(
        company_id=company_id, agent=agent, conversation_id=question.conversation_id,
        customer_id=args["customer_id"], customer_message_id=question_id, reply_message_id=reply_id,
        message=question.content, reply=reply.content, history=history,
        actions_executed=list(args["actions_executed"]),
        memory_fact_ids=[uuid.UUID(i) for i in args["memory_fact_ids"]])
    return turn, question


async def extract_facts(context: procrastinate.JobContext, **args: Any) -> None:
    runtime = runtime_of(context)
    loaded = await load_turn(runtime, args)
    if loaded is not None:
        await memory_port(runtime).after_turn(loaded[0])


async def store_in_cache(context: procrastinate.JobContext, **args: Any) -> None:
    runtime = runtime_of(context)
    loaded = await load_turn(runtime, args)
    if loaded is None:
        return
    turn = loaded[0]
    if (turn.agent.config_version, turn.agent.knowledge_version) != (args["config_version"],
                                                                     args["knowledge_version"]):
        return  # answered under a configuration or knowledge that has changed since: not the answer now
    await cache_port(runtime).store(turn)


def _arguments(action: ActionConfig, payload: dict[str, Any]) -> str:
    properties = (action.parameters_schema or {}).get("properties") or {}
    chosen = {k: v for k, v in payload.items() if k in properties} if properties else payload
    return json.dumps(chosen)


async def run_after_reply_actions(context: procrastinate.JobContext, **args: Any) -> None:
    runtime = runtime_of(context)
    loaded = await load_turn(runtime, args)
    if loaded is None:
        return
    turn, question = loaded
    actions = [action for action in turn.agent.action_definitions if action.run_after_reply]
    async with runtime.database.session() as session:
        reply = await session.scalar(select(Message).where(Message.id == turn.reply_message_id,
                                                           Message.company_id == turn.company_id))
        done = {call.get("name") for call in (reply.tool_calls if reply else []) if call.get("after_reply")}
    payload = {
        "conversation_id": str(turn.conversation_id), "customer_id": turn.customer_id,
        "channel": question.channel, "message": turn.message, "reply": turn.reply,
        "metadata": question.metadata_,
    }
    tools = getattr(runtime.components.get(PIPELINE), "tools", None)
    if not isinstance(tools, ToolExecutor):
        raise RuntimeError("the chat pipeline is not wired (cortex.app.wire_components)")
    for action in actions:
        if action.name in done:
            continue  # a run of this job that stopped after recording it
        outcome = await tools.execute(company_id=turn.company_id, actions=actions, name=action.name,
                                      raw_arguments=_arguments(action, payload))
        # Recorded one by one: a run that stops half-way repeats only the actions it had not recorded.
        async with runtime.database.session() as session:
            await append_tool_calls(session, company_id=turn.company_id, message_id=turn.reply_message_id,
                                    calls=[{**outcome.record(), "after_reply": True}],
                                    names=[outcome.name] if outcome.reached_webhook else [])


def register(app: procrastinate.App) -> None:
    for name, function in ((ACTIONS_TASK, run_after_reply_actions), (EXTRACT_TASK, extract_facts),
                           (CACHE_STORE_TASK, store_in_cache)):
        app.task(name=name, queue=FOLLOW_UP_QUEUE, pass_context=True, retry=retry_on_crash())(function)
