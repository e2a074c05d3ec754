"""The checked-in OpenAPI document: `python -m cortex.api_docs.snapshot` rewrites `openapi.json` from the app.

`tests/api_docs/test_contract.py` fails while the live document differs from the file, so every contract
change shows in review as a change of `openapi.json`; run this after changing an operation, then commit both.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).resolve().parents[3] / "openapi.json"


def live_schema() -> dict[str, Any]:
    from cortex.app import create_app

    return create_app().openapi()


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=SNAPSHOT, help=f"where to write it (default {SNAPSHOT})")
    parser.add_argument("--check", action="store_true", help="only say whether the file is current (exit 1 if not)")
    args = parser.parse_args()
    text = render(live_schema())
    if args.check:
        current = args.output.exists() and args.output.read_text() == text
        print("openapi.json is current" if current else "openapi.json is stale: run python -m cortex.api_docs.snapshot")
        raise SystemExit(0 if current else 1)
    args.output.write_text(text)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
