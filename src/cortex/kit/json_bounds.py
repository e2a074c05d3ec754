"""How deep and how large a client's JSON may be.

`json_depth` measures nesting in the raw bytes, without parsing: Python's parser, Pydantic and anything
that walks a parsed value recurse once per level, so a few kilobytes of `[[[[...` would otherwise end in
a RecursionError. `Metadata` is the free-form object that customers, knowledge sources and chats carry,
bounded in serialised size so that one request cannot store megabytes on a row.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_JSON_DEPTH = 64
MAX_METADATA_BYTES = 16_384
# An action's parameter and query JSON Schemas are documents of their own, larger than labels.
MAX_JSON_SCHEMA_BYTES = 65_536

# A JSON string, escapes included (the unrolled form does not backtrack on long strings).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
for _open in b"[{":
    _STEP[_open] = 1
for _close in b"]}":
    _STEP[_close] = -1


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (brackets inside strings do not count).

    Every step runs in C (regex, translate, accumulate, max), so a megabyte is measured in milliseconds.
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def serialised_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON, the form it is stored in."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode("utf-8", "surrogatepass"))


def _at_most(max_bytes: int) -> AfterValidator:
    def check(value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = serialised_size(value)
        except (RecursionError, ValueError) as exc:
            raise ValueError(f"must be nested at most {MAX_JSON_DEPTH} levels deep") from exc
        if size > max_bytes:
            raise ValueError(f"must be at most {max_bytes} bytes as JSON (is {size})")
        return value

    return AfterValidator(check)


Metadata = Annotated[dict[str, Any], _at_most(MAX_METADATA_BYTES)]
JsonSchemaObject = Annotated[dict[str, Any], _at_most(MAX_JSON_SCHEMA_BYTES)]
