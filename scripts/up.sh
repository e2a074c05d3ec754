#!/usr/bin/env bash
# One command: install, seed the demo company/agent/key, print how to call it, and serve.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/cortex up "$@"
