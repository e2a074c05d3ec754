"""The sandboxed Jinja2 environment agent prompts are written in; checked on save, rendered per request."""

from __future__ import annotations

from functools import lru_cache

from jinja2 import StrictUndefined, Template, TemplateError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Sandboxed and immutable: a prompt template can read what it is given and nothing else.
ENVIRONMENT = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                                            lstrip_blocks=True)


@lru_cache(maxsize=1_024)
def parse(source: str) -> tuple[Template, frozenset[str]]:
    """The compiled template and the variables it reads (so the caller knows what it places itself)."""
    ast = ENVIRONMENT.parse(source)
    return ENVIRONMENT.from_string(ast), frozenset(meta.find_undeclared_variables(ast))


def syntax_error(source: str) -> str | None:
    try:
        parse(source)
    except TemplateError as exc:
        return str(exc)
    return None
