"""The portal's Jinja2 environment (autoescaped) and the filters its templates format numbers with."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from cortex.portal.web_session import CSRF_FIELD, Viewer

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")

# The pipeline's eight services in their order, as the conversation page's waterfall draws them;
# tool execution runs inside the agent compiler, and is drawn inside it.
SERVICES: list[tuple[str, str]] = [
    ("config_load", "01 Config Loader"),
    ("memory_recall", "02 Memory Recall"),
    ("context_engine", "03 Context Engine"),
    ("token_optimizer", "04 Token Optimizer"),
    ("cache_check", "05 Cache Check"),
    ("model_router", "06 Model Router"),
    ("agent_compiler", "07 Agent Compiler"),
    ("tool_execution", "08 Tool Execution"),
]


NONE = "-"


def _money(value: Any) -> str:
    amount = float(value or 0)
    return f"${amount:,.4f}" if amount < 1 else f"${amount:,.2f}"


def _ms(value: Any) -> str:
    return NONE if value is None else f"{float(value):,.1f} ms"


def _when(value: datetime | None) -> str:
    return NONE if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct(value: Any) -> str:
    return f"{float(value or 0) * 100:.1f}%"


TEMPLATES.env.filters.update(money=_money, ms=_ms, when=_when, pct=_pct)
TEMPLATES.env.globals.update(csrf_field=CSRF_FIELD, services=SERVICES)


def page(request: Request, name: str, viewer: Viewer | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, {"viewer": viewer, **context}, status_code=status_code)


def waterfall(step_timings: dict[str, Any]) -> list[dict[str, Any]]:
    """Each service's bar: where it starts and how long it took, in milliseconds and in percent of the
    sum. The services run one after another, except tool execution, which is part of the compiler."""
    bars: list[dict[str, Any]] = []
    start = 0.0
    compiler_start = 0.0
    for key, label in SERVICES:
        took = float(step_timings.get(key) or 0.0)
        if key == "tool_execution":
            bars.append({"key": key, "label": label, "start": compiler_start, "ms": took})
            continue
        if key == "agent_compiler":
            compiler_start = start
        bars.append({"key": key, "label": label, "start": start, "ms": took})
        start += took
    total = max(start, 0.001)
    for bar in bars:
        bar["left_pct"] = round(bar["start"] / total * 100, 2)
        bar["width_pct"] = round(max(bar["ms"] / total * 100, 0.4 if bar["ms"] > 0 else 0), 2)
    return bars


TEMPLATES.env.globals.update(waterfall=waterfall)
