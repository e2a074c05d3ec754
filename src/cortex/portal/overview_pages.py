"""The overview: chats, cost, cache hit rate, latency, tier mix and failures, with charts by day."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.runtime import Runtime
from cortex.observability.dashboard import dashboard
from cortex.observability.schemas import Dashboard
from cortex.portal import queries
from cortex.portal.rendering import page
from cortex.portal.web_session import PREFIX, ViewerDep

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# The overview aggregates every message of the period (six scans of the company's messages). Its figures
# are kept until the company's newest message changes (one index lookup tells), and at most this long,
# since the windows ("today", "7 days") move on without new messages too.
OVERVIEW_TTL_SECONDS = 30


def overview_cache_key(company_id: uuid.UUID, days: int, newest: datetime | None) -> str:
    return f"cortex:portal-overview:{company_id}:{days}:{newest.isoformat() if newest else '-'}"


async def _figures(runtime: Runtime, session: SessionDep, company_id: uuid.UUID, days: int) -> dict[str, Any]:
    key = overview_cache_key(company_id, days, await queries.newest_message_at(session, company_id))
    cached = await runtime.cache.get(key)
    if cached is not None:
        figures: dict[str, Any] = json.loads(cached)
        return figures
    now = datetime.now(UTC)
    # The same function, and so the same numbers, as `GET /v1/metrics/dashboard?days=N`.
    board = await dashboard(session, company_id, now - timedelta(days=days))
    numbers = await queries.overview(session, company_id, now, days)
    figures = {"as_of": now.isoformat(), "board": board.model_dump(mode="json"),
               "numbers": {**asdict(numbers), "days": []},
               "chart": {"days": [point.day.isoformat() for point in numbers.days],
                         "replies": [point.replies for point in numbers.days],
                         "cost": [round(point.cost_usd, 8) for point in numbers.days],
                         "cached": [point.cached for point in numbers.days],
                         "failed": [point.failed for point in numbers.days]}}
    await runtime.cache.set(key, json.dumps(figures), OVERVIEW_TTL_SECONDS)
    return figures


@router.get("/")
async def overview(request: Request, viewer: ViewerDep, session: SessionDep, runtime: RuntimeDep,
                   days: Annotated[int, Query(ge=1, le=366)] = 30) -> Response:
    figures = await _figures(runtime, session, viewer.company_id, days)
    numbers = queries.Overview(**figures["numbers"])
    return page(request, "overview.html", viewer, board=Dashboard.model_validate(figures["board"]),
                numbers=numbers, days=days, as_of=datetime.fromisoformat(figures["as_of"]),
                chart_json=json.dumps(figures["chart"]), nav="overview")
