"""06 Model Router: the query's complexity → a tier → a model, with the reason kept for the record.

The classifier is a handful of explainable rules over the message (length, question count, cue words
in English and Arabic, code or maths), fast enough to run on every request (microseconds). The tier
maps to a model through the agent's settings first, then `CORTEX_MODEL_<TIER>`; a tier with no model
borrows the nearest configured tier, and says so in the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cortex.agents.schemas import AgentConfig
from cortex.pipeline.context import RequestContext
from cortex.settings import Settings

_GREETING = re.compile(
    r"^\W*(hi|hello|hey|thanks|thank you|thx|ok|okay|yes|no|bye|good (morning|evening|night)|cheers|great|cool|"
    r"مرحبا|أهلا|اهلا|السلام عليكم|شكرا|شكراً|نعم|لا|تمام|مع السلامة)\b[\W\w]{0,20}$",
    re.IGNORECASE,
)
_SEARCH = re.compile(
    r"\b(latest|today|tonight|this week|right now|currently|news|search|look up|google|weather|"
    r"exchange rate|stock price|current price)\b|اليوم|آخر الأخبار|ابحث",
    re.IGNORECASE,
)
_COMPLEX = re.compile(
    r"\b(step by step|compare|comparison|analy[sz]e|analysis|pros and cons|difference between|trade-?offs?|"
    r"explain why|in detail|calculate|evaluate|strategy|plan for|design|troubleshoot)\b|قارن|حلل|اشرح بالتفصيل",
    re.IGNORECASE,
)
_REASONING = re.compile(
    r"\b(why|how (do|can|should|would)|not working|doesn'?t work|error|problem|issue|broken|refund|complain\w*|"
    r"cancel\w*|charged twice|wrong)\b|لماذا|كيف|مشكلة|خطأ",
    re.IGNORECASE,
)
_CODE_OR_MATH = re.compile(r"```|\b(def|class|function|SELECT|import)\b|[=<>]{2}|\d+\s*[-+*/^]\s*\d+")

# Where a tier with no configured model borrows one, nearest first.
_BORROW = {
    "speed": ("nano", "sonnet", "complex", "search"),
    "nano": ("speed", "sonnet", "complex", "search"),
    "sonnet": ("complex", "nano", "speed", "search"),
    "complex": ("sonnet", "nano", "speed", "search"),
    "search": ("sonnet", "complex", "nano", "speed"),
}


@dataclass(frozen=True)
class Route:
    tier: str
    reason: str


def classify(message: str) -> Route:
    text = message.strip()
    words = len(text.split())
    questions = text.count("?") + text.count("؟")
    if words <= 8 and _GREETING.match(text):
        return Route("speed", f"greeting or acknowledgement ({words} words)")
    search_cue = _SEARCH.search(text)
    if search_cue:
        return Route("search", f"asks for current or external information ({search_cue.group(0)!r})")
    if _CODE_OR_MATH.search(text):
        return Route("complex", "contains code or a calculation")
    complex_cue = _COMPLEX.search(text)
    if complex_cue:
        return Route("complex", f"asks for analysis ({complex_cue.group(0)!r})")
    if words > 120 or questions >= 3:
        return Route("complex", f"long or multi-part ({words} words, {questions} questions)")
    reasoning_cue = _REASONING.search(text)
    if reasoning_cue:
        return Route("sonnet", f"needs reasoning or care ({reasoning_cue.group(0)!r})")
    if words > 40 or questions == 2:
        return Route("sonnet", f"medium length ({words} words, {questions} questions)")
    return Route("nano", f"short simple question ({words} words)")


def model_for(agent: AgentConfig, settings: Settings, tier: str) -> str | None:
    overrides: dict[str, str] = {str(k): v for k, v in agent.settings.tier_models.items()}
    return overrides.get(tier) or settings.model_for_tier(tier)


def resolve_models(agent: AgentConfig, settings: Settings, tier: str) -> tuple[list[str], str]:
    """Primary model (borrowed from the nearest tier if needed) and its fallback; empty when none is set."""
    note = ""
    primary = model_for(agent, settings, tier)
    if primary is None:
        for other in _BORROW[tier]:
            primary = model_for(agent, settings, other)
            if primary is not None:
                note = f"; no model for {tier}, using the {other} tier's"
                break
    models = [primary] if primary else []
    fallbacks: dict[str, str] = {str(k): v for k, v in agent.settings.fallback_models.items()}
    fallback = fallbacks.get(tier)
    if fallback and fallback not in models:
        models.append(fallback)
    return models, note


def route(ctx: RequestContext, settings: Settings) -> None:
    with ctx.timed("model_router"):
        agent = ctx.config
        if agent.settings.pinned_tier:
            chosen = Route(agent.settings.pinned_tier, "tier pinned by the agent")
        else:
            chosen = classify(ctx.request.message)
        models, note = resolve_models(agent, settings, chosen.tier)
        ctx.tier, ctx.tier_reason, ctx.models = chosen.tier, chosen.reason + note, models
