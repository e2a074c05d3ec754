"""04 Token Optimizer: fit the prompt to the model's context window, by priority.

Never cut: the agent's core identity (system prompt, personality, dialect, action descriptions) and
the customer's message. Then, from most to least important: recent turns, memory facts, knowledge
chunks, FAQs and scenarios, older turns. Trimming starts at the least important item of the lowest
group and removes whole items; only the last item that straddles the limit is cut partially (when what
is left of it is still worth sending).

The budget is the smallest context window among the models the router may pick for this agent, minus
the reserved output, because this step runs before the router (05 Cache Check must run first).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import litellm

from cortex.agents.schemas import AgentConfig
from cortex.llm.gateway import DEFAULT_CONTEXT_WINDOW, context_window
from cortex.pipeline.context import Budget, RequestContext
from cortex.pipeline.model_router import resolve_models
from cortex.pipeline.ports import HistoryTurn, KnowledgeChunk, MemoryFact
from cortex.settings import TIERS, Settings

RECENT_TURNS = 4  # the last two exchanges
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators per chat message
SECTION_OVERHEAD_TOKENS = 64  # headings and instructions the compiler adds around the sections
MIN_PARTIAL_TOKENS = 24  # a fragment shorter than this is dropped rather than sent

_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=50_000)
def count(model: str, text: str) -> int:
    return int(litellm.token_counter(model=model, text=text)) if text else 0


def truncate(model: str, text: str, tokens: int) -> str:
    encoded = litellm.encode(model=model, text=text)
    return str(litellm.decode(model=model, tokens=list(encoded[:tokens])))


@dataclass
class Item:
    kind: str  # recent_turns | facts | knowledge | faqs | older_turns
    text: str
    tokens: int
    payload: Any


# Highest priority first; trimming walks this list backwards.
GROUPS = ("recent_turns", "facts", "knowledge", "faqs", "older_turns")


def token_model(agent: AgentConfig, settings: Settings) -> tuple[str, int]:
    """The tokenizer to count with and the smallest window among the models this agent may use."""
    tiers = [agent.settings.pinned_tier] if agent.settings.pinned_tier else list(TIERS)
    models: list[str] = []
    for tier in tiers:
        for model in resolve_models(agent, settings, tier)[0]:
            if model not in models:
                models.append(model)
    if not models:
        return "", agent.settings.context_window or DEFAULT_CONTEXT_WINDOW
    window = min(context_window(model, agent.settings.context_window) for model in models)
    preferred = resolve_models(agent, settings, agent.settings.pinned_tier or "sonnet")[0]
    return (preferred[0] if preferred else models[0]), window


def core_identity(agent: AgentConfig) -> str:
    tools = [{"name": a.name, "description": a.description, "parameters": a.parameters_schema}
             for a in agent.action_definitions if not a.run_after_reply]
    return "\n".join([
        agent.system_prompt, agent.personality.name, ", ".join(agent.personality.traits),
        f"{agent.dialect.name} {agent.dialect.primary_language}", json.dumps(tools) if tools else "",
    ])


def _overlap(query_words: set[str], text: str) -> float:
    words = _words(text)
    return len(query_words & words) / (len(words) ** 0.5 or 1.0)


@lru_cache(maxsize=50_000)
def _words(text: str) -> frozenset[str]:
    """An agent's FAQs come back on every request: their words are split once."""
    return frozenset(w.lower() for w in _WORD.findall(text))


def _items(ctx: RequestContext, model: str) -> list[Item]:
    agent = ctx.config
    history = ctx.history
    recent, older = history[-RECENT_TURNS:], history[:-RECENT_TURNS]

    def turn(kind: str, t: HistoryTurn) -> Item:
        return Item(kind, t.content, count(model, t.content) + MESSAGE_OVERHEAD_TOKENS, t)

    items = [turn("recent_turns", t) for t in reversed(recent)]  # newest first: the last to go
    items += [Item("facts", f.fact, count(model, f.fact) + 2, f)
              for f in sorted(ctx.facts, key=lambda f: -f.score)]
    items += [Item("knowledge", c.text, count(model, c.text) + 8, c)
              for c in sorted(ctx.chunks, key=lambda c: -c.score)]
    query_words = {w.lower() for w in _WORD.findall(ctx.request.message)}
    faq_like: list[tuple[float, Item]] = []
    for faq in [*agent.faqs, *agent.workflow_faqs]:
        text = f"Q: {faq.question}\nA: {faq.answer}"
        faq_like.append((_overlap(query_words, text), Item("faqs", text, count(model, text) + 2,
                                                             {"question": faq.question, "answer": faq.answer})))
    for scenario in agent.scenarios:
        text = f"{scenario.name}: {scenario.description} " + " → ".join(scenario.steps)
        faq_like.append((_overlap(query_words, text), Item("faqs", text, count(model, text) + 2,
                                                             {"scenario": scenario.name, "text": text})))
    items += [item for _, item in sorted(faq_like, key=lambda pair: -pair[0])]
    items += [turn("older_turns", t) for t in reversed(older)]
    return items


def optimize(ctx: RequestContext, model: str, window: int) -> None:
    """`model` and `window` come from `token_model` (the runner needs the window earlier, for memory)."""
    with ctx.timed("token_optimizer"):
        agent = ctx.config
        reserved = agent.settings.max_output_tokens
        fixed = (count(model, core_identity(agent)) + count(model, ctx.request.message)
                 + SECTION_OVERHEAD_TOKENS + 2 * MESSAGE_OVERHEAD_TOKENS)
        items = _items(ctx, model)
        before = fixed + sum(item.tokens for item in items)
        available = window - reserved - fixed
        budget = Budget(before=before, window=window, reserved_output=reserved)
        kept = _trim(items, available, model, budget)
        budget.after = fixed + sum(item.tokens for item in kept)
        ctx.budget = budget
        _assign(ctx, kept)


def _trim(items: list[Item], available: int, model: str, budget: Budget) -> list[Item]:
    overflow = sum(item.tokens for item in items) - max(available, 0)
    if overflow <= 0:
        return items
    ordered = sorted(range(len(items)), key=lambda i: GROUPS.index(items[i].kind))
    keep = list(items)
    for index in reversed(ordered):  # lowest group first, least important item of it first
        if overflow <= 0:
            break
        item = keep[index]
        remainder = item.tokens - overflow
        if remainder >= MIN_PARTIAL_TOKENS and isinstance(item.payload, (KnowledgeChunk, MemoryFact, HistoryTurn)):
            cut = _cut_to(model, item.text, remainder - 8)
            keep[index] = Item(item.kind, cut, count(model, cut) + 8, _with_text(item.payload, cut))
            budget.truncated[item.kind] = budget.truncated.get(item.kind, 0) + 1
            overflow -= item.tokens - keep[index].tokens
            continue
        overflow -= item.tokens
        keep[index] = Item(item.kind, "", 0, None)
        budget.dropped[item.kind] = budget.dropped.get(item.kind, 0) + 1
    return [item for item in keep if item.payload is not None]


def _cut_to(model: str, text: str, tokens: int) -> str:
    """Decoding a token prefix can re-encode a little longer; shrink until it really fits."""
    target = tokens
    cut = truncate(model, text, target)
    while target > 0 and count(model, cut) > tokens:
        target -= 2
        cut = truncate(model, text, target)
    return cut


def _with_text(payload: Any, text: str) -> Any:
    if isinstance(payload, KnowledgeChunk):
        return replace(payload, text=text)
    if isinstance(payload, MemoryFact):
        return MemoryFact(payload.id, text, payload.category, payload.confidence, payload.score)
    return HistoryTurn(payload.role, text)


def _assign(ctx: RequestContext, kept: list[Item]) -> None:
    by_kind: dict[str, list[Any]] = {kind: [] for kind in GROUPS}
    for item in kept:
        by_kind[item.kind].append(item.payload)
    # Turns were listed newest first; the prompt wants them in conversation order.
    ctx.kept_history = by_kind["older_turns"][::-1] + by_kind["recent_turns"][::-1]
    ctx.kept_facts = by_kind["facts"]
    ctx.kept_chunks = by_kind["knowledge"]
    ctx.kept_faqs = by_kind["faqs"]
