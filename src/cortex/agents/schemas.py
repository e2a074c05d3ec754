"""Agent and action schemas: what customers send (`*Create`/`*Update`) and get back (`*Public`)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

from cortex.agents import templates
from cortex.kit.json_bounds import JsonSchemaObject

Tier = Literal["speed", "nano", "sonnet", "complex", "search"]
AuthType = Literal["api_key", "bearer", "oauth2", "basic", "none"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(max_length=100_000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- agent parts -----------------------------------------------------------------------------------

class Personality(Strict):
    id: uuid.UUID | None = None
    name: ShortText = "Helpful assistant"
    traits: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=50)] = []


class Dialect(Strict):
    name: ShortText = "English"
    primary_language: Annotated[str, Field(min_length=2, max_length=35)] = "en"


class Faq(Strict):
    question: Annotated[str, Field(min_length=1, max_length=2_000)]
    answer: Annotated[str, Field(min_length=1, max_length=10_000)]


class Scenario(Strict):
    name: ShortText
    description: Annotated[str, Field(max_length=5_000)] = ""
    steps: Annotated[list[Annotated[str, Field(max_length=2_000)]], Field(max_length=50)] = []


class ModelPrice(Strict):
    input_per_million: Annotated[float, Field(ge=0)] = 0.0
    output_per_million: Annotated[float, Field(ge=0)] = 0.0


class CachePolicy(Strict):
    enabled: bool = True
    ttl_seconds: Annotated[int, Field(ge=1, le=90 * 86_400)] = 7 * 86_400
    similarity_threshold: Annotated[float | None, Field(ge=0.5, le=1.0)] = None
    never_cache_patterns: Annotated[list[Annotated[str, Field(max_length=500)]], Field(max_length=100)] = []

    @field_validator("never_cache_patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
        return value


class AgentSettings(Strict):
    tier_models: dict[Tier, Annotated[str, Field(min_length=1, max_length=200)]] = {}
    fallback_models: dict[Tier, Annotated[str, Field(min_length=1, max_length=200)]] = {}
    pinned_tier: Tier | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.3
    max_output_tokens: Annotated[int, Field(ge=1, le=65_536)] = 1024
    context_window: Annotated[int | None, Field(ge=512, le=10_000_000)] = None
    model_prices: dict[Annotated[str, Field(max_length=200)], ModelPrice] = {}
    offline_fallback: bool = False
    history_turns: Annotated[int, Field(ge=0, le=200)] = 20
    memory_enabled: bool = True
    knowledge_top_k: Annotated[int, Field(ge=0, le=50)] = 5
    cache: CachePolicy = CachePolicy()


def _template_compiles(value: str | None) -> str | None:
    """A prompt template that would fail at chat time is refused when it is saved (422 with its line)."""
    if not value:
        return value
    sample = {"personality": Personality().model_dump(mode="json"), "dialect": Dialect().model_dump(mode="json")}
    found = templates.problem(value, sample)
    if found is not None:
        raise ValueError(f"system_prompt is not a usable template: {found}")
    return value


_UUID_SHAPED = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")


def _slug_is_not_an_id(value: str | None) -> str | None:
    # `model` names an agent by id or by slug: a slug shaped like an id would be ambiguous.
    if value is not None and _UUID_SHAPED.match(value):
        raise ValueError("must not look like an agent id (a UUID)")
    return value


# The agent's `model` name in the OpenAI-compatible API: lowercase, unique within the company.
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", max_length=64)]


class AgentBase(Strict):
    slug: Slug | None = None
    _slug_checked = field_validator("slug")(_slug_is_not_an_id)
    system_prompt: Annotated[str, Field(max_length=100_000)] = ""

    _prompt_compiles = field_validator("system_prompt")(_template_compiles)
    personality: Personality = Personality()
    dialect: Dialect = Dialect()
    faqs: Annotated[list[Faq], Field(max_length=2_000)] = []
    scenarios: Annotated[list[Scenario], Field(max_length=500)] = []
    workflow_faqs: Annotated[list[Faq], Field(max_length=2_000)] = []
    settings: AgentSettings = AgentSettings()
    action_ids: Annotated[list[uuid.UUID], Field(max_length=128)] = []
    knowledge_source_ids: Annotated[list[uuid.UUID], Field(max_length=256)] = []


class AgentCreate(AgentBase):
    name: ShortText


class AgentUpdate(Strict):
    name: ShortText | None = None
    slug: Slug | None = None  # null removes it
    _slug_checked = field_validator("slug")(_slug_is_not_an_id)
    system_prompt: Annotated[str, Field(max_length=100_000)] | None = None

    _prompt_compiles = field_validator("system_prompt")(_template_compiles)
    personality: Personality | None = None
    dialect: Dialect | None = None
    faqs: Annotated[list[Faq], Field(max_length=2_000)] | None = None
    scenarios: Annotated[list[Scenario], Field(max_length=500)] | None = None
    workflow_faqs: Annotated[list[Faq], Field(max_length=2_000)] | None = None
    settings: AgentSettings | None = None
    action_ids: Annotated[list[uuid.UUID], Field(max_length=128)] | None = None
    knowledge_source_ids: Annotated[list[uuid.UUID], Field(max_length=256)] | None = None


class AgentPublic(AgentBase):
    model_config = ConfigDict(extra="ignore")
    id: uuid.UUID
    company_id: uuid.UUID
    name: str
    config_version: int
    knowledge_version: int
    created_at: datetime
    updated_at: datetime


# --- actions ----------------------------------------------------------------------------------------

_REQUIRED_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "api_key": ("api_key",),
    "bearer": ("token",),
    "basic": ("username", "password"),
    "oauth2": ("token_url", "client_id", "client_secret"),
    "none": (),
}


class RateLimit(Strict):
    max_calls: Annotated[int, Field(ge=1, le=1_000_000)]
    window_seconds: Annotated[int, Field(ge=1, le=86_400)]


def _valid_json_schema(value: dict[str, Any]) -> dict[str, Any]:
    if not value:
        return value
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
    if value.get("type", "object") != "object":
        raise ValueError("must describe an object (type: object)")
    return value


class ActionFields(Strict):
    description: Annotated[str, Field(max_length=2_000)] = ""
    source_type: Literal["custom_function", "action"] = "action"
    webhook_url: AnyHttpUrl
    method: HttpMethod = "POST"
    headers: dict[Annotated[str, Field(min_length=1, max_length=200)], Annotated[str, Field(max_length=4_000)]] = {}
    auth_type: AuthType = "none"
    parameters_schema: JsonSchemaObject = {"type": "object", "properties": {}}
    path_template: Annotated[str | None, Field(max_length=2_000)] = None
    query_schema: JsonSchemaObject = {}
    rate_limit: RateLimit | None = None
    run_after_reply: bool = False

    @field_validator("parameters_schema", "query_schema")
    @classmethod
    def _schemas(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _valid_json_schema(value)


ActionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class ActionCreate(ActionFields):
    name: ActionName
    # Write-only: stored encrypted, never returned.
    auth_credentials: dict[str, Annotated[str, Field(max_length=8_000)]] = {}

    @model_validator(mode="after")
    def _credentials_match_auth(self) -> ActionCreate:
        missing = [k for k in _REQUIRED_CREDENTIALS[self.auth_type] if not self.auth_credentials.get(k)]
        if missing:
            raise ValueError(f"auth_type {self.auth_type} needs auth_credentials: {', '.join(missing)}")
        return self


class ActionUpdate(Strict):
    name: ActionName | None = None
    description: Annotated[str, Field(max_length=2_000)] | None = None
    source_type: Literal["custom_function", "action"] | None = None
    webhook_url: AnyHttpUrl | None = None
    method: HttpMethod | None = None
    headers: dict[str, Annotated[str, Field(max_length=4_000)]] | None = None
    auth_type: AuthType | None = None
    auth_credentials: dict[str, Annotated[str, Field(max_length=8_000)]] | None = None
    parameters_schema: JsonSchemaObject | None = None
    path_template: Annotated[str, Field(max_length=2_000)] | None = None
    query_schema: JsonSchemaObject | None = None
    rate_limit: RateLimit | None = None
    run_after_reply: bool | None = None

    @field_validator("parameters_schema", "query_schema")
    @classmethod
    def _schemas(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _valid_json_schema(value)


def required_credentials(auth_type: str) -> tuple[str, ...]:
    return _REQUIRED_CREDENTIALS[auth_type]


class ActionPublic(BaseModel):
    id: uuid.UUID
    company_id: uuid.UUID
    name: str
    description: str
    source_type: str
    webhook_url: str
    method: str
    headers: dict[str, str]
    auth_type: str
    has_credentials: bool
    parameters_schema: dict[str, Any]
    path_template: str | None
    query_schema: dict[str, Any]
    rate_limit: RateLimit | None
    run_after_reply: bool
    created_at: datetime
    updated_at: datetime


# --- the configuration the pipeline runs on ----------------------------------------------------------

class ActionConfig(BaseModel):
    """An action as the agent config shows it: everything but the credentials."""

    id: uuid.UUID
    name: str
    description: str
    source_type: str
    webhook_url: str
    method: str
    headers: dict[str, str]
    auth_type: str
    parameters_schema: dict[str, Any]
    path_template: str | None
    query_schema: dict[str, Any]
    rate_limit: RateLimit | None
    run_after_reply: bool


class AgentConfig(BaseModel):
    id: uuid.UUID
    company_id: uuid.UUID
    name: str
    personality: Personality
    dialect: Dialect
    system_prompt: str
    faqs: list[Faq]
    scenarios: list[Scenario]
    knowledge_source_ids: list[uuid.UUID]
    action_definitions: list[ActionConfig]
    workflow_faqs: list[Faq]
    settings: AgentSettings
    config_version: int
    knowledge_version: int
    # Defaulted: configurations cached before the field existed still load.
    company_name: str = ""
