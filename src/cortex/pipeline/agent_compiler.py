"""07 Agent Compiler: render the prompt, call the model with the agent's actions as tools, run the tool loop.

Up to MAX_TOOL_ROUNDS rounds of tool calls are executed and fed back; after the last the model is
called once more without tools, which forces a text answer. Timings: `agent_compiler` is the whole
service; inside it, `tool_execution` is the time spent in webhooks and `tool_followup_calls` the time of
the model calls that followed tool results. `ctx.tool_rounds` counts the rounds whose tools were executed
(the response's `step_timings.tool_call_rounds`).

A streamed turn (`ctx.options.events`) streams every model call: text goes out as it arrives, tool
rounds run as they do otherwise. Once text has gone out the offline fallback no longer applies: it
would answer something other than what the customer has already read.

A customer never receives an empty reply: when every model of the tier (the gateway tries the fallback
model) answers with no text, the offline responder answers (an FAQ, a passage, or "I don't know" in the
agent's language), whether or not the agent enables `offline_fallback` for provider outages.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cortex.kit.errors import BadGateway, GatewayTimeout, ServiceUnavailable
from cortex.kit.runtime import Runtime
from cortex.llm import offline
from cortex.llm.gateway import Completion
from cortex.llm.offline import OfflineResponder
from cortex.pipeline.context import RequestContext
from cortex.pipeline.prompt import render_system_prompt
from cortex.tools.executor import ToolExecutor

MAX_TOOL_ROUNDS = 5


def tool_specs(ctx: RequestContext) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {
            "name": action.name, "description": action.description or action.name,
            "parameters": action.parameters_schema or {"type": "object", "properties": {}},
        }}
        for action in ctx.config.action_definitions if not action.run_after_reply
    ]


def build_messages(ctx: RequestContext) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": render_system_prompt(ctx)}]
    for turn in ctx.kept_history:
        messages.append({"role": "assistant" if turn.role == "assistant" else "user", "content": turn.content})
    messages.append({"role": "user", "content": ctx.request.message})
    return messages


async def compile_and_answer(ctx: RequestContext, runtime: Runtime, tools: ToolExecutor,
                             responder: OfflineResponder) -> None:
    with ctx.timed("agent_compiler"):
        messages = build_messages(ctx)  # renders the template: a broken one fails before any model call
        agent = ctx.config
        if not ctx.models:
            ctx.notes["llm"] = "no model configured: offline responder"
            await _offline(ctx, responder)
            return
        try:
            await _tool_loop(ctx, runtime, tools, messages)
        except (ServiceUnavailable, GatewayTimeout, BadGateway) as exc:
            events = ctx.options.events
            if not agent.settings.offline_fallback or (events is not None and events.text_sent):
                raise
            ctx.notes["llm"] = f"provider failed ({exc.detail}); offline fallback answered"
            await _offline(ctx, responder)
            return
        if not ctx.reply.strip():
            ctx.notes["llm"] = f"{ctx.model_used} answered with an empty reply; offline responder answered"
            await _offline(ctx, responder)


async def _offline(ctx: RequestContext, responder: OfflineResponder) -> None:
    # The passages as retrieved: an offline reply is one of them verbatim, not cut to a model's budget.
    ctx.reply = await responder.answer(ctx.config, ctx.request.message, ctx.chunks)
    ctx.model_used = offline.MODEL_NAME


async def _tool_loop(ctx: RequestContext, runtime: Runtime, tools: ToolExecutor,
                     messages: list[dict[str, Any]]) -> None:
    agent, options = ctx.config, ctx.options
    specs = tool_specs(ctx)
    callable_actions = [a for a in agent.action_definitions if not a.run_after_reply]
    temperature = agent.settings.temperature if options.temperature is None else options.temperature
    max_tokens = min(agent.settings.max_output_tokens, options.max_tokens or agent.settings.max_output_tokens)
    for round_number in range(MAX_TOOL_ROUNDS + 1):
        offer_tools = specs if specs and round_number < MAX_TOOL_ROUNDS else None
        started = time.perf_counter()
        if options.events is None:
            completion = await runtime.llm.complete(
                models=ctx.models, messages=messages, tools=offer_tools, temperature=temperature,
                max_tokens=max_tokens, prices=agent.settings.model_prices, tier=ctx.tier,
            )
        else:
            completion = await runtime.llm.stream(
                models=ctx.models, messages=messages, tools=offer_tools, temperature=temperature,
                max_tokens=max_tokens, prices=agent.settings.model_prices, tier=ctx.tier,
                on_text=options.events.delta,
            )
        if round_number > 0:
            ctx.timings["tool_followup_calls"] += round((time.perf_counter() - started) * 1000, 3)
        _account(ctx, completion)
        if not completion.tool_calls or offer_tools is None:
            ctx.reply = completion.text
            return
        messages.append(completion.message)
        with ctx.timed("tool_execution"):
            outcomes = await asyncio.gather(*(
                tools.execute(company_id=ctx.company_id, actions=callable_actions, name=call.name,
                              raw_arguments=call.arguments)
                for call in completion.tool_calls
            ))
        for call, outcome in zip(completion.tool_calls, outcomes, strict=True):
            ctx.tool_outcomes.append(outcome)
            if options.events is not None:
                options.events.tool(outcome.name, outcome.status, outcome.outcome, outcome.duration_ms)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.content})
        ctx.tool_rounds += 1


def _account(ctx: RequestContext, completion: Completion) -> None:
    ctx.model_used = completion.model
    ctx.tokens_input += completion.tokens_input
    ctx.tokens_output += completion.tokens_output
    ctx.cost_usd += completion.cost_usd
    ctx.llm_latency_ms += completion.latency_ms
