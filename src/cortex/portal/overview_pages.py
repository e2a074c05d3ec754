"""The overview: chats, cost, cache hit rate, latency, tier mix and failures, with charts by day."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from cortex.kit.deps import SessionDep
from cortex.observability.dashboard import dashboard
from cortex.portal import queries
from cortex.portal.rendering import page
from cortex.portal.web_session import PREFIX, ViewerDep

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/")
async def overview(request: Request, viewer: ViewerDep, session: SessionDep,
                   days: Annotated[Literal[1, 7, 30, 90], Query()] = 30) -> Response:
    now = datetime.now(UTC)
    # The same function, and so the same numbers, as `GET /v1/metrics/dashboard?days=N`.
    board = await dashboard(session, viewer.company_id, now - timedelta(days=days))
    numbers = await queries.overview(session, viewer.company_id, now, days)
    chart = {"days": [point.day.isoformat() for point in numbers.days],
             "replies": [point.replies for point in numbers.days],
             "cost": [round(point.cost_usd, 8) for point in numbers.days],
             "cached": [point.cached for point in numbers.days],
             "failed": [point.failed for point in numbers.days]}
    return page(request, "overview.html", viewer, board=board, numbers=numbers, days=days,
                chart_json=json.dumps(chart), nav="overview")
