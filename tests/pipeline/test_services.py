"""The pipeline's pure services on their own: model router and token optimizer."""

from __future__ import annotations

import time
import uuid

import pytest

from cortex.agents.schemas import AgentConfig, AgentSettings, Dialect, Faq, Personality
from cortex.pipeline.context import RequestContext
from cortex.pipeline.model_router import classify, resolve_models, route
from cortex.pipeline.ports import HistoryTurn, KnowledgeChunk, MemoryFact
from cortex.pipeline.schemas import ChatRequest
from cortex.pipeline.token_optimizer import count, optimize
from cortex.settings import Settings


def _agent(**settings: object) -> AgentConfig:
    return AgentConfig(
        id=uuid.uuid4(), company_id=uuid.uuid4(), name="Support", personality=Personality(name="Sam"),
        dialect=Dialect(), system_prompt="You are the support agent of ACME. " * 5,
        faqs=[Faq(question=f"Question {i} about shipping?", answer="Answer " + "word " * 40) for i in range(30)],
        scenarios=[], knowledge_source_ids=[], action_definitions=[], workflow_faqs=[],
        settings=AgentSettings.model_validate(settings), config_version=1, knowledge_version=1,
    )


def _ctx(agent: AgentConfig, message: str = "How much does shipping cost?") -> RequestContext:
    request = ChatRequest(company_id=agent.company_id, agent_id=agent.id, conversation_id=uuid.uuid4(),
                          customer_id="c1", message=message)
    ctx = RequestContext(request=request, request_id="r1")
    ctx.agent = agent
    return ctx


@pytest.mark.parametrize(("message", "tier"), [
    ("hi", "speed"), ("Thanks!", "speed"), ("شكرا", "speed"),
    ("What are your opening hours?", "nano"),
    ("My card was charged twice, why?", "sonnet"),
    ("Compare the premium and basic plans step by step", "complex"),
    ("What is the latest news on my shipment today?", "search"),
    ("what is 12 * 7", "complex"),
])
def test_router_classifies_explainably(message: str, tier: str) -> None:
    chosen = classify(message)
    assert chosen.tier == tier and chosen.reason


def test_router_is_fast() -> None:
    message = "My order arrived damaged and I would like to know how the refund works for items over 100 dollars"
    started = time.perf_counter()
    for _ in range(1000):
        classify(message)
    assert (time.perf_counter() - started) / 1000 < 0.002  # the bound, with a wide margin


def test_tier_to_model_agent_first_then_settings_then_borrow() -> None:
    settings = Settings(model_sonnet="openai/global-sonnet", model_nano=None)
    agent = _agent(tier_models={"complex": "openai/agent-complex"}, fallback_models={"complex": "openai/fb"})
    assert resolve_models(agent, settings, "complex") == (["openai/agent-complex", "openai/fb"], "")
    assert resolve_models(agent, settings, "sonnet")[0] == ["openai/global-sonnet"]
    models, note = resolve_models(agent, settings, "nano")
    assert models == ["openai/global-sonnet"] and "sonnet" in note
    assert resolve_models(_agent(), Settings(), "nano") == ([], "")


def test_pinned_tier_wins() -> None:
    ctx = _ctx(_agent(pinned_tier="complex"), "hi")
    route(ctx, Settings(model_complex="openai/x"))
    assert ctx.tier == "complex" and ctx.tier_reason and "pinned" in ctx.tier_reason and ctx.models == ["openai/x"]


def _fill(ctx: RequestContext) -> None:
    ctx.history = [HistoryTurn("customer" if i % 2 == 0 else "assistant", f"turn {i} " + "blah " * 60)
                   for i in range(12)]
    ctx.facts = [MemoryFact(uuid.uuid4(), f"fact {i} " + "detail " * 10, "general", 1.0, 1 - i / 10) for i in range(5)]
    ctx.chunks = [KnowledgeChunk(uuid.uuid4(), uuid.uuid4(), f"chunk {i} " + "text " * 150, ["Doc"], 1 - i / 10)
                  for i in range(5)]


def test_everything_kept_when_it_fits() -> None:
    ctx = _ctx(_agent(context_window=100_000))
    _fill(ctx)
    optimize(ctx, "", 100_000)
    assert ctx.budget.before == ctx.budget.after and ctx.budget.savings_pct == 0.0
    assert len(ctx.kept_history) == 12 and len(ctx.kept_chunks) == 5 and len(ctx.kept_faqs) == 30
    assert [t.content for t in ctx.kept_history] == [t.content for t in ctx.history]  # conversation order


def test_trims_lowest_priority_first_and_never_the_core() -> None:
    agent = _agent()
    ctx = _ctx(agent)
    _fill(ctx)
    window = 3_000
    optimize(ctx, "", window)
    budget = ctx.budget
    assert budget.after <= window - agent.settings.max_output_tokens
    assert budget.before > budget.after and budget.savings_pct > 0
    # Older turns go first, then FAQs; the recent turns and facts survive.
    assert budget.dropped.get("older_turns") == 8
    assert len(ctx.kept_history) >= 4 and ctx.kept_history[-1].content == ctx.history[-1].content
    assert len(ctx.kept_facts) == 5
    assert "faqs" in budget.dropped
    # The FAQs kept are the ones most related to the message.
    assert all("shipping" in f["question"] for f in ctx.kept_faqs)


def test_partial_cut_only_for_the_item_straddling_the_limit() -> None:
    agent = _agent()
    ctx = _ctx(agent)
    ctx.chunks = [KnowledgeChunk(uuid.uuid4(), uuid.uuid4(), "alpha " * 400, ["A"], 0.9)]
    optimize(ctx, "", 100_000)
    full = ctx.budget.before
    ctx2 = _ctx(agent)
    ctx2.chunks = list(ctx.chunks)
    agent_tokens_without_faqs = full - sum(count("", f"Q: {f.question}\nA: {f.answer}") + 2 for f in agent.faqs)
    window = agent_tokens_without_faqs - 200 + agent.settings.max_output_tokens
    optimize(ctx2, "", window)
    assert ctx2.budget.dropped.get("faqs") == 30
    assert ctx2.budget.truncated.get("knowledge") == 1
    assert 0 < len(ctx2.kept_chunks[0].text) < len(ctx.chunks[0].text)
    assert ctx2.budget.after <= window - agent.settings.max_output_tokens
