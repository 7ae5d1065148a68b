"""One settings model for the whole package.

Precedence (highest first): an argument passed in code > a ``TRACEYARD_<FIELD>`` environment
variable > the default below. Every field has a default, so ``Tracer.create()`` needs nothing.
A bad value fails at ``create()`` with :class:`ConfigError`, naming the variable to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from traceyard.cost.pricing import PriceEntry
from traceyard.errors import ConfigError

ENV_PREFIX = "TRACEYARD_"


class Settings(BaseSettings):
    """Every knob of traceyard; each field is also the variable ``TRACEYARD_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, frozen=True
    )

    enabled: bool = Field(
        True, description="False makes the tracer inert: no thread, file or port."
    )
    data_dir: Path = Field(Path(".traceyard"), description="Where the SQLite store lives.")
    database_url: str | None = Field(
        None,
        description="postgresql://... selects PostgreSQL, memory:// the in-memory store; "
        "unset means SQLite in data_dir.",
    )
    project: str = Field("default", min_length=1, max_length=200, description="Project name.")
    sample_rate: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of root runs recorded; children follow the root."
    )
    per_run_event_cap: int = Field(
        10_000, ge=1, description="A root run stops recording after this many events."
    )
    queue_maxsize: int = Field(
        100_000, ge=1, description="Events waiting for the writer; beyond it they are dropped."
    )
    worker_batch_size: int | None = Field(
        None,
        ge=1,
        description="The writer commits when this many events are waiting (unset: 500 into "
        "SQLite, 2,000 where a batch costs network round trips)...",
    )
    worker_batch_timeout: float = Field(
        0.2, gt=0, le=60, description="...or when the oldest has waited this many seconds."
    )
    blob_threshold_bytes: int = Field(
        8_192, ge=0, description="Inputs/outputs larger than this are stored compressed, apart."
    )
    capture_content: bool = Field(
        True, description="False: inputs and outputs are not stored (names, timings, usage are)."
    )
    model_prices: list[PriceEntry] = Field(
        default_factory=list,
        description="Extra or overriding model prices (JSON list of {model, match, prices}).",
    )
    host: str = Field("127.0.0.1", description="Where the embedded server listens.")
    port: int = Field(7842, ge=0, le=65535, description="Port of the server (next free if taken).")
    start_server: bool = Field(True, description="Tracer.create() starts the UI server.")
    print_run_url: bool = Field(False, description="Print each root run's UI link to stderr.")
    auth_token: str | None = Field(
        None, min_length=32, description="Bearer token required by the API (at least 32 chars)."
    )
    endpoint: str | None = Field(
        None,
        description="URL of a central traceyard server: batches are sent there over HTTP "
        "instead of stored locally (remote mode).",
    )
    tracing_mode: Literal["local", "local+forward", "forward"] | None = Field(
        None,
        description="local, local+forward or forward (no local storage); unset: "
        "local+forward when forward_targets is set, else local.",
    )
    forward_targets: list[dict[str, Any]] = Field(
        default_factory=list,
        description='JSON list of targets: {"type": "langfuse", "host", "public_key", '
        '"secret_key"} or {"type": "otlp", "endpoint", "headers"}.',
    )
    remote_timeout_s: float = Field(10.0, gt=0, description="Seconds per remote-mode request.")
    remote_max_request_bytes: int = Field(
        1_000_000, ge=1024, description="Uncompressed bytes per remote-mode request at most."
    )
    remote_compress: bool = Field(True, description="gzip remote-mode request bodies.")
    langfuse_keys: SecretStr | None = Field(
        None,
        description='Langfuse API key pairs "pk:sk[@project],..." (no @project: the default '
        "project); the Langfuse-compatible routes accept only these.",
    )
    ingest_max_body_bytes: int = Field(
        3_500_000, ge=1024, description="Largest ingestion body, also after decompression."
    )
    ingest_workers: int = Field(
        0,
        ge=0,
        le=64,
        description="traceyard serve: processes that decode, translate and write OTLP "
        "requests, each in one transaction (0: the server's own process and writer).",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Extra Host header values the server accepts without a token "
        "(it always accepts loopback names).",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Extra browser Origins allowed to call the API without a token.",
    )
    retention_max_traces: int | None = Field(
        None, ge=1, description="Keep at most this many traces (oldest pruned first)."
    )
    retention_max_age: str | None = Field(
        None, description="Prune traces older than this, e.g. '7d', '12h'."
    )

    @property
    def batch_size(self) -> int:
        """``worker_batch_size``, else what suits where batches go. Into SQLite, 500 events:
        short commits, and fewer queued events outlive a young garbage collection
        (bench/writer_ceiling.py: 61k events/s, p99 35 ms; with 2,000, p99 61 ms). Anywhere
        else a batch costs round trips: 2,000 (PostgreSQL +30% observations/s over 500)."""
        if self.worker_batch_size is not None:
            return self.worker_batch_size
        into_sqlite = (
            self.database_url is None and self.endpoint is None and self.tracing_mode != "forward"
        )
        return 500 if into_sqlite else 2_000

    @field_validator("project")
    @classmethod
    def _strip_project(cls, value: str) -> str:
        return value.strip()


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings` from arguments and the environment, with errors that name the fix.

    Arguments that are ``None`` are treated as not given, so callers can pass optional values
    straight through.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, given)) from None


def _describe(exc: ValidationError, given: dict[str, Any]) -> str:
    lines = ["invalid traceyard configuration:"]
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        source = (
            f"argument {field}="
            if field in given
            else f"environment variable {ENV_PREFIX}{field.upper()}"
        )
        lines.append(f"  {source}: {error['msg']} (got {error.get('input')!r})")
    return "\n".join(lines)
