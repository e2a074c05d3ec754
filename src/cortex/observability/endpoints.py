"""`GET /v1/metrics` (Prometheus text) and `GET /v1/metrics/dashboard` (JSON from stored messages)."""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select

from cortex.agents.service import get_agent
from cortex.auth.deps import ApiKeyAuth, ApiPrincipal, MetricsAuth
from cortex.db.models import Agent
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.observability.dashboard import dashboard
from cortex.observability.metrics import CONTENT_TYPE
from cortex.observability.schemas import Dashboard

metrics_router = APIRouter(prefix="/v1/metrics", tags=["metrics"])

_metrics_scope = ApiKeyAuth("metrics")


async def metrics_reader(request: Request, runtime: RuntimeDep) -> ApiPrincipal | None:
    """The scraper token (CORTEX_METRICS_TOKEN, compared in constant time) or a key with `metrics`."""
    token = runtime.settings.metrics_token
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), token.encode()):
        return None
    return await _metrics_scope(request, runtime)


MetricsReader = Annotated[ApiPrincipal | None, Depends(metrics_reader)]


@metrics_router.get("", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def prometheus_metrics(reader: MetricsReader, runtime: RuntimeDep) -> Response:
    keep: set[str] | None = None
    if reader is not None:
        # A company's key sees the service-wide series, and of the per-agent ones only its own agents'.
        async with runtime.database.session() as session:
            keep = {str(agent_id) for agent_id in
                    await session.scalars(select(Agent.id).where(Agent.company_id == reader.company_id))}
    return Response(runtime.telemetry.metrics.render(keep), media_type=CONTENT_TYPE)


@metrics_router.get("/dashboard", response_model=Dashboard)
async def metrics_dashboard(principal: MetricsAuth, session: SessionDep,
                            days: Annotated[int, Query(ge=1, le=366)] = 30,
                            agent_id: uuid.UUID | None = None) -> Dashboard:
    if agent_id is not None:
        await get_agent(session, principal.company_id, agent_id)  # another company's agent: 404
    return await dashboard(session, principal.company_id, datetime.now(UTC) - timedelta(days=days), agent_id)
