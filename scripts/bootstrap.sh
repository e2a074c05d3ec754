#!/usr/bin/env bash
# Creates .venv and installs Cortex with its test tools, from this repository's own files.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Skip the install when nothing it depends on changed since the last one.
stamp=.venv/.cortex-installed
want=$(cat pyproject.toml clients/python/pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch first and exactly: the CPU build (a looser pin would pull several GB of CUDA wheels).
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  .venv/bin/python -m pip install --quiet -e ".[test]"
  # The Python client (its own package, cortex-client): tests/client drive a live Cortex with it.
  .venv/bin/python -m pip install --quiet -e ./clients/python
  echo "$want" > "$stamp"
fi
# The portal's browser tests drive Debian's Chromium (Playwright's own browser download cannot run
# here). Installed when missing and apt-get can; the tests skip without it, or fail under CI=true.
if [ ! -x /usr/bin/chromium ] && [ "${CORTEX_SKIP_CHROMIUM:-}" != "1" ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo -n"; fi
  $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
    || echo "bootstrap: could not install chromium; the browser tests will skip (fail under CI=true)" >&2
fi
