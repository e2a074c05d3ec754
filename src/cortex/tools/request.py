"""Turning a model's tool call into an HTTP request: argument validation, path template, query, body.

Only validated arguments reach the URL: path placeholders are filled from them (URL-quoted), the
properties named in `query_schema` go to the query string, the rest to the JSON body (or the query
string for GET and DELETE, which carry no body).
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator

from cortex.agents.schemas import ActionConfig

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class InvalidArguments(ValueError):
    """The model's arguments are not JSON or do not match the action's schema; told back to the model."""


@dataclass(frozen=True)
class PreparedRequest:
    method: str
    url: str
    params: dict[str, str]
    json_body: dict[str, Any] | None


def parse_arguments(action: ActionConfig, raw: str) -> dict[str, Any]:
    try:
        arguments = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise InvalidArguments(f"arguments are not valid JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(arguments, dict):
        raise InvalidArguments("arguments must be a JSON object")
    schema = action.parameters_schema or {"type": "object"}
    errors = sorted(Draft202012Validator(schema).iter_errors(arguments), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(
            f"{'/'.join(str(p) for p in error.path) or '(root)'}: {error.message}" for error in errors[:5]
        )
        raise InvalidArguments(f"arguments do not match the schema: {details}")
    return arguments


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def prepare(action: ActionConfig, arguments: dict[str, Any]) -> PreparedRequest:
    remaining = dict(arguments)
    url = action.webhook_url
    if action.path_template:
        names = [field for _, field, _, _ in string.Formatter().parse(action.path_template) if field]
        missing = [name for name in names if name not in remaining]
        if missing:
            raise InvalidArguments(f"missing arguments for the path: {', '.join(missing)}")
        path = _PLACEHOLDER.sub(lambda m: quote(_scalar(remaining[m.group(1)]), safe=""), action.path_template)
        for name in names:
            remaining.pop(name, None)
        url = url.rstrip("/") + "/" + path.lstrip("/")
    query_fields = set((action.query_schema or {}).get("properties", {}))
    params = {name: _scalar(remaining.pop(name)) for name in list(remaining) if name in query_fields}
    if action.query_schema:
        errors = list(Draft202012Validator(action.query_schema).iter_errors(
            {k: arguments[k] for k in query_fields if k in arguments}))
        if errors:
            raise InvalidArguments(f"query arguments do not match the query schema: {errors[0].message}")
    body: dict[str, Any] | None = None
    if action.method in ("GET", "DELETE"):
        params.update({name: _scalar(value) for name, value in remaining.items()})
    else:
        body = remaining
    return PreparedRequest(method=action.method, url=url, params=params, json_body=body)
