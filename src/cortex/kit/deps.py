"""FastAPI dependencies shared by every router: the runtime and a per-request session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.kit.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler returns, rolled back if it raises."""
    async with runtime.database.session() as session:
        yield session


# scope="function": commit before the response is sent, so a client reads its own writes.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
