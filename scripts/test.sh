#!/usr/bin/env bash
# One command: install, lint, type-check and run the whole test suite against real PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1
.venv/bin/ruff check src tests bench clients/python
.venv/bin/mypy
# The client has its own (strict) mypy settings in clients/python/pyproject.toml.
(cd clients/python && ../../.venv/bin/mypy)
exec .venv/bin/python -m pytest "$@"
