"""The sandboxed Jinja2 environment agent prompts are written in; checked on save, rendered per request.

A template is checked when an agent is created or updated, so that a broken one is refused with its line
instead of failing every chat later: it must parse, read only the variables in `VARIABLES`, and render
against a sample of them (which catches, say, a filter applied to the wrong type).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Sandboxed and immutable: a prompt template can read what it is given and nothing else.
ENVIRONMENT = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                                            lstrip_blocks=True)

# What a prompt template may read, with what each holds; `pipeline/prompt.py` supplies exactly these.
VARIABLES: dict[str, str] = {
    "message": "the customer's message",
    "channel": "the channel it came on (whatsapp, web, ...)",
    "metadata": "the request's metadata object",
    "customer": "the customer's profile: customer_id, first_name, last_name, email, organization, "
                "metadata, segments",
    "facts": "recalled facts: a list of {fact, category, confidence}",
    "knowledge": "retrieved passages: a list of {text, heading_path, source_id, score, document_name}",
    "faqs": "the FAQs kept for this message: a list of {question, answer}",
    "scenarios": "the scenarios kept for this message: a list of {scenario (its name), text}",
    "history": "earlier turns: a list of {role, content}",
    "actions": "the actions the model may call: a list of {name, description}",
    "personality": "the agent's personality: {id, name, traits}",
    "dialect": "the agent's dialect: {name, primary_language}",
    "agent_name": "the agent's name",
    "company_name": "the company's name",
    "current_date": "today's date in UTC, YYYY-MM-DD",
}

# A sample of every variable, the shapes the pipeline gives them, for the trial render on save.
_SAMPLE: dict[str, Any] = {
    "message": "Where is my order?", "channel": "whatsapp", "metadata": {},
    "customer": {"customer_id": "customer-1", "first_name": "Layla", "last_name": "Hassan",
                 "email": "layla@example.com", "organization": None, "metadata": {}, "segments": []},
    "facts": [{"fact": "Prefers e-mail.", "category": "preference", "confidence": 0.9}],
    "knowledge": [{"text": "Delivery takes 2 to 4 days.", "heading_path": ["Shipping"], "source_id": "s",
                  "score": 0.8, "document_name": "shipping.pdf"}],
    "faqs": [{"question": "When do you open?", "answer": "At nine."}],
    "scenarios": [{"scenario": "refund", "text": "Offer a refund for damaged items."}],
    "history": [{"role": "customer", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}],
    "actions": [{"name": "order_status", "description": "Look up an order"}],
    "agent_name": "Support", "company_name": "Acme", "current_date": "2026-01-31",
}


@dataclass(frozen=True)
class TemplateProblem:
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.message}; a template may use: {', '.join(VARIABLES)}"


@lru_cache(maxsize=1_024)
def parse(source: str) -> tuple[Template, frozenset[str]]:
    """The compiled template and the variables it reads (so the caller knows what it places itself)."""
    ast = ENVIRONMENT.parse(source)
    return ENVIRONMENT.from_string(ast), frozenset(meta.find_undeclared_variables(ast))


def problem(source: str, sample: dict[str, Any]) -> TemplateProblem | None:
    """Why `source` cannot serve as a prompt template, or None when it can.

    `sample` adds what only the caller knows the shape of (the agent's personality and dialect) to
    `_SAMPLE`.
    """
    try:
        ast = ENVIRONMENT.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(exc.lineno, f"syntax error: {exc.message}")
    unknown = sorted(meta.find_undeclared_variables(ast) - VARIABLES.keys())
    if unknown:
        return TemplateProblem(_first_line(ast, unknown[0]), f"unknown variable {unknown[0]!r}")
    values = {**_SAMPLE, **sample}
    try:
        ENVIRONMENT.from_string(ast).render(**values)
    except TemplateError as exc:
        return TemplateProblem(_render_line(), f"fails to render: {exc}")
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        return TemplateProblem(_render_line(), f"fails to render: {type(exc).__name__}: {exc}")
    return None


def _first_line(ast: nodes.Template, name: str) -> int | None:
    for node in ast.find_all(nodes.Name):
        if node.name == name and node.ctx == "load":
            return int(node.lineno)
    return None


def _render_line() -> int | None:
    """The template line the exception being handled was raised at (Jinja maps its frames to it)."""
    traceback = sys.exc_info()[2]
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line
