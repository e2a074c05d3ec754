"""Refusing text PostgreSQL cannot store, at the door, with the field that holds it.

JSON may carry `\\u0000` and unpaired surrogates (`\\ud800`), and a URL may carry `%00`; Python accepts
them, but PostgreSQL's text and jsonb refuse NUL and UTF-8 has no unpaired surrogates, so such a value
would fail deep inside a request as a database error. This middleware answers 422 instead, naming the
path parameter, query parameter or JSON field, before anything runs. Other bodies (multipart uploads)
are not read here; `database_text_error` turns what slips through into a 422 as well.

A JSON body nested deeper than `MAX_JSON_DEPTH` is a 422 too, measured on the raw bytes before anything
parses it: parsing it, validating it or walking it would recurse once per level.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cortex.kit.json_bounds import MAX_JSON_DEPTH, json_depth

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MESSAGE = "text must not contain NUL characters or unpaired surrogates"
TOO_DEEP = f"JSON must not be nested more than {MAX_JSON_DEPTH} levels deep"


def unstorable_fields(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Where in a parsed JSON value a key or a string holds what PostgreSQL cannot store."""
    if isinstance(value, str):
        if UNSTORABLE.search(value):
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            if UNSTORABLE.search(key):
                yield (*loc, key.encode("utf-8", "backslashreplace").decode())
            else:
                yield from unstorable_fields(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable_fields(item, (*loc, index))


def is_json(content_type: bytes) -> bool:
    """Whether FastAPI parses a body of this type as JSON (`application/json`, `application/*+json`)."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def _refusal(scope: Scope, locs: list[tuple[str | int, ...]], message: str = MESSAGE) -> JSONResponse:
    # Imported here: cortex.kit.errors imports this module for MESSAGE.
    from cortex.kit.errors import error_response

    detail = [{"loc": list(loc), "msg": message, "type": "value_error"} for loc in locs[:20]]
    return error_response(str(scope.get("path", "")), 422, {"detail": detail})


class TextGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        locs: list[tuple[str | int, ...]] = []
        if UNSTORABLE.search(scope.get("path", "")):
            locs.append(("path",))
        query = scope.get("query_string", b"").decode("latin-1")
        if "%00" in query or "\x00" in query:
            locs += [("query", name) for name, value in parse_qsl(query, keep_blank_values=True)
                     if "\x00" in name or "\x00" in value]
        if locs:
            await _refusal(scope, locs)(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if not is_json(headers.get(b"content-type", b"")):
            await self.app(scope, receive, send)
            return
        body, messages = await _read_body(receive)
        if json_depth(body) > MAX_JSON_DEPTH:
            await _refusal(scope, [("body",)], TOO_DEEP)(scope, receive, send)
            return
        try:
            parsed = json.loads(body) if body else None
        except (ValueError, RecursionError):
            parsed = None  # malformed JSON is FastAPI's to report
        locs = [("body", *loc) for loc in unstorable_fields(parsed)]
        if locs:
            await _refusal(scope, locs)(scope, receive, send)
            return
        await self.app(scope, _replay(messages, receive), send)


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    messages: list[Message] = []
    parts: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break  # the client went away; the app will see it
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts), messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
