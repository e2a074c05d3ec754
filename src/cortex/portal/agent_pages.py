"""Agents: list, create, edit (the prompt template checked as it is typed) and the streamed playground."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response, StreamingResponse

from cortex.agents import service as agents
from cortex.agents.actions import list_actions
from cortex.agents.schemas import AgentCreate, AgentPublic, AgentUpdate, Dialect, Personality
from cortex.agents.templates import VARIABLES, problem
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.errors import InvalidInput, request_id_of
from cortex.kit.pagination import PageParams
from cortex.knowledge.sources import list_sources
from cortex.pipeline.schemas import ChatRequest
from cortex.pipeline.streaming import STREAM_HEADERS, StreamedTurn, done_body
from cortex.pipeline.turns import run_turn
from cortex.portal.rendering import page
from cortex.portal.web_session import PREFIX, ViewerDep

router = APIRouter(prefix=PREFIX + "/agents", include_in_schema=False)

PAGE_SIZE = 25


@router.get("")
async def agent_list(request: Request, viewer: ViewerDep, session: SessionDep, page_number: int = 1) -> Response:
    found = await agents.list_agents(session, viewer.company_id, PageParams(page=max(page_number, 1),
                                                                              page_size=PAGE_SIZE))
    return page(request, "agents.html", viewer, agents=found, nav="agents")


async def _choices(session: SessionDep, company_id: uuid.UUID) -> dict[str, Any]:
    actions = await list_actions(session, company_id, PageParams(page=1, page_size=100))
    sources = await list_sources(session, company_id, PageParams(page=1, page_size=100))
    return {"actions": actions.items, "sources": sources.items, "variables": VARIABLES}


def _form_values(agent: AgentPublic | None) -> dict[str, Any]:
    if agent is None:
        agent_settings = AgentCreate(name="x").settings
        return {"name": "", "slug": "", "system_prompt": "", "personality_name": Personality().name,
                "personality_traits": "", "dialect_name": Dialect().name,
                "dialect_language": Dialect().primary_language, "faqs": "[]", "scenarios": "[]",
                "settings": json.dumps(agent_settings.model_dump(mode="json"), indent=2), "action_ids": [],
                "knowledge_source_ids": []}
    return {"name": agent.name, "slug": agent.slug or "", "system_prompt": agent.system_prompt,
            "personality_name": agent.personality.name, "personality_traits": "\n".join(agent.personality.traits),
            "dialect_name": agent.dialect.name, "dialect_language": agent.dialect.primary_language,
            "faqs": json.dumps([f.model_dump() for f in agent.faqs], indent=2, ensure_ascii=False),
            "scenarios": json.dumps([s.model_dump() for s in agent.scenarios], indent=2, ensure_ascii=False),
            "settings": json.dumps(agent.settings.model_dump(mode="json"), indent=2, ensure_ascii=False),
            "action_ids": [str(i) for i in agent.action_ids],
            "knowledge_source_ids": [str(i) for i in agent.knowledge_source_ids]}


def _json_field(form: FormData, name: str, errors: dict[str, str]) -> Any:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return [] if name != "settings" else {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        errors[name] = f"not valid JSON: {exc.msg} (line {exc.lineno})"
        return None


def _body_of(form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    traits = [t.strip() for t in str(form.get("personality_traits") or "").splitlines() if t.strip()]
    body = {
        "name": str(form.get("name") or "").strip(), "slug": str(form.get("slug") or "").strip() or None,
        "system_prompt": str(form.get("system_prompt") or ""),
        "personality": {"name": str(form.get("personality_name") or "").strip() or Personality().name,
                        "traits": traits},
        "dialect": {"name": str(form.get("dialect_name") or "").strip() or Dialect().name,
                    "primary_language": str(form.get("dialect_language") or "").strip() or "en"},
        "faqs": _json_field(form, "faqs", errors), "scenarios": _json_field(form, "scenarios", errors),
        "settings": _json_field(form, "settings", errors),
        "action_ids": [str(v) for v in form.getlist("action_ids")],
        "knowledge_source_ids": [str(v) for v in form.getlist("knowledge_source_ids")],
    }
    return body, errors


def _validation_errors(exc: ValidationError) -> dict[str, str]:
    found: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        field = loc[0] if loc else "form"
        if field in ("personality", "dialect") and len(loc) > 1:
            field = f"{field}_{'traits' if loc[1] == 'traits' else loc[1]}"
            field = {"dialect_primary_language": "dialect_language"}.get(field, field)
        found.setdefault(field, f"{'.'.join(loc[1:]) + ': ' if len(loc) > 1 else ''}{error.get('msg', '')}")
    return found


def _editor(request: Request, viewer: ViewerDep, choices: dict[str, Any], values: dict[str, Any],
            errors: dict[str, str], agent: AgentPublic | None, status_code: int = 200) -> Response:
    return page(request, "agent_edit.html", viewer, status_code=status_code, agent=agent, values=values,
                errors=errors, nav="agents", **choices)


@router.get("/new")
async def new_agent(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    return _editor(request, viewer, await _choices(session, viewer.company_id), _form_values(None), {}, None)


async def _save(request: Request, viewer: ViewerDep, session: SessionDep, runtime: RuntimeDep,
                agent_id: uuid.UUID | None) -> Response:
    form = await request.form()
    body, errors = _body_of(form)
    values = {**{k: v for k, v in form.items() if k not in ("action_ids", "knowledge_source_ids")},
              "action_ids": body["action_ids"], "knowledge_source_ids": body["knowledge_source_ids"]}
    existing = await agents.to_public(session, await agents.get_agent(session, viewer.company_id, agent_id)) \
        if agent_id else None
    if not errors:
        try:
            if agent_id is None:
                created = await agents.create_agent(session, viewer.company_id, AgentCreate.model_validate(body))
                return RedirectResponse(f"{PREFIX}/agents/{created.id}?saved=1", status_code=303)
            await agents.update_agent(session, runtime.config_cache, viewer.company_id, agent_id,
                                      AgentUpdate.model_validate(body))
            return RedirectResponse(f"{PREFIX}/agents/{agent_id}?saved=1", status_code=303)
        except ValidationError as exc:
            errors = _validation_errors(exc)
        except InvalidInput as exc:
            errors = {exc.field.split(".")[0] or "form": str(exc.detail)}
    return _editor(request, viewer, await _choices(session, viewer.company_id), values, errors, existing, 422)


@router.post("/new")
async def create(request: Request, viewer: ViewerDep, session: SessionDep, runtime: RuntimeDep) -> Response:
    return await _save(request, viewer, session, runtime, None)


@router.post("/validate-prompt")
async def validate_prompt(request: Request, viewer: ViewerDep,
                          system_prompt: Annotated[str, Form(max_length=100_000)] = "",
                          personality_name: Annotated[str, Form(max_length=200)] = "",
                          dialect_name: Annotated[str, Form(max_length=200)] = "",
                          dialect_language: Annotated[str, Form(max_length=35)] = "") -> Response:
    """The template check the API runs on save, run as the user types (htmx posts the field)."""
    sample = {"personality": {**Personality().model_dump(mode="json"),
                              **({"name": personality_name} if personality_name else {})},
              "dialect": {"name": dialect_name or Dialect().name,
                          "primary_language": dialect_language or Dialect().primary_language}}
    found = problem(system_prompt, sample) if system_prompt else None
    return page(request, "_prompt_check.html", viewer, problem=found, empty=not system_prompt)


@router.get("/{agent_id}")
async def edit_agent(request: Request, agent_id: uuid.UUID, viewer: ViewerDep, session: SessionDep) -> Response:
    agent = await agents.to_public(session, await agents.get_agent(session, viewer.company_id, agent_id))
    return _editor(request, viewer, await _choices(session, viewer.company_id), _form_values(agent), {}, agent)


@router.post("/{agent_id}")
async def update(request: Request, agent_id: uuid.UUID, viewer: ViewerDep, session: SessionDep,
                 runtime: RuntimeDep) -> Response:
    return await _save(request, viewer, session, runtime, agent_id)


@router.post("/{agent_id}/delete")
async def delete(agent_id: uuid.UUID, viewer: ViewerDep, session: SessionDep, runtime: RuntimeDep) -> Response:
    await agents.delete_agent(session, runtime.config_cache, viewer.company_id, agent_id)
    return RedirectResponse(f"{PREFIX}/agents", status_code=303)


@router.post("/{agent_id}/playground")
async def playground(request: Request, agent_id: uuid.UUID, viewer: ViewerDep, session: SessionDep,
                     runtime: RuntimeDep, message: Annotated[str, Form(min_length=1, max_length=16_000)],
                     conversation_id: Annotated[uuid.UUID, Form()],
                     customer_id: Annotated[str, Form(min_length=1, max_length=200)] = "playground") -> Response:
    """A chat with the agent as the user's company, streamed as `POST /v1/chat` streams (server-sent events)."""
    await agents.get_agent(session, viewer.company_id, agent_id)  # another company's agent: 404
    try:
        chat = ChatRequest(company_id=viewer.company_id, agent_id=agent_id, conversation_id=conversation_id,
                           customer_id=customer_id, message=message, channel="web", stream=True,
                           metadata={"source": "portal-playground"})
    except ValidationError as exc:
        raise InvalidInput("message", exc.errors()[0].get("msg", "invalid")) from exc
    result = await run_turn(runtime, chat, request_id_of(request), stream=True, record=done_body)
    if not isinstance(result, StreamedTurn):  # stream=True without an idempotency key always streams
        raise TypeError(f"expected a streamed turn, got {type(result).__name__}")
    return StreamingResponse(result.native(), media_type="text/event-stream", headers=STREAM_HEADERS)
