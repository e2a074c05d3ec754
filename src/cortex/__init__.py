"""Cortex: a self-hosted AI engine for customer conversations."""

import os

# LiteLLM fetches its model price list from the internet on import unless told otherwise; Cortex runs
# offline and uses the copy LiteLLM ships. Set before any module imports litellm.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"
