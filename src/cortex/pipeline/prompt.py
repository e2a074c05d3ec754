"""The agent's system prompt: its Jinja2 template, rendered in a sandbox, plus the sections it leaves out.

A template may place any of the variables itself (`{% for f in facts %}` ...); whatever it does not
reference is appended in a standard section, so an agent with an empty prompt still gets its
personality, language, customer facts, knowledge and FAQs. Template errors are the agent's
configuration errors (422), never a 500.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from jinja2 import TemplateError

from cortex.agents.templates import parse
from cortex.kit.errors import ConfigurationError
from cortex.pipeline.context import CustomerProfile, RequestContext

GROUNDING = ("Answer only from the information above and the tools' results. If the answer is not there, "
             "say honestly that you don't know; never invent facts, prices, dates or policies.")


def variables(ctx: RequestContext) -> dict[str, Any]:
    """Exactly the variables `agents.templates.VARIABLES` lists (a save-time check relies on it)."""
    agent = ctx.config
    profile = ctx.profile or CustomerProfile(customer_id=ctx.request.customer_id)
    return {
        "message": ctx.request.message,
        "agent_name": agent.name,
        "company_name": agent.company_name,
        "current_date": datetime.now(UTC).date().isoformat(),
        "personality": agent.personality.model_dump(mode="json"),
        "dialect": agent.dialect.model_dump(mode="json"),
        "customer": asdict(profile),
        "facts": [{"fact": f.fact, "category": f.category, "confidence": f.confidence} for f in ctx.kept_facts],
        "knowledge": [{"text": c.text, "heading_path": c.heading_path, "source_id": str(c.source_id),
                       "score": c.score, "document_name": c.document_name or ""} for c in ctx.kept_chunks],
        "faqs": [f for f in ctx.kept_faqs if "question" in f],
        "scenarios": [f for f in ctx.kept_faqs if "scenario" in f],
        "history": [{"role": t.role, "content": t.content} for t in ctx.kept_history],
        "actions": [{"name": a.name, "description": a.description} for a in agent.action_definitions
                    if not a.run_after_reply],
        "channel": ctx.request.channel,
        "metadata": ctx.request.metadata,
    }


def _label(document_name: str | None, heading_path: list[str]) -> str:
    """Where a passage comes from: its document (so that the reply can name it), then its headings."""
    headings = " > ".join(heading_path)
    if not document_name:
        return headings
    return f"({document_name}) {headings}".strip()


def render_system_prompt(ctx: RequestContext) -> str:
    agent = ctx.config
    values = variables(ctx)
    used: frozenset[str] = frozenset()
    parts: list[str] = []
    if agent.system_prompt.strip():
        try:
            template, used = parse(agent.system_prompt)
            parts.append(template.render(**values).strip())
        except TemplateError as exc:
            raise ConfigurationError(f"the agent's system prompt template failed: {exc}") from exc
    if "personality" not in used and "agent_name" not in used:
        traits = ", ".join(agent.personality.traits)
        parts.append(f"You are {agent.personality.name}, the assistant of {agent.name}."
                     + (f" Your traits: {traits}." if traits else ""))
    if "dialect" not in used:
        parts.append(f"Reply in {agent.dialect.name} (language code {agent.dialect.primary_language}), "
                     f"on the {ctx.request.channel} channel.")
    profile = ctx.profile
    if "customer" not in used and profile is not None:
        known = {k: v for k, v in vars(profile).items() if v and k not in ("metadata", "segments")}
        parts.append("Customer: " + ", ".join(f"{k}={v}" for k, v in known.items()))
    if "facts" not in used and ctx.kept_facts:
        parts.append("What we know about this customer:\n" + "\n".join(f"- {f.fact}" for f in ctx.kept_facts))
    if "knowledge" not in used and ctx.kept_chunks:
        parts.append("Knowledge:\n" + "\n\n".join(
            f"[{i}] {_label(c.document_name, c.heading_path)}\n{c.text}".strip()
            for i, c in enumerate(ctx.kept_chunks, 1)))
    faqs = values["faqs"]
    if "faqs" not in used and faqs:
        parts.append("Frequently asked questions:\n" + "\n".join(
            f"Q: {f['question']}\nA: {f['answer']}" for f in faqs))
    scenarios = values["scenarios"]
    if "scenarios" not in used and scenarios:
        parts.append("Scenarios:\n" + "\n".join(f"- {s['text']}" for s in scenarios))
    parts.append(GROUNDING)
    return "\n\n".join(part for part in parts if part)
