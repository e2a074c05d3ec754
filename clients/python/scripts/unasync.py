"""Generate `_sync_client.py` (Cortex) from `_async_client.py` (AsyncCortex).

    python clients/python/scripts/unasync.py          # write it
    python clients/python/scripts/unasync.py --check  # exit 1 when it is not current (the tests run this)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "cortex_client"
SOURCE = PACKAGE / "_async_client.py"
TARGET = PACKAGE / "_sync_client.py"

HEADER = ('"""Cortex: the synchronous client.\n\n'
          "GENERATED from `_async_client.py` by `scripts/unasync.py`: edit that file and run the script.\n"
          '"""\n')

# In order: the longer names first.
REPLACEMENTS = [
    (r"\basync def ", "def "),
    (r"\basync for ", "for "),
    (r"\basync with ", "with "),
    (r"\bawait ", ""),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"^import asyncio$", "import time"),
    (r"\baiter_sse\b", "iter_sse"),
    (r"\baread\b", "read"),
    (r"\baclose\b", "close"),
    (r"__aiter__", "__iter__"),
    (r"__anext__", "__next__"),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"StopAsyncIteration", "StopIteration"),
    (r"Async(?=[A-Z])", ""),
    # An async generator cannot `yield from`; a plain one should.
    (r"for (\w+) in (.+):\n(\s+)yield \1$", r"yield from \2"),
]


def _sort_plain_imports(text: str) -> str:
    """Keep the block of `import x` lines sorted after `import asyncio` became `import time`."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"import \w+", line))
    end = start
    while end < len(lines) and re.fullmatch(r"import \w+", lines[end]):
        end += 1
    lines[start:end] = sorted(lines[start:end])
    return "\n".join(lines)


def generate() -> str:
    text = SOURCE.read_text()
    body = text[text.index('"""', 3) + 3:].lstrip("\n")  # drop the source's own docstring
    for pattern, replacement in REPLACEMENTS:
        body = re.sub(pattern, replacement, body, flags=re.MULTILINE)
    return HEADER + "\n" + _sort_plain_imports(body)


def main() -> int:
    generated = generate()
    if "--check" in sys.argv[1:]:
        if not TARGET.exists() or TARGET.read_text() != generated:
            print(f"{TARGET} is out of date: run python {Path(__file__).as_posix()}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(generated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
