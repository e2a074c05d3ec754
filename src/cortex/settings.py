"""One settings class for the whole service, read from the environment (prefix CORTEX_)."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TIERS = ("speed", "nano", "sonnet", "complex", "search")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CORTEX_", extra="ignore")

    data_dir: Path = Path(".cortex")
    # The two connection settings keep their conventional unprefixed names.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "CORTEX_DATABASE_URL")
    )
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "CORTEX_REDIS_URL"))
    secret_key: str | None = None
    # How long a request waits for a new database connection, and for a free one from the pool.
    database_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    database_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    environment: str = "development"

    jwt_expire_minutes: int = 12 * 60
    config_cache_ttl_seconds: int = 300
    upload_dir: Path | None = None
    allow_private_webhooks: bool = False
    # Largest request body (JSON or any other) accepted; multipart uploads get ingest_max_file_bytes.
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    rate_limit_per_minute: int = 600
    # Requests per minute for all of one company's keys together; unset means rate_limit_per_minute.
    company_rate_limit_per_minute: int | None = None
    # Key prefix of the rate-limit counters in Redis (several deployments may share one Redis).
    rate_limit_prefix: str = "cortex:ratelimit"
    # A bearer token that opens GET /v1/metrics to a Prometheus scraper without an API key.
    metrics_token: str | None = None
    log_level: str = "INFO"
    log_format: str = "json"  # json | text
    # Traces are exported over OTLP/HTTP only when this (the standard OpenTelemetry variable) is set.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "CORTEX_OTLP_ENDPOINT")
    )

    # Model per tier (CORTEX_MODEL_SPEED ... CORTEX_MODEL_SEARCH); empty means "not configured".
    model_speed: str | None = None
    model_nano: str | None = None
    model_sonnet: str | None = None
    model_complex: str | None = None
    model_search: str | None = None
    bge_m3_path: Path | None = None
    # Load the embedding model at start-up rather than on the first request that needs it.
    preload_embeddings: bool = True
    llm_api_base: str | None = None
    llm_api_key: str | None = None
    llm_timeout_seconds: float = 60.0
    llm_max_retries: int = 1
    # The circuit breaker per provider/model: open after this many provider faults in a row (0 turns it
    # off), and let one probe through after the cooldown.
    llm_breaker_failures: int = Field(default=5, ge=0)
    llm_breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    # Streams: a comment line this often keeps idle proxies from closing a quiet stream.
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)
    # A request repeating an Idempotency-Key whose first request is still running waits this long for it.
    idempotency_wait_seconds: float = Field(default=120.0, gt=0)
    # Customer messages still `pending` this long after they arrived are marked failed by a sweep run
    # this often (a process that died mid-turn); far longer than a turn can take.
    pending_stale_seconds: float = Field(default=900.0, gt=0)
    pending_sweep_seconds: float = Field(default=60.0, gt=0)
    # `cortex serve`: after SIGTERM, requests in flight get this long to finish before they are cut.
    shutdown_grace_seconds: float = Field(default=30.0, gt=0)
    # Automatic extraction of customer facts after each reply (needs a model; off without one).
    memory_extraction: bool = True

    # Knowledge ingestion: chunk size in (MiniLM word-piece) tokens, URL fetch limits, and the size
    # above which an ingestion runs as a background job even when the caller did not ask for one.
    knowledge_chunk_tokens: int = Field(default=200, ge=32, le=2_000)
    knowledge_chunk_overlap_tokens: int = Field(default=30, ge=0, le=500)
    ingest_sync_max_bytes: int = 2_000_000
    ingest_max_file_bytes: int = 100_000_000
    ingest_url_max_bytes: int = 10_000_000
    ingest_url_timeout_seconds: float = 20.0

    # The durable job system (cortex.jobs): a worker inside `cortex serve` unless turned off here, and
    # how a worker shares out, stops and notices dead peers.
    jobs_in_serve: bool = True
    jobs_concurrency: int = Field(default=10, ge=1, le=200)
    jobs_shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    jobs_heartbeat_seconds: float = Field(default=10.0, gt=0)
    jobs_stalled_after_seconds: float = Field(default=30.0, gt=0)
    jobs_poll_seconds: float = Field(default=5.0, gt=0)

    # Events (cortex.events): how long they are kept, and the live stream's token, heartbeat and polling.
    events_retention_days: int = Field(default=30, ge=1)
    events_stream_token_seconds: int = Field(default=300, ge=10, le=3600)
    events_stream_heartbeat_seconds: float = Field(default=15.0, gt=0)
    events_stream_poll_seconds: float = Field(default=5.0, gt=0)

    # Outgoing webhooks: the first attempt is immediate, then one retry after each of these waits; the
    # request timeout; how long an endpoint may fail without a success before it is disabled; and how
    # long a rotated-out secret keeps signing.
    webhook_retry_schedule_seconds: list[float] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 86400], max_length=50)
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    webhook_disable_after_seconds: float = Field(default=5 * 86400, gt=0)
    webhook_secret_overlap_seconds: float = Field(default=86400, ge=0)

    @field_validator("database_url", "redis_url", "model_speed", "model_nano", "model_sonnet",
                     "model_complex", "model_search", "secret_key", "llm_api_base", "llm_api_key",
                     "metrics_token", "otel_exporter_otlp_endpoint", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_upload_dir(self) -> Path:
        return (self.upload_dir or self.resolved_data_dir / "uploads").expanduser().resolve()

    @cached_property
    def signing_secret(self) -> str:
        """The secret behind JWTs and credential encryption.

        Self-hosted installs rarely set one, so a random secret is created once and kept in the
        data folder (mode 0600); outside development an explicit CORTEX_SECRET_KEY is required.
        """
        if self.secret_key:
            if self.environment != "development" and len(self.secret_key) < 32:
                raise ValueError("CORTEX_SECRET_KEY must be at least 32 characters outside development")
            return self.secret_key
        if self.environment != "development":
            raise ValueError("CORTEX_SECRET_KEY must be set outside development")
        path = self.resolved_data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another cortex process created it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        return value

    def model_for_tier(self, tier: str) -> str | None:
        value: str | None = getattr(self, f"model_{tier}", None)
        return value


def get_settings() -> Settings:
    return Settings()
