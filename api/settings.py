"""Settings from the environment (and `.env`): `MMOS_` prefix, plus DATABASE_URL and REDIS_URL."""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.api_bases import allow_list, bad_allow_entries
from domain.pricing import DEFAULT_BATCH_DISCOUNTS, parse_batch_discounts


class Settings(BaseSettings):
    """Every knob of MMOS. `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="MMOS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "production", "test"] = "development"
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "MMOS_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "MMOS_REDIS_URL")
    )
    data_dir: Path = Path(".mmos")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    # auto: human-readable lines when the log stream is a terminal, JSON lines otherwise.
    log_format: Literal["auto", "json", "console"] = "auto"
    # Deprecated alias (MMOS_LOG_JSON): true = json, false = console, unless MMOS_LOG_FORMAT is set.
    log_json: bool | None = None

    # GraphQL surface and input limits
    graphiql: bool | None = None
    introspection: bool | None = None
    max_query_depth: int = Field(default=12, ge=2)
    max_query_tokens: int = Field(default=2000, ge=50)
    max_aliases: int = Field(default=30, ge=1)
    # Query cost: objects an operation may produce (lists multiplied down the tree, see
    # api/query_cost.py); a list of unknown size counts as MMOS_QUERY_COST_LIST_SIZE items.
    max_query_nodes: int = Field(default=200_000, ge=1)
    query_cost_list_size: int = Field(default=10, ge=1)
    # Requests per minute per API key (0 = off) and how many may come at once; shared
    # through Redis when REDIS_URL is set (api/ratelimit.py). Keyless local use is not limited.
    rate_limit_per_minute: int = Field(default=600, ge=0)
    rate_limit_burst: int = Field(default=60, ge=1)
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_content_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    max_import_items: int = Field(default=500, ge=1)
    # Largest file of reference fragments one import takes (importReferenceFragments).
    max_reference_import_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Largest file `POST /sources/upload` and `mmos import` take (PDF, DOCX, EPUB…); the text
    # read from it must still fit MMOS_MAX_CONTENT_BYTES.
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    # An open WebSocket's key is verified again when older than this (revocation holds).
    ws_key_recheck_seconds: float = Field(default=30.0, gt=0, le=30)

    # PostgreSQL connections each process keeps open (the API and every worker), as many again
    # under load. Unset: 10 for the API, 2 x MMOS_LLM_CONCURRENCY + 4 for a worker. A worker
    # warns when it starts if the live fleet may exceed the server's max_connections.
    db_pool_size: int | None = Field(default=None, ge=1, le=500)

    # Processing
    worker_threads: int = Field(default=4, ge=1)
    # `mmos worker`: while a thread is free, claim waiting jobs this often without a message
    # (0 turns it off: jobs then start only on a wake-up).
    worker_idle_poll_seconds: float = Field(default=0.5, ge=0, le=60)
    job_lease_seconds: int = Field(default=60, ge=5)
    job_max_attempts: int = Field(default=3, ge=1)
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    llm_timeout_seconds: float = Field(default=120.0, gt=0)
    llm_max_transient_retries: int = Field(default=4, ge=0)
    llm_concurrency: int = Field(default=8, ge=1)
    chunk_max_tokens: int = Field(default=1500, ge=100)
    max_output_tokens: int = Field(default=4096, ge=256)
    # BATCH mode: how often a worker looks at a provider batch in flight.
    batch_poll_seconds: float = Field(default=60.0, gt=0, le=3600)
    chunk_overlap_tokens: int = Field(default=100, ge=0)
    reservation_ttl_seconds: int = Field(default=900, ge=30)
    daily_budget_usd: Decimal | None = Field(default=None, ge=0)
    fragment_cost_limit_usd: Decimal | None = Field(default=None, ge=0)
    cost_guard_min_fragments: int = Field(default=10, ge=1)
    # A run fails as a whole when more than this share of its chunks failed (unreadable).
    run_failed_chunk_share: float = Field(default=0.5, gt=0, le=1)
    # Days a model's raw answers are kept (for reprocessRun); 0 keeps them for good.
    answer_retention_days: int = Field(default=90, ge=0)
    # Hosts, *.suffixes, addresses or CIDR ranges a model's custom apiBase may point at
    # (comma separated; empty allows none). Unset: loopback and private ranges in
    # development, none in production. Link-local and cloud metadata are always refused.
    allowed_api_bases: str | None = None
    worker_metrics_port: int | None = None
    # `mmos serve`: a plain Prometheus listener (no key) on this port; keep it unpublished.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_public: bool = False
    quality_min_verified_fragments: int = Field(default=5, ge=1)
    quality_reference_model: str | None = None
    strategy_sample_sources: int = Field(default=2, ge=1)
    # Batch mode's discount per LiteLLM provider where the price map has no batch price and
    # the model no batch_discount of its own (provider=discount, comma separated, [0, 1)).
    batch_discounts: str = DEFAULT_BATCH_DISCOUNTS

    # Progress subscriptions
    progress_poll_seconds: float = Field(default=5.0, gt=0)
    progress_stream_maxlen: int = Field(default=10_000, ge=100)
    progress_stream_ttl_seconds: int = Field(default=7 * 86_400, ge=60)

    @model_validator(mode="after")
    def _reservations_outlive_calls(self) -> Settings:
        # A reservation released while its call still runs would let spend pass the budget.
        if self.reservation_ttl_seconds <= self.llm_timeout_seconds:
            raise ValueError(
                f"MMOS_RESERVATION_TTL_SECONDS ({self.reservation_ttl_seconds}) must be longer "
                f"than MMOS_LLM_TIMEOUT_SECONDS ({self.llm_timeout_seconds})")
        return self

    @model_validator(mode="after")
    def _allow_list_entries(self) -> Settings:
        bad = bad_allow_entries(allow_list(self.allowed_api_bases, production=False))
        if bad:
            raise ValueError(f"MMOS_ALLOWED_API_BASES has entries that are neither a host, "
                             f"*.suffix, address nor CIDR range: {', '.join(bad)}")
        return self

    @field_validator("batch_discounts")
    @classmethod
    def _batch_discounts(cls, value: str) -> str:
        parse_batch_discounts(value)  # a clear error at start-up, naming the bad entry
        return value

    @property
    def batch_discount_map(self) -> dict[str, Decimal]:
        """MMOS_BATCH_DISCOUNTS as {provider: discount}."""
        return parse_batch_discounts(self.batch_discounts)

    @model_validator(mode="after")
    def _log_json_alias(self) -> Settings:
        if "log_format" not in self.model_fields_set and self.log_json is not None:
            self.log_format = "json" if self.log_json else "console"
        return self

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if not value:
            return None
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        return value

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else not self.is_production

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else not self.is_production

    @property
    def api_base_allow_list(self) -> tuple[str, ...]:
        """Where custom model API bases may point: MMOS_ALLOWED_API_BASES, else loopback and
        private ranges in development and nothing in production (domain/api_bases.py)."""
        return allow_list(self.allowed_api_bases, production=self.is_production)

    def binds_beyond_loopback(self, host: str | None = None) -> bool:
        """True when the server listens on anything but the loopback interface."""
        target = host or self.host
        if target == "localhost":
            return False
        try:
            return not ipaddress.ip_address(target).is_loopback
        except ValueError:
            return True


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
